#include "kernels/common.h"

#include <algorithm>
#include <string>

namespace om {

void check_tensor(const char* op, const ConstTensorView& t, DType dtype, const Shape& shape) {
  OM_CHECK(t.data != nullptr || shape.numel() == 0, "%s: tensor '%s' is null", op, t.name);
  OM_CHECK(t.dtype == dtype, "%s: '%s' is %s but expected %s", op, t.name, std::string(dtype_name(t.dtype)).c_str(),
           std::string(dtype_name(dtype)).c_str());
  OM_CHECK(t.shape == shape, "%s: '%s' has shape %s but expected %s", op, t.name, t.shape.ToString().c_str(),
           shape.ToString().c_str());
  OM_CHECK(t.is_contiguous(), "%s: '%s' %s must be contiguous", op, t.name, t.shape.ToString().c_str());
}

bool overlaps(const ConstTensorView& x, const ConstTensorView& y) {
  const char* xp = static_cast<const char*>(x.data);
  const char* yp = static_cast<const char*>(y.data);
  return x.nbytes() > 0 && y.nbytes() > 0 && xp < yp + y.nbytes() && yp < xp + x.nbytes();
}

void check_group_disjoint(const char* op, std::vector<GroupTensor> tensors) {
  const auto begin = [](const GroupTensor& g) { return static_cast<const char*>(g.t.data); };
  const auto end = [&](const GroupTensor& g) { return begin(g) + g.t.nbytes(); };
  std::erase_if(tensors, [](const GroupTensor& g) { return g.t.nbytes() == 0; });
  std::sort(tensors.begin(), tensors.end(), [&](const GroupTensor& x, const GroupTensor& y) {
    return std::less<const char*>()(begin(x), begin(y));
  });
  // A sweep by start address; `open` holds the tensors that reach past the current one's start (a few:
  // the tensors of a valid list are disjoint but for aliasing inside an entry).
  std::vector<const GroupTensor*> open;
  for (const GroupTensor& g : tensors) {
    std::erase_if(open, [&](const GroupTensor* o) { return !std::less<const char*>()(begin(g), end(*o)); });
    for (const GroupTensor* o : open) {
      OM_CHECK(o->entry == g.entry || !(o->written || g.written),
               "%s: entry %zu's '%s' (%ld bytes) overlaps entry %zu's '%s' (%ld bytes), and one of them is written: "
               "the entries of a grouped call run concurrently; pass separate calls or disjoint tensors",
               op, o->entry, o->t.name, static_cast<long>(o->t.nbytes()), g.entry, g.t.name,
               static_cast<long>(g.t.nbytes()));
    }
    open.push_back(&g);
  }
}

double bytes_of(std::initializer_list<ConstTensorView> tensors) {
  double sum = 0;
  for (const ConstTensorView& t : tensors) sum += static_cast<double>(t.nbytes());
  return sum;
}

void check_device(const char* op, const ExecContext& ctx, const ConstTensorView& t) {
  OM_CHECK(t.device == ctx.device, "%s: '%s' is on %s but the op runs on %s", op, t.name,
           device_name(t.device).c_str(), device_name(ctx.device).c_str());
}

void check_cpu_float(const char* op, const ConstTensorView& t) {
  OM_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kF64,
           "%s: the CPU reference computes in f32 (or f64 for gradient checks); '%s' is %s", op, t.name,
           std::string(dtype_name(t.dtype)).c_str());
}

void check_cuda_float(const char* op, const ConstTensorView& t) {
  OM_CHECK(t.dtype == DType::kBF16 || t.dtype == DType::kF32, "%s: CUDA kernels take bf16 or f32 activations; '%s' is %s",
           op, t.name, std::string(dtype_name(t.dtype)).c_str());
}

void no_cuda_kernel(const char* op) {
  fatal_error("device == cuda",
              format_message("%s: %s; run with --device cpu", op,
                             OM_WITH_CUDA ? "this op has no CUDA kernel in this version"
                                          : "this binary was built without CUDA (OM_WITH_CUDA=OFF)"),
              __FILE__, __LINE__);
}

}  // namespace om
