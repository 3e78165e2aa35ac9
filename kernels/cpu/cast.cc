// CPU reference for cast (kernels/cast.h). The f32 <-> bf16 conversions are core/dtype.h's, the
// same functions HostTensor and the checkpoint code use, so every host-side bf16 value in the
// project rounds the same way; tests/cuda/cast_test.cc holds the CUDA kernel to these bits.
// Arguments were validated by kernels/cast.cc.
#include <cstdint>
#include <cstring>

#include "kernels/cast.h"

namespace om::cpu {

void cast(const CastArgs& a) {
  const int64_t n = a.in.numel();
  if (n == 0) return;
  if (a.out.dtype == a.in.dtype) {
    std::memcpy(a.out.data, a.in.data, a.in.nbytes());
    return;
  }
  // bf16 tensors are handled as their raw bits (data_as<uint16_t> would check for kU16).
  if (a.in.dtype == DType::kF32) {
    const float* in = a.in.data_as<const float>();
    uint16_t* out = static_cast<uint16_t*>(a.out.data);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = float_to_bf16_bits(in[i]);
  } else {
    const uint16_t* in = static_cast<const uint16_t*>(a.in.data);
    float* out = a.out.data_as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits_to_float(in[i]);
  }
}

}  // namespace om::cpu
