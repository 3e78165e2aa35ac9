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

#include <span>

#include "kernels/common.h"

namespace om {

struct CastArgs {
  TensorView out;      // (n) any shape, contiguous; written (=)
  ConstTensorView in;  // same numel as out (shapes may differ), contiguous, same device
};

// out = in converted element-wise. Supported: f32 -> bf16, bf16 -> f32, and same dtype (a copy:
// f32, bf16 on both devices; f64 on the CPU).
void cast(const ExecContext& ctx, const CastArgs& args);

// Grouped casts ("multi-tensor apply"): entry i gets exactly what cast(ctx, list[i]) would do, but CUDA
// packs up to kCastGroupMax entries of one dtype pair into one launch (pointers and sizes in the
// kernel's arguments), so P tensors cost a few launches instead of P. Entries of kCastGroupOwnLaunch
// elements or more (64 MB of f32: tens of microseconds of memory traffic on an H200, beside which a
// launch is nothing) keep the single call's path, with its wider accesses (a packed kernel or a
// cudaMemcpyAsync); below that a launch's few microseconds of host time are comparable to the copy.
// REQUIRES: every entry valid on its own; no entry's `out` intersects another entry's `out` or `in`
// (the entries run concurrently). An empty list does nothing.
constexpr int kCastGroupMax = 96;
constexpr int64_t kCastGroupOwnLaunch = int64_t{1} << 24;
void cast_group(const ExecContext& ctx, std::span<const CastArgs> list);

namespace cpu {
// Plain loops (OpenMP over elements) through core/dtype.h's conversions; memcpy for a copy.
void cast(const CastArgs& args);
}  // namespace cpu

namespace cuda {
// f32 <-> bf16 through a grid-stride kernel (kernels/cuda/cast.cu), bit-identical to cpu::cast;
// a same-dtype copy (f32 or bf16) is one cudaMemcpyAsync on `stream`.
void cast(const CastArgs& args, Stream stream);
// A validated list (above).
void cast_group(std::span<const CastArgs> list, Stream stream);
}  // namespace cuda

}  // namespace om
