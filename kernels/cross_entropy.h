// Cross-entropy over the vocabulary, built from the pieces vocab-parallel cross-entropy needs
// (DESIGN.md "Tensor parallel"): each tp rank holds logits for a contiguous vocab slice, and the row
// max, the sum of exponentials and the target logit are all-reduced, so full-vocab logits are never
// gathered. For one row with global logits x, target t and padding excluded:
//   loss = log(sum_j exp(x_j - m)) + m - x_t          m = max_j x_j
//   dx_j = (exp(x_j - m) / sum_exp - [j == t]) * dloss
// Per shard (tp rank), in this order:
//   cross_entropy_row_max        -> row_max      all-reduce MAX
//   cross_entropy_sum_exp        -> sum_exp      (given the GLOBAL row_max) all-reduce SUM
//   cross_entropy_target_logit   -> target_logit all-reduce SUM (only the owning shard is non-zero)
//   cross_entropy_loss           -> losses       (same on every shard)
//   cross_entropy_backward       -> dlogits      (per shard, from the global row_max and sum_exp)
// cross_entropy_forward composes the first four for a single shard covering the whole vocabulary
// (on CUDA as one fused kernel with the same arithmetic as the pieces, bit for bit).
// REQUIRES: targets are i32 global ids in [0, vocab_size) or kIgnoreTarget (the CPU reference
// OM_CHECKs this; the CUDA kernels print the offending row and trap, which loses the CUDA context:
// the next CUDA call fails, fatally). Dtypes:
//   CPU   logits, dlogits and the statistics (row_max, sum_exp, target_logit, losses) share one
//         dtype, f32 or f64.
//   CUDA  logits and dlogits bf16 or f32 (one dtype); the statistics always f32; f32 arithmetic:
//         exp(x - m) with x - m formed exactly (TwoSum), summed per thread and then by a fixed-order
//         block reduction (bit-identical from run to run), the loss in double as on the CPU.
#pragma once

#include "kernels/common.h"

namespace om {

// Targets equal to this are masked: no loss, no gradient (padding positions of a sequence).
inline constexpr int32_t kIgnoreTarget = -1;

// The columns of a logits tensor (N, Vl) are the global ids [vocab_start, vocab_start + Vl). Ids
// >= vocab_size are padding (the vocabulary is padded to a multiple of 128·tp) and are excluded
// from the max, the sum of exponentials and the gradient. A shard may consist of padding only.
struct VocabShard {
  int64_t vocab_start = 0;  // global id of column 0
  int64_t vocab_size = 0;   // true (unpadded) vocabulary size V, >= 1
};

struct CrossEntropyRowMaxArgs {
  TensorView row_max;      // (N)      written; max over this shard's non-padding columns
                           //          (-inf if the shard is all padding)
  ConstTensorView logits;  // (N, Vl)
  VocabShard shard;
};

struct CrossEntropySumExpArgs {
  TensorView sum_exp;       // (N)      written; sum over non-padding columns of exp(x - row_max)
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView row_max;  // (N)      the GLOBAL row max (after the all-reduce MAX)
  VocabShard shard;
};

struct CrossEntropyTargetLogitArgs {
  TensorView target_logit;  // (N)      written; logits[n, t - vocab_start], 0 when the target
                            //          is ignored or not in this shard
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView targets;  // (N)      i32 global ids or kIgnoreTarget
  VocabShard shard;
};

struct CrossEntropyLossArgs {
  TensorView losses;             // (N)  written; log(sum_exp) + row_max - target_logit, 0 if ignored
  ConstTensorView row_max;       // (N)  global
  ConstTensorView sum_exp;       // (N)  global
  ConstTensorView target_logit;  // (N)  global
  ConstTensorView targets;       // (N)  i32
};

// One shard covering the whole vocabulary (vocab_start 0, Vl >= vocab_size).
struct CrossEntropyForwardArgs {
  TensorView losses;        // (N)      written
  TensorView row_max;       // (N)      written; saved for backward
  TensorView sum_exp;       // (N)      written; saved for backward
  TensorView target_logit;  // (N)      written
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView targets;  // (N)      i32
  VocabShard shard;
};

struct CrossEntropyBackwardArgs {
  TensorView dlogits;       // (N, Vl)  written (=); 0 on padding columns and ignored rows. May be
                            //          `logits` itself (in place: every element is read before it is
                            //          written, by the same thread); no other overlap.
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView targets;  // (N)      i32
  ConstTensorView row_max;  // (N)      global
  ConstTensorView sum_exp;  // (N)      global
  VocabShard shard;
  float dloss = 1.0f;       // d(total loss)/d(losses[n]) for every row, e.g. 1/(non-ignored count)
};

// Training's forward and backward together, for one shard covering the whole vocabulary: the outputs of
// cross_entropy_forward(forward), then dlogits as cross_entropy_backward with `dloss` writes them, the same
// bits as those two calls. dlogits may be forward.logits itself (in place). On CUDA one kernel per row that
// reads the row from memory once and writes it once (the separate calls read it twice: the forward and the
// backward); on the CPU the two calls.
struct CrossEntropyForwardBackwardArgs {
  CrossEntropyForwardArgs forward;
  TensorView dlogits;  // (N, Vl)  written (=), as CrossEntropyBackwardArgs::dlogits (in place allowed)
  float dloss = 1.0f;  // as CrossEntropyBackwardArgs::dloss
};

void cross_entropy_row_max(const ExecContext& ctx, const CrossEntropyRowMaxArgs& args);
void cross_entropy_sum_exp(const ExecContext& ctx, const CrossEntropySumExpArgs& args);
void cross_entropy_target_logit(const ExecContext& ctx, const CrossEntropyTargetLogitArgs& args);
void cross_entropy_loss(const ExecContext& ctx, const CrossEntropyLossArgs& args);
void cross_entropy_forward(const ExecContext& ctx, const CrossEntropyForwardArgs& args);
void cross_entropy_backward(const ExecContext& ctx, const CrossEntropyBackwardArgs& args);
void cross_entropy_forward_backward(const ExecContext& ctx, const CrossEntropyForwardBackwardArgs& args);

namespace cpu {
void cross_entropy_row_max(const CrossEntropyRowMaxArgs& args);
void cross_entropy_sum_exp(const CrossEntropySumExpArgs& args);
void cross_entropy_target_logit(const CrossEntropyTargetLogitArgs& args);
void cross_entropy_loss(const CrossEntropyLossArgs& args);
void cross_entropy_backward(const CrossEntropyBackwardArgs& args);

// Faster f32 variants of the three passes over the N·Vl logits (STYLE.md §2), which the f32 CPU
// dispatch uses; f64 (gradient checks) stays on the reference. Same contracts as the reference.
// row_max is the same value; sum_exp and backward compute exp(x - row_max) with the shared f32 exp
// (cpu::exp_shifted_f32, kernels/cpu/exp_f32.h: <= kExpF32Ulps = 1.5 ulp, measured 1.16), and
// sum_exp adds in kCrossEntropySimdLanes f32 lanes (column j in lane j mod 16) whose partials are
// added in double in lane order: bit-identical for any thread count. Error bounds: for_lane_reduction in
// kernels/check/tolerance.h. REQUIRES: f32 tensors.
inline constexpr int64_t kCrossEntropySimdLanes = 16;
void cross_entropy_row_max_simd(const CrossEntropyRowMaxArgs& args);
void cross_entropy_sum_exp_simd(const CrossEntropySumExpArgs& args);
void cross_entropy_backward_simd(const CrossEntropyBackwardArgs& args);
}  // namespace cpu

namespace cuda {
// kernels/cuda/cross_entropy.cu: one block of kCrossEntropyRowThreads per row for the passes over
// the logits, one thread per row for target_logit and loss. Thread t owns the columns j with
// floor(j / kCrossEntropyChunk) = t (mod kCrossEntropyRowThreads): one chunk of kCrossEntropyChunk
// consecutive columns per sweep over the row. It adds its terms in column order, then the block adds
// the thread sums in a fixed order (log2 kCrossEntropyRowThreads pairwise levels). Dtypes as above.
// Asynchronous on `stream`; no scratch memory.
inline constexpr int kCrossEntropyRowThreads = 512;
inline constexpr int kCrossEntropyChunk = 8;
void cross_entropy_row_max(const CrossEntropyRowMaxArgs& args, Stream stream);
void cross_entropy_sum_exp(const CrossEntropySumExpArgs& args, Stream stream);
void cross_entropy_target_logit(const CrossEntropyTargetLogitArgs& args, Stream stream);
void cross_entropy_loss(const CrossEntropyLossArgs& args, Stream stream);
void cross_entropy_forward(const CrossEntropyForwardArgs& args, Stream stream);  // fused: one launch
void cross_entropy_backward(const CrossEntropyBackwardArgs& args, Stream stream);
void cross_entropy_forward_backward(const CrossEntropyForwardBackwardArgs& args, Stream stream);  // one launch
}  // namespace cuda

}  // namespace om
