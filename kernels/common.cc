#include "kernels/common.h"

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
