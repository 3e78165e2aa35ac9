// Element type conversion, the seam of the mixed-precision model (issue 8): f32 master weights ->
// their bf16 compute copies, bf16 -> f32 where an f32 consumer needs a bf16 tensor's values.
//   f32 -> bf16   round to nearest, ties to even; the CPU (core/dtype.h float_to_bf16_bits) and CUDA
//                 (__float2bfloat16_rn) give the same bits for every input. A value at or past the
//                 midpoint between the largest bf16 (0x7f7f) and 2^128 rounds to ±inf, as RNE does;
//                 subnormals round like any other value (no flush to zero); ±0 keeps its sign;
//                 a NaN stays a quiet NaN of the same sign (the top payload bits kept, quiet bit set).
//   bf16 -> f32   exact: the bf16 bits become the high half of the f32 (NaN payloads included).
//   same dtype    a copy of the bytes (f32, bf16; f64 on the CPU only).
// Element-wise, so the result is the same for any thread count or launch shape. The call is
// stream-ordered on CUDA (ExecContext::stream) and synchronous on the CPU.
// REQUIRES: out and in contiguous, the same numel (shapes may differ), the same device, and not
// overlapping (kernels/cast.cc checks all four).
#pragma once

#include "kernels/common.h"

namespace om {

struct CastArgs {
  TensorView out;      // (n) any shape, contiguous; written (=)
  ConstTensorView in;  // same numel as out (shapes may differ), contiguous, same device
};

// out = in converted element-wise. Supported: f32 -> bf16, bf16 -> f32, and same dtype (a copy:
// f32, bf16 on both devices; f64 on the CPU).
void cast(const ExecContext& ctx, const CastArgs& args);

namespace cpu {
// Plain loops (OpenMP over elements) through core/dtype.h's conversions; memcpy for a copy.
void cast(const CastArgs& args);
}  // namespace cpu

namespace cuda {
// f32 <-> bf16 through a grid-stride kernel (kernels/cuda/cast.cu), bit-identical to cpu::cast;
// a same-dtype copy (f32 or bf16) is one cudaMemcpyAsync on `stream`.
void cast(const CastArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
