// Sum of squares of a tensor, accumulated into one f64 scalar: the building block of the global
// gradient norm (DESIGN.md "ZeRO-1": every element counted once across the world). Callers add
// every gradient shard they own into one `out` and then all-reduce it; sqrt gives the norm.
// Deterministic: on the CPU, elements are grouped into fixed blocks of cpu::kSumSquaresBlock, each
// summed serially in double, and the block partials are summed in block order, so the result is
// bit-identical for any thread count. On CUDA, squares and sums are in double too, in an order fixed
// by numel alone (kernels/cuda/sum_squares.cu): bit-identical from run to run, but not to the CPU's.
// REQUIRES: x contiguous, f32 or f64 on the CPU, bf16 or f32 on CUDA; out is (1) f64.
#pragma once

#include "kernels/common.h"

namespace om {

struct SumSquaresArgs {
  TensorView out;       // (1)        f64, accumulated (+=): adds sum_i x[i]^2
  ConstTensorView x;    // any shape  f32 or f64; may be empty (adds 0)
};

void sum_squares(const ExecContext& ctx, const SumSquaresArgs& args);

namespace cpu {
inline constexpr int64_t kSumSquaresBlock = 4096;  // elements per serially summed block
void sum_squares(const SumSquaresArgs& args);
}  // namespace cpu

namespace cuda {
// Two passes: fixed block partials in double, then one block adds them into out.
void sum_squares(const SumSquaresArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
