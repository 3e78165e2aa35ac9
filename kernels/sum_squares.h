// Sum of squares of a tensor, accumulated into one f64 scalar: the building block of the global
// gradient norm (DESIGN.md "ZeRO-1": every element counted once across the world). Callers add
// every gradient shard they own into one `out` and then all-reduce it; sqrt gives the norm.
// Deterministic: elements are grouped into fixed blocks of cpu::kSumSquaresBlock, each summed
// serially in double, and the block partials are summed in block order, so the result is
// bit-identical for any thread count.
// REQUIRES: x contiguous, f32 or f64 on the CPU; out is (1) f64.
#pragma once

#include "kernels/common.h"

namespace om {

struct SumSquaresArgs {
  TensorView out;       // (1)        f64, accumulated (+=): adds sum_i x[i]^2
  ConstTensorView x;    // any shape  f32 or f64; may be empty (adds 0)
};

void sum_squares(const ExecContext& ctx, const SumSquaresArgs& args);

// No CUDA kernel yet: on a CUDA context sum_squares is a clear fatal error.
namespace cpu {
inline constexpr int64_t kSumSquaresBlock = 4096;  // elements per serially summed block
void sum_squares(const SumSquaresArgs& args);
}  // namespace cpu

}  // namespace om
