// Optimizer units (DESIGN.md "OrthoAdam", "ZeRO-1 distributed optimizer"): the pieces in which the
// ZeRO-1 optimizer shards its state over dp and in which OrthoAdam rotates.
//
// A unit is ≤ B consecutive memory rows of one parameter, all its columns: contiguous in memory, and
// inside one logical block (core/parameter.h), so it is rows [logical_row0, logical_row0 + rows) ×
// columns [logical_col0, logical_col0 + cols) of one logical tensor. The cuts are at LOGICAL row
// multiples of B (and at the block's ends), so when B divides every tensor-parallel shard's row
// offset the units are the same logical pieces on every layout. A 1-D parameter (norm gain) is a
// column: its units are chunks of ≤ B elements (cols = 1). Padding rows are in no unit: the optimizer
// never touches them and they stay 0; a parameter without logical blocks is all padding (a tp rank's
// share of the padded vocabulary can be). whole_tensor_block describes a plain, unfused tensor.
//
// OrthoAdam's column blocks of a unit are its logical columns cut at multiples of B, so Q_c is
// block-diagonal with blocks ≤ B wide that also coincide across layouts when B divides the shards.
//
// Shards (assign_units): every unit goes whole to one dp rank. Units are taken largest first (ties:
// lower index first) and each goes to the least loaded rank (ties: lower rank), Graham's LPT rule;
// any such greedy keeps max load − min load ≤ the largest unit. Within a shard, units lie in
// ascending unit order back to back from offset 0; the shard is padded to S = the largest load, so
// the flat buffer (dp·S) splits evenly for reduce_scatter / all_gather. Pure function of the units
// and dp: every rank computes the same plan.
//
// Gradient buckets (--overlap-grad-reduce, optim/distributed_optimizer.h): the parameters are cut into
// buckets of whole parameters, taken from the last parameter down (the order the backward finishes
// them), each closed once it holds ≥ bucket_numel elements of units. With buckets the rule above runs
// per bucket: bucket b's units are shared out by the same greedy, and every shard holds its part of
// bucket 0, padded to S_0 = that bucket's largest load, then its part of bucket 1, …: S = Σ S_b. The
// gradients are reduced bucket by bucket, each from its own (dp·S_b) slice of the flat gradient buffer
// (bucket after bucket, each rank's chunk after chunk: flat_offset), so a bucket can be reduced as soon
// as the backward has finished its parameters. One bucket (the default) is the plan above.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/parameter.h"

namespace om {

struct OptimizerUnit {
  size_t param = 0;           // index into the parameter list
  int64_t row0 = 0;           // first memory row; the unit is elements [row0·cols, (row0 + rows)·cols)
  int64_t rows = 0;           // 1 ≤ rows ≤ B
  int64_t cols = 0;           // the parameter's columns (1 for 1-D)
  std::string logical;        // logical tensor name
  Shape logical_shape;        // the whole logical tensor's shape (1-D for norm gains)
  int64_t logical_row0 = 0;   // logical row of memory row row0
  int64_t logical_col0 = 0;   // logical column of memory column 0

  int64_t numel() const { return rows * cols; }
  int64_t param_offset() const { return row0 * cols; }  // first element within the parameter
};

// Units of every parameter, in parameter order, then ascending rows. REQUIRES: block ≥ 1.
std::vector<OptimizerUnit> make_units(std::span<const Parameter> params, int64_t block);

// Widths of a unit's column blocks, in column order (Σ = cols).
std::vector<int64_t> column_blocks(const OptimizerUnit& unit, int64_t block);

// Gradient buckets of whole parameters, in the order the backward finishes them (the last parameter's
// bucket first). bucket_numel ≤ 0, or ≥ every unit's elements together: one bucket of all parameters.
struct GradBuckets {
  std::vector<int> unit_bucket;     // (units) the bucket of each unit
  std::vector<size_t> first_param;  // (buckets) bucket b holds parameters [first_param[b], end_param[b])
  std::vector<size_t> end_param;
  size_t size() const { return first_param.size(); }
};
// The bucket size ZeRO-1 uses for OptimizerConfig::grad_bucket at dp ranks: grad_bucket when it overlaps
// the reduction with the backward (grad_bucket > 0 and dp > 1), else 0 (one bucket, nothing to overlap).
inline int64_t effective_grad_bucket(int64_t grad_bucket, int dp) {
  return dp > 1 && grad_bucket > 0 ? grad_bucket : 0;
}
// REQUIRES: every unit's parameter < n_params; the units in parameter order (make_units).
GradBuckets grad_buckets(std::span<const OptimizerUnit> units, size_t n_params, int64_t bucket_numel);

struct ShardPlan {
  int dp = 1;
  std::vector<int> owner;        // (units) the dp rank that owns each unit
  std::vector<int64_t> offset;   // (units) first element of the unit within its owner's shard
  std::vector<int64_t> load;     // (dp) elements of units per shard
  int64_t shard_size = 0;        // S = Σ_b bucket_size[b] (one bucket: the largest load, ≥ 1)
  std::vector<int> bucket;            // (units) its gradient bucket (all 0 for one bucket)
  std::vector<int64_t> bucket_start;  // (buckets) P_b = Σ_{b' < b} S_b': where bucket b begins in every shard
  std::vector<int64_t> bucket_size;   // (buckets) S_b = the bucket's largest load (≥ 1)

  // First element of unit u in the flat (dp·S) gradient buffer: bucket b's (dp·S_b) slice begins at
  // dp·P_b and holds rank r's part at r·S_b. One bucket: owner·S + offset, the shards back to back.
  int64_t flat_offset(size_t u) const {
    const size_t b = static_cast<size_t>(bucket[u]);
    return static_cast<int64_t>(dp) * bucket_start[b] + static_cast<int64_t>(owner[u]) * bucket_size[b] +
           (offset[u] - bucket_start[b]);
  }
  // First element of unit u in the (dp·S) all_gather of every rank's shard (shard after shard).
  int64_t gathered_offset(size_t u) const { return static_cast<int64_t>(owner[u]) * shard_size + offset[u]; }
};

// unit_bucket: (units) bucket indices 0..n−1, each used (GradBuckets::unit_bucket); empty: one bucket.
ShardPlan assign_units(std::span<const OptimizerUnit> units, int dp, std::span<const int> unit_bucket = {});

// Whether the units' f32 gradients, parameter p's first element at byte address grad_address(p), lie in
// memory exactly as a one-bucket dp = 1 shard: unit u at the first unit's address + 4·plan.offset[u] (the
// units back to back in unit order, no gaps). So they do in the model's gradient arena when the parameters
// are carved in order and each but the last fills whole 256-byte blocks (every Llama preset). ZeRO-1 then
// steps the gradients in place of a flat copy (DistributedOptimizer). Addresses are compared, never read.
bool gradients_form_shard(std::span<const OptimizerUnit> units, const ShardPlan& plan,
                          const std::function<uintptr_t(size_t)>& grad_address);

// The byte layout in which ZeRO-1 all-gathers updated weights in the parameters' own dtypes (bf16
// matrices at 2 bytes, f32 gains at 4; optim/distributed_optimizer.h step 5): shard r holds its units'
// values in the plan's order (ascending unit order), each at a multiple of kPublishAlign bytes (an
// aligned pack for the cast kernels), padded to shard_bytes = the largest shard (a multiple of
// kPublishAlign, ≥ kPublishAlign). Pure function of the units, plan and dtypes, like the plan.
inline constexpr int64_t kPublishAlign = 32;
struct PublishLayout {
  std::vector<int64_t> offset;  // (units) first byte of the unit within its owner's shard
  int64_t shard_bytes = 0;      // SB
  // First byte of unit u in the flat (dp·SB) buffer.
  int64_t flat_offset(const ShardPlan& plan, size_t u) const {
    return static_cast<int64_t>(plan.owner[u]) * shard_bytes + offset[u];
  }
};
// REQUIRES: `plan` is assign_units(units, ·) and every unit's parameter is in `params`.
PublishLayout publish_layout(std::span<const OptimizerUnit> units, const ShardPlan& plan,
                             std::span<const Parameter> params);

}  // namespace om
