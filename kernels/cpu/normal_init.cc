// CPU reference of normal_init (kernels/normal_init.h): the element formula, OpenMP over rows.
#include "core/dtype.h"
#include "core/portable_normal.h"
#include "kernels/normal_init.h"

namespace om::cpu {
namespace {

template <typename Store>
void fill(const NormalInitArgs& a, Store store) {
  const int64_t rows = a.out.dim(0), cols = a.out.dim(1);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t base = a.first + static_cast<uint64_t>(r) * static_cast<uint64_t>(a.row_stride);
    for (int64_t c = 0; c < cols; ++c) {
      store(r * cols + c, portable::normal_portable(a.seed, a.stream, base + static_cast<uint64_t>(c)));
    }
  }
}

}  // namespace

void normal_init(const NormalInitArgs& a) {
  switch (a.out.dtype) {
    case DType::kF64: {
      double* out = a.out.data_as<double>();
      return fill(a, [&](int64_t i, double n) { out[i] = a.mean + portable::mul(a.stddev, n); });
    }
    case DType::kF32: {
      float* out = a.out.data_as<float>();
      const float mean = static_cast<float>(a.mean), stddev = static_cast<float>(a.stddev);
      return fill(a, [&](int64_t i, double n) { out[i] = mean + portable::mul(stddev, static_cast<float>(n)); });
    }
    case DType::kBF16: {
      uint16_t* out = static_cast<uint16_t*>(a.out.data);  // bf16 bits
      const float mean = static_cast<float>(a.mean), stddev = static_cast<float>(a.stddev);
      return fill(a, [&](int64_t i, double n) {
        out[i] = float_to_bf16_bits(mean + portable::mul(stddev, static_cast<float>(n)));
      });
    }
    default:
      fatal_error("dtype is f64, f32 or bf16",
                  format_message("normal_init (cpu): '%s' is %s", a.out.name, std::string(dtype_name(a.out.dtype)).c_str()),
                  __FILE__, __LINE__);
  }
}

}  // namespace om::cpu
