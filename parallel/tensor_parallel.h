// Megatron tensor-parallel building blocks (DESIGN.md "Tensor parallel"): the two region collectives,
// ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding, vocab-parallel cross-entropy, and the
// helpers that cut a logical tensor into one tp rank's shard. Each function takes the tp Comm
// explicitly (invariant 7, STYLE.md §12: no global group getters); tp_rank = tp.rank(), tp = tp.size().
// Every forward/backward is collective over `tp`: all ranks of the group call it in the same order with
// the same shapes. Local math runs through kernels/ on ctx.device; the collectives use the Comm's backend
// (MpiComm: CPU tensors). Parameter gradients accumulate (+=), activation gradients overwrite (=).
// Communication per call (ring model of parallel/comm.h; B = bytes of the tensor named):
//   copy_to_tp_region        fwd 0                bwd all_reduce(dx)    (N, C)
//   reduce_from_tp_region    fwd all_reduce(y)    bwd 0                 (N, O)
//   column_parallel_linear   fwd 0                bwd all_reduce(dx)    (N, C)
//   row_parallel_linear      fwd all_reduce(y)    bwd 0                 (N, O)
//   vocab_parallel_embedding fwd all_reduce(out)  bwd 0                 (N, C)
//   vocab_parallel_cross_entropy fwd 3 × all_reduce of (N)  bwd 0; full-vocab logits are never gathered.
// REQUIRES: every sharded extent (O, C, Vp) divisible by tp; tensors contiguous.
//
// Fused layouts per rank. The model fuses q/k/v into one (3C, C) weight (rows [q; k; v], or with
// grouped-query attention [q (H·D); k (Hkv·D); v (Hkv·D)]) and gate/up into one (2F, C) weight (rows
// [gate; up]). A column-parallel split of a fused weight is NOT a contiguous row slice of the fused
// matrix: rank r holds [q_r; k_r; v_r], where q_r = rows [r·H·D/tp, (r+1)·H·D/tp) of q (whole heads:
// H/tp heads of D rows each), and likewise k_r, v_r; for gate_up, rank r holds [gate_r; up_r] with
// gate_r = rows [r·F/tp, (r+1)·F/tp) of gate. So the local qkv output (N, 3C/tp) splits into its
// q, k and v parts exactly as the unsharded one does, with H/tp heads, and the local gate_up output
// (N, 2F/tp) into gate and up halves of F/tp each. slice_fused_tp_rows builds such a shard.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "core/device.h"
#include "core/tensor.h"
#include "parallel/comm.h"

namespace om {

// ---- Region collectives (Megatron mappings). In place on the activation / its gradient. ----
// copy_to_tp_region: the input of a column-parallel region is replicated on every tp rank; its
// gradient is the sum of the ranks' partial gradients.
void copy_to_tp_region_forward(Comm& tp, TensorView x);    // x: (N, C)  identity
void copy_to_tp_region_backward(Comm& tp, TensorView dx);  // dx: (N, C) all-reduce SUM
// The same all-reduce, run beside `overlapped` (Megatron's asynchronous tensor-parallel all-reduce): the
// weight gradient's GEMM of the column-parallel layer, which must neither read nor write dx. Comm::
// all_reduce_deferred, then overlapped(), then join_deferred: on NCCL the all-reduce runs on the comm's
// deferred stream while the GEMM runs; on a blocking backend it completes first. The same collective and
// the same GEMM as copy_to_tp_region_backward followed by `overlapped`, so the same bits.
void copy_to_tp_region_backward_overlapped(Comm& tp, TensorView dx, const std::function<void()>& overlapped);
// reduce_from_tp_region: the output of a row-parallel region is the sum of the ranks' partial outputs;
// the gradient of that sum w.r.t. each partial is the (replicated) output gradient.
void reduce_from_tp_region_forward(Comm& tp, TensorView y);    // y: (N, O)  all-reduce SUM
void reduce_from_tp_region_backward(Comm& tp, TensorView dy);  // dy: (N, O) identity

// ---- ColumnParallelLinear: logical weight W (O, C); rank r holds rows [r·O/tp, (r+1)·O/tp). ----
// The output stays sharded over its feature axis (feeds a row-parallel layer or the vocab-parallel loss).
struct ColumnParallelLinearForwardArgs {
  TensorView y;            // (N, O/tp)   written (=): x · W_localᵀ
  ConstTensorView x;       // (N, C)      replicated on every tp rank (after copy_to_tp_region)
  ConstTensorView weight;  // (O/tp, C)
};
struct ColumnParallelLinearBackwardArgs {
  TensorView dx;            // (N, C)      written (=): Σ_ranks dy_local · W_local (all-reduced)
  TensorView dweight;       // (O/tp, C)   accumulated (+=): dy_localᵀ · x
  ConstTensorView dy;       // (N, O/tp)
  ConstTensorView x;        // (N, C)
  ConstTensorView weight;   // (O/tp, C)
};
void column_parallel_linear_forward(const ExecContext& ctx, Comm& tp, const ColumnParallelLinearForwardArgs& args);
void column_parallel_linear_backward(const ExecContext& ctx, Comm& tp, const ColumnParallelLinearBackwardArgs& args);

// ---- RowParallelLinear: logical weight W (O, C); rank r holds columns [r·C/tp, (r+1)·C/tp). ----
// The input is the column-parallel output slice; the output is all-reduced (replicated).
struct RowParallelLinearForwardArgs {
  TensorView y;            // (N, O)      written (=): Σ_ranks x_local · W_localᵀ (all-reduced)
  ConstTensorView x;       // (N, C/tp)   this rank's feature slice
  ConstTensorView weight;  // (O, C/tp)
};
struct RowParallelLinearBackwardArgs {
  TensorView dx;            // (N, C/tp)   written (=): dy · W_local (local, no communication)
  TensorView dweight;       // (O, C/tp)   accumulated (+=): dyᵀ · x_local
  ConstTensorView dy;       // (N, O)      replicated
  ConstTensorView x;        // (N, C/tp)
  ConstTensorView weight;   // (O, C/tp)
};
void row_parallel_linear_forward(const ExecContext& ctx, Comm& tp, const RowParallelLinearForwardArgs& args);
void row_parallel_linear_backward(const ExecContext& ctx, Comm& tp, const RowParallelLinearBackwardArgs& args);

// ---- VocabParallelEmbedding: logical table (Vp, C); rank r holds rows [r·Vp/tp, (r+1)·Vp/tp). ----
// Ids outside the shard give zero rows locally; the all-reduce leaves exactly one nonzero term per row,
// so the result equals the unsharded lookup bit for bit.
struct VocabParallelEmbeddingForwardArgs {
  TensorView out;          // (N, C)      written (=), all-reduced
  ConstTensorView ids;     // (N)         i32 global ids
  ConstTensorView weight;  // (Vp/tp, C)
};
struct VocabParallelEmbeddingBackwardArgs {
  TensorView dweight;      // (Vp/tp, C)  accumulated (+=); local, no communication
  ConstTensorView dout;    // (N, C)      replicated
  ConstTensorView ids;     // (N)         i32
};
void vocab_parallel_embedding_forward(const ExecContext& ctx, Comm& tp, const VocabParallelEmbeddingForwardArgs& args);
void vocab_parallel_embedding_backward(const ExecContext& ctx, Comm& tp,
                                       const VocabParallelEmbeddingBackwardArgs& args);

// ---- Vocab-parallel cross-entropy over the column-parallel LM-head logits. ----
// Rank r's logits are the global columns [r·Vl, (r+1)·Vl), Vl = Vp/tp; ids >= vocab_size are padding
// (excluded). Forward: row_max → all-reduce MAX → sum_exp (given the global max) → all-reduce SUM;
// target_logit → all-reduce SUM; loss. The saved statistics are global (identical on all ranks), so the
// backward is local.
struct VocabParallelCrossEntropyForwardArgs {
  TensorView losses;        // (N)       written; identical on every tp rank; 0 for ignored targets
  TensorView row_max;       // (N)       written; global, saved for backward
  TensorView sum_exp;       // (N)       written; global, saved for backward
  TensorView target_logit;  // (N)       written; global
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView targets;  // (N)       i32 global ids or kIgnoreTarget
  int64_t vocab_size = 0;   // V, unpadded
};
struct VocabParallelCrossEntropyBackwardArgs {
  TensorView dlogits;       // (N, Vl)   written (=); local, no communication
  ConstTensorView logits;   // (N, Vl)
  ConstTensorView targets;  // (N)       i32
  ConstTensorView row_max;  // (N)       global, from the forward
  ConstTensorView sum_exp;  // (N)       global, from the forward
  int64_t vocab_size = 0;   // V
  float dloss = 1.0f;       // d(total loss)/d(losses[n])
};
void vocab_parallel_cross_entropy_forward(const ExecContext& ctx, Comm& tp,
                                          const VocabParallelCrossEntropyForwardArgs& args);
void vocab_parallel_cross_entropy_backward(const ExecContext& ctx, Comm& tp,
                                           const VocabParallelCrossEntropyBackwardArgs& args);

// ---- Shards of logical tensors (CPU; tests now, checkpoints later). ----
enum class TpSplitAxis : uint8_t {
  kRows,     // dim 0: ColumnParallelLinear and VocabParallelEmbedding weights
  kColumns,  // dim 1: RowParallelLinear weights
};
// shard ← part tp_rank of the 2-D `full` along `axis` (equal parts). full: (R, K); shard: (R/tp, K)
// for kRows, (R, K/tp) for kColumns. Any dtype; CPU memory.
void slice_tp_shard(ConstTensorView full, TensorView shard, TpSplitAxis axis, int tp_rank, int tp_size);
// The inverse: writes `shard` into its place in `full` (the rest of `full` is untouched).
void place_tp_shard(ConstTensorView shard, TensorView full, TpSplitAxis axis, int tp_rank, int tp_size);

// Column-parallel shard of a fused weight whose rows are consecutive segments (qkv: {H·D, Hkv·D, Hkv·D};
// gate_up: {F, F}): shard = [segment_0 part r; segment_1 part r; ...], each segment split into tp equal
// row ranges. Each segment's rows must be divisible by tp·granule (granule = D keeps whole heads on a
// rank; 1 for gate_up). full: (Σ segment_rows, C); shard: (Σ segment_rows / tp, C).
void slice_fused_tp_rows(ConstTensorView full, TensorView shard, std::span<const int64_t> segment_rows,
                         int64_t granule, int tp_rank, int tp_size);

}  // namespace om
