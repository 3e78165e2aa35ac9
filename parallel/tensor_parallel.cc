// Megatron tensor-parallel layers: local kernels/ calls plus the one collective each region needs.
// Shape checks beyond "divisible by tp" are left to the kernels, which validate every tensor.
#include "parallel/tensor_parallel.h"

#include <cstring>

#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"

namespace om {
namespace {

// The all-reduces run on the Comm's tensors in place; an activation view from a kernel output is
// mutable, so this only names the intent.
void all_reduce_sum(Comm& tp, TensorView t) { tp.all_reduce(t, ReduceOp::kSum); }

void check_2d(const char* op, const ConstTensorView& t) {
  OM_CHECK(t.ndim() == 2 && t.is_contiguous(), "%s: '%s' must be a contiguous 2-D tensor, got %s", op, t.name,
           t.ToString().c_str());
}

void check_divides(const char* op, int64_t extent, int64_t parts, const char* what) {
  OM_CHECK(parts > 0 && extent % parts == 0, "%s: %s = %lld is not divisible by %lld", op, what,
           static_cast<long long>(extent), static_cast<long long>(parts));
}

}  // namespace

void copy_to_tp_region_forward(Comm& tp, TensorView x) {
  // Identity: x is already replicated on every tp rank. Kept as a call so the region pairs read as in
  // Megatron and the model code marks where a column-parallel region starts.
  (void)tp;
  (void)x;
}

void copy_to_tp_region_backward(Comm& tp, TensorView dx) { all_reduce_sum(tp, dx); }

void copy_to_tp_region_backward_overlapped(Comm& tp, TensorView dx, const std::function<void()>& overlapped) {
  tp.all_reduce_deferred(dx, ReduceOp::kSum);
  overlapped();
  tp.join_deferred();
}

void reduce_from_tp_region_forward(Comm& tp, TensorView y) { all_reduce_sum(tp, y); }

void reduce_from_tp_region_backward(Comm& tp, TensorView dy) {
  // Identity: d(Σ_r y_r)/d y_r = 1, so every rank's partial output gets the replicated gradient.
  (void)tp;
  (void)dy;
}

void column_parallel_linear_forward(const ExecContext& ctx, Comm& tp, const ColumnParallelLinearForwardArgs& args) {
  // x is already replicated (copy_to_tp_region_forward is the identity), so no communication here.
  (void)tp;
  matmul(ctx, MatmulArgs{.c = args.y, .a = args.x, .b = args.weight, .trans_b = Transpose::kYes});
}

void column_parallel_linear_backward(const ExecContext& ctx, Comm& tp, const ColumnParallelLinearBackwardArgs& args) {
  // Each rank holds O/tp of the output features, so its dy_local · W_local is the part of dx that
  // flows through those features; the full dx is their sum (copy_to_tp_region backward), all-reduced
  // while dW is computed (it reads dy and x, not dx).
  matmul(ctx, MatmulArgs{.c = args.dx, .a = args.dy, .b = args.weight});
  copy_to_tp_region_backward_overlapped(tp, args.dx, [&] {
    matmul(ctx, MatmulArgs{.c = args.dweight, .a = args.dy, .b = args.x, .trans_a = Transpose::kYes,
                           .mode = WriteMode::kAccumulate});
  });
}

void row_parallel_linear_forward(const ExecContext& ctx, Comm& tp, const RowParallelLinearForwardArgs& args) {
  // y = Σ_r x_r · W_rᵀ: the contraction over C is split across ranks, so each rank's product is a
  // partial sum over its C/tp input features.
  matmul(ctx, MatmulArgs{.c = args.y, .a = args.x, .b = args.weight, .trans_b = Transpose::kYes});
  reduce_from_tp_region_forward(tp, args.y);
}

void row_parallel_linear_backward(const ExecContext& ctx, Comm& tp, const RowParallelLinearBackwardArgs& args) {
  // dy is replicated, and x_local / W_local cover the same C/tp features, so both gradients are local.
  (void)tp;
  matmul(ctx, MatmulArgs{.c = args.dx, .a = args.dy, .b = args.weight});
  matmul(ctx, MatmulArgs{.c = args.dweight, .a = args.dy, .b = args.x, .trans_a = Transpose::kYes,
                         .mode = WriteMode::kAccumulate});
}

void vocab_parallel_embedding_forward(const ExecContext& ctx, Comm& tp, const VocabParallelEmbeddingForwardArgs& args) {
  check_2d("vocab_parallel_embedding_forward", args.weight);
  const int64_t vocab_start = static_cast<int64_t>(tp.rank()) * args.weight.dim(0);
  embedding_forward(ctx, EmbeddingForwardArgs{.out = args.out, .ids = args.ids, .weight = args.weight,
                                              .vocab_start = vocab_start});
  reduce_from_tp_region_forward(tp, args.out);
}

void vocab_parallel_embedding_backward(const ExecContext& ctx, Comm& tp,
                                       const VocabParallelEmbeddingBackwardArgs& args) {
  check_2d("vocab_parallel_embedding_backward", args.dweight);
  const int64_t vocab_start = static_cast<int64_t>(tp.rank()) * args.dweight.dim(0);
  embedding_backward(ctx, EmbeddingBackwardArgs{.dweight = args.dweight, .dout = args.dout, .ids = args.ids,
                                                .vocab_start = vocab_start});
}

void vocab_parallel_cross_entropy_forward(const ExecContext& ctx, Comm& tp,
                                          const VocabParallelCrossEntropyForwardArgs& args) {
  check_2d("vocab_parallel_cross_entropy_forward", args.logits);
  const VocabShard shard{.vocab_start = static_cast<int64_t>(tp.rank()) * args.logits.dim(1),
                         .vocab_size = args.vocab_size};
  // The max must be global before the exponentials: sum_exp on each shard is relative to it, so the
  // shards' sums add up to the unsharded one (and exp never overflows on any shard).
  cross_entropy_row_max(ctx, CrossEntropyRowMaxArgs{.row_max = args.row_max, .logits = args.logits, .shard = shard});
  tp.all_reduce(args.row_max, ReduceOp::kMax);
  cross_entropy_sum_exp(ctx, CrossEntropySumExpArgs{.sum_exp = args.sum_exp, .logits = args.logits,
                                                    .row_max = args.row_max, .shard = shard});
  all_reduce_sum(tp, args.sum_exp);
  // Exactly one shard owns each target and the others contribute 0, so this sum is exact.
  cross_entropy_target_logit(ctx, CrossEntropyTargetLogitArgs{.target_logit = args.target_logit,
                                                              .logits = args.logits, .targets = args.targets,
                                                              .shard = shard});
  all_reduce_sum(tp, args.target_logit);
  cross_entropy_loss(ctx, CrossEntropyLossArgs{.losses = args.losses, .row_max = args.row_max,
                                               .sum_exp = args.sum_exp, .target_logit = args.target_logit,
                                               .targets = args.targets});
}

void vocab_parallel_cross_entropy_backward(const ExecContext& ctx, Comm& tp,
                                           const VocabParallelCrossEntropyBackwardArgs& args) {
  check_2d("vocab_parallel_cross_entropy_backward", args.logits);
  const VocabShard shard{.vocab_start = static_cast<int64_t>(tp.rank()) * args.logits.dim(1),
                         .vocab_size = args.vocab_size};
  cross_entropy_backward(ctx, CrossEntropyBackwardArgs{.dlogits = args.dlogits, .logits = args.logits,
                                                       .targets = args.targets, .row_max = args.row_max,
                                                       .sum_exp = args.sum_exp, .shard = shard,
                                                       .dloss = args.dloss});
}

namespace {

// Copies `rows` rows of `row_bytes` bytes between row-major matrices with their own row strides (bytes).
void copy_block(const char* src, int64_t src_row_bytes, char* dst, int64_t dst_row_bytes, int64_t rows,
                int64_t row_bytes) {
  for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * dst_row_bytes, src + i * src_row_bytes, row_bytes);
}

// Checks a (full, shard) pair for one split and returns the shard's position in full as
// (first row, first column) in elements.
struct ShardPlace {
  int64_t row0 = 0, col0 = 0;
};
ShardPlace check_shard_pair(const char* op, const ConstTensorView& full, const ConstTensorView& shard,
                            TpSplitAxis axis, int tp_rank, int tp_size) {
  check_2d(op, full);
  check_2d(op, shard);
  OM_CHECK(full.dtype == shard.dtype, "%s: full %s and shard %s differ in dtype", op, full.ToString().c_str(),
           shard.ToString().c_str());
  OM_CHECK(full.device.kind == DeviceKind::kCpu && shard.device.kind == DeviceKind::kCpu,
           "%s: tensors must be in CPU memory", op);
  OM_CHECK(tp_rank >= 0 && tp_rank < tp_size, "%s: tp_rank %d outside [0, %d)", op, tp_rank, tp_size);
  const int split_dim = axis == TpSplitAxis::kRows ? 0 : 1;
  check_divides(op, full.dim(split_dim), tp_size, split_dim == 0 ? "rows" : "columns");
  Shape want = full.shape;
  want[split_dim] /= tp_size;
  OM_CHECK(shard.shape == want, "%s: shard %s, expected %s", op, shard.ToString().c_str(), want.ToString().c_str());
  ShardPlace p;
  (split_dim == 0 ? p.row0 : p.col0) = tp_rank * want[split_dim];
  return p;
}

}  // namespace

void slice_tp_shard(ConstTensorView full, TensorView shard, TpSplitAxis axis, int tp_rank, int tp_size) {
  const ShardPlace p = check_shard_pair("slice_tp_shard", full, shard, axis, tp_rank, tp_size);
  const int64_t es = static_cast<int64_t>(dtype_size(full.dtype));
  const int64_t full_row = full.dim(1) * es, shard_row = shard.dim(1) * es;
  copy_block(static_cast<const char*>(full.data) + p.row0 * full_row + p.col0 * es, full_row,
             static_cast<char*>(shard.data), shard_row, shard.dim(0), shard_row);
}

void place_tp_shard(ConstTensorView shard, TensorView full, TpSplitAxis axis, int tp_rank, int tp_size) {
  const ShardPlace p = check_shard_pair("place_tp_shard", full, shard, axis, tp_rank, tp_size);
  const int64_t es = static_cast<int64_t>(dtype_size(full.dtype));
  const int64_t full_row = full.dim(1) * es, shard_row = shard.dim(1) * es;
  copy_block(static_cast<const char*>(shard.data), shard_row,
             static_cast<char*>(full.data) + p.row0 * full_row + p.col0 * es, full_row, shard.dim(0), shard_row);
}

void slice_fused_tp_rows(ConstTensorView full, TensorView shard, std::span<const int64_t> segment_rows,
                         int64_t granule, int tp_rank, int tp_size) {
  const char* op = "slice_fused_tp_rows";
  check_2d(op, full);
  check_2d(op, shard);
  OM_CHECK(full.dtype == shard.dtype && full.dim(1) == shard.dim(1), "%s: full %s and shard %s disagree", op,
           full.ToString().c_str(), shard.ToString().c_str());
  OM_CHECK(tp_rank >= 0 && tp_rank < tp_size && granule >= 1, "%s: tp_rank %d of %d, granule %lld", op, tp_rank,
           tp_size, static_cast<long long>(granule));
  int64_t total = 0;
  for (int64_t rows : segment_rows) {
    check_divides(op, rows, tp_size * granule, "segment rows (per tp rank whole granules)");
    total += rows;
  }
  OM_CHECK(full.dim(0) == total && shard.dim(0) == total / tp_size, "%s: full %s / shard %s, segments sum to %lld",
           op, full.ToString().c_str(), shard.ToString().c_str(), static_cast<long long>(total));
  const int64_t row_bytes = full.dim(1) * static_cast<int64_t>(dtype_size(full.dtype));
  const char* src = static_cast<const char*>(full.data);
  char* dst = static_cast<char*>(shard.data);
  int64_t full_row0 = 0, shard_row0 = 0;
  for (int64_t rows : segment_rows) {
    const int64_t part = rows / tp_size;
    copy_block(src + (full_row0 + tp_rank * part) * row_bytes, row_bytes, dst + shard_row0 * row_bytes, row_bytes,
               part, row_bytes);
    full_row0 += rows;
    shard_row0 += part;
  }
}

}  // namespace om
