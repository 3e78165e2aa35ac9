// Optimizer units and their dp shards (optim/optimizer_units.h): where the cuts fall, that units of a
// real model cover every non-padding element exactly once, and the shard plan's balance guarantee.
#include "optim/optimizer_units.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "model/llama.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(OptimizerUnits, RowsAreCutAtLogicalMultiplesOfTheBlock) {
  // Memory rows [2, 12) of a (12, 5) parameter are logical rows [6, 16) of a (16, 9) tensor whose
  // columns start at 3: with B = 4 the cuts fall at logical rows 8 and 12 → units of 2, 4, 4 rows.
  HostTensor w("w", DType::kF32, {12, 5}), dw("dw", DType::kF32, {12, 5});
  const std::vector<Parameter> params = {Parameter{"mem", w.view(), dw.view(), true, {{"t", {16, 9}, 2, 10, 6, 3}}}};
  const std::vector<OptimizerUnit> units = make_units(params, 4);
  ASSERT_EQ(units.size(), 3u);
  const int64_t rows[] = {2, 4, 4}, row0[] = {2, 4, 8}, lrow0[] = {6, 8, 12};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(units[i].rows, rows[i]);
    EXPECT_EQ(units[i].row0, row0[i]);
    EXPECT_EQ(units[i].logical_row0, lrow0[i]);
    EXPECT_EQ(units[i].cols, 5);
    EXPECT_EQ(units[i].logical_col0, 3);
    EXPECT_EQ(units[i].param_offset(), row0[i] * 5);
    EXPECT_EQ(units[i].logical, "t");
  }
  // Memory rows 0, 1 are in no block: padding, in no unit.
  // Columns [3, 8) cut at 4: blocks of 1 and 4 columns.
  EXPECT_EQ(column_blocks(units[0], 4), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(column_blocks(units[0], 2), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(column_blocks(units[0], 1024), (std::vector<int64_t>{5}));
}

TEST(OptimizerUnits, OneDimensionalParametersAreChunksOfElements) {
  HostTensor g("g", DType::kF32, {10}), dg("dg", DType::kF32, {10});
  const std::vector<Parameter> params = {
      Parameter{"gain", g.view(), dg.view(), false, {whole_tensor_block("gain", g.shape())}}};
  const std::vector<OptimizerUnit> units = make_units(params, 4);
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(units[0].numel(), 4);
  EXPECT_EQ(units[2].numel(), 2);
  EXPECT_EQ(units[2].cols, 1);
  EXPECT_EQ(column_blocks(units[2], 4), (std::vector<int64_t>{1}));
}

TEST(OptimizerUnits, LlamaUnitsCoverEveryNonPaddingElementOnce) {
  // tiny with a 100-token vocabulary: Vp = 128, so embed and lm_head carry 28 padding rows each.
  LlamaConfig cfg = LlamaConfig::Preset("tiny").value();
  cfg.vocab_size = 100;
  const Llama model(cfg, 1);
  for (int64_t block : {1024, 100, 7}) {
    const std::vector<OptimizerUnit> units = make_units(model.parameters(), block);
    std::vector<std::vector<int>> count;
    for (const Parameter& p : model.parameters()) count.emplace_back(static_cast<size_t>(p.value.numel()), 0);
    for (const OptimizerUnit& u : units) {
      EXPECT_GE(u.rows, 1);
      EXPECT_LE(u.rows, block);
      // A cut only at a logical multiple of B or at a block's end: the unit never crosses a multiple.
      EXPECT_EQ(u.logical_row0 / block, (u.logical_row0 + u.rows - 1) / block) << u.logical;
      for (int64_t k = 0; k < u.numel(); ++k) ++count[u.param][static_cast<size_t>(u.param_offset() + k)];
    }
    for (size_t i = 0; i < count.size(); ++i) {
      const Parameter& p = model.parameters()[i];
      const bool vocab = p.name == "embed.weight" || p.name == "lm_head.weight";
      for (int64_t k = 0; k < p.value.numel(); ++k) {
        const bool padding = vocab && k / p.cols() >= cfg.vocab_size;
        ASSERT_EQ(count[i][static_cast<size_t>(k)], padding ? 0 : 1) << p.name << " element " << k << " B " << block;
      }
    }
  }
}

TEST(OptimizerUnits, ShardPlanCoversEveryUnitOnceAndIsBalanced) {
  // Unit sizes spread over three orders of magnitude, as in a model (gains vs vocabulary blocks).
  std::vector<OptimizerUnit> units;
  const Rng rng(5, "units/sizes");
  for (uint64_t i = 0; i < 97; ++i) {
    OptimizerUnit u;
    u.rows = 1 + static_cast<int64_t>(rng.UniformDouble(i) * 64.0);
    u.cols = 1 + static_cast<int64_t>(std::pow(2.0, 10.0 * rng.UniformDouble(1000 + i)));
    units.push_back(u);
  }
  int64_t total = 0, largest = 0;
  for (const OptimizerUnit& u : units) {
    total += u.numel();
    largest = std::max(largest, u.numel());
  }
  for (int dp : {1, 2, 3, 4, 7, 8, 200}) {
    const ShardPlan plan = assign_units(units, dp);
    ASSERT_EQ(plan.owner.size(), units.size());
    std::vector<std::vector<std::pair<int64_t, int64_t>>> ranges(static_cast<size_t>(dp));
    std::vector<int64_t> load(static_cast<size_t>(dp), 0);
    for (size_t u = 0; u < units.size(); ++u) {
      ASSERT_GE(plan.owner[u], 0);
      ASSERT_LT(plan.owner[u], dp);
      ranges[plan.owner[u]].push_back({plan.offset[u], plan.offset[u] + units[u].numel()});
      load[plan.owner[u]] += units[u].numel();
      EXPECT_EQ(plan.flat_offset(u), plan.owner[u] * plan.shard_size + plan.offset[u]);
    }
    EXPECT_EQ(load, plan.load) << "dp " << dp;
    EXPECT_EQ(std::accumulate(load.begin(), load.end(), int64_t{0}), total);
    // Within a shard: units back to back from 0 in ascending unit order, inside [0, S).
    for (const auto& r : ranges) {
      int64_t next = 0;
      for (const auto& [lo, hi] : r) {
        EXPECT_EQ(lo, next);
        next = hi;
      }
      EXPECT_LE(next, plan.shard_size);
    }
    const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    EXPECT_LE(*hi - *lo, largest) << "dp " << dp;  // the List-Scheduling guarantee
    EXPECT_EQ(plan.shard_size, std::max<int64_t>(1, *hi));
    // A pure function of (units, dp).
    const ShardPlan again = assign_units(units, dp);
    EXPECT_EQ(again.owner, plan.owner);
    EXPECT_EQ(again.offset, plan.offset);
  }
}

// Units of `param_numel.size()` parameters, `per_param` units each of param_numel[p] / per_param elements.
std::vector<OptimizerUnit> units_of(const std::vector<int64_t>& param_numel, int64_t per_param) {
  std::vector<OptimizerUnit> units;
  for (size_t p = 0; p < param_numel.size(); ++p) {
    for (int64_t k = 0; k < per_param; ++k) {
      OptimizerUnit u;
      u.param = p;
      u.row0 = k;
      u.rows = 1;
      u.cols = param_numel[p] / per_param;
      units.push_back(u);
    }
  }
  return units;
}

TEST(OptimizerUnits, GradBucketsAreWholeParametersFromTheLastOne) {
  // Parameters of 8, 4, 6, 2, 10 elements (two units each), taken from the last one down.
  const std::vector<int64_t> numel = {8, 4, 6, 2, 10};
  const std::vector<OptimizerUnit> units = units_of(numel, 2);
  // >= 12: {4: 10 < 12, + 3: 12} closes [3, 5); {2: 6, + 1: 10, + 0: 18} is what is left: [0, 3).
  GradBuckets g = grad_buckets(units, numel.size(), 12);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g.first_param, (std::vector<size_t>{3, 0}));
  EXPECT_EQ(g.end_param, (std::vector<size_t>{5, 3}));
  EXPECT_EQ(g.unit_bucket, (std::vector<int>{1, 1, 1, 1, 1, 1, 0, 0, 0, 0}));
  // 1 element: every parameter a bucket of its own, the last first.
  g = grad_buckets(units, numel.size(), 1);
  ASSERT_EQ(g.size(), 5u);
  EXPECT_EQ(g.first_param, (std::vector<size_t>{4, 3, 2, 1, 0}));
  EXPECT_EQ(g.unit_bucket, (std::vector<int>{4, 4, 3, 3, 2, 2, 1, 1, 0, 0}));
  // 0 (no overlap), or more than everything: one bucket.
  for (int64_t size : {int64_t{0}, int64_t{1000}}) {
    g = grad_buckets(units, numel.size(), size);
    ASSERT_EQ(g.size(), 1u) << size;
    EXPECT_EQ(g.first_param[0], 0u);
    EXPECT_EQ(g.end_param[0], numel.size());
    EXPECT_EQ(g.unit_bucket, std::vector<int>(units.size(), 0));
  }
}

TEST(OptimizerUnits, BucketedShardPlanKeepsEachBucketsSliceAndEqualsTheOldPlanForOneBucket) {
  std::vector<OptimizerUnit> units;
  const Rng rng(9, "units/bucketed");
  for (uint64_t i = 0; i < 60; ++i) {  // 20 parameters of 3 units, sizes over two orders of magnitude
    OptimizerUnit u;
    u.param = i / 3;
    u.rows = 1 + static_cast<int64_t>(rng.UniformDouble(i) * 16.0);
    u.cols = 1 + static_cast<int64_t>(std::pow(2.0, 7.0 * rng.UniformDouble(500 + i)));
    units.push_back(u);
  }
  for (int dp : {1, 2, 3, 8}) {
    // One bucket is the plan without buckets.
    const ShardPlan plain = assign_units(units, dp);
    const GradBuckets one = grad_buckets(units, 20, 0);
    const ShardPlan same = assign_units(units, dp, one.unit_bucket);
    EXPECT_EQ(same.owner, plain.owner);
    EXPECT_EQ(same.offset, plain.offset);
    EXPECT_EQ(same.shard_size, plain.shard_size);
    for (size_t u = 0; u < units.size(); ++u) {
      EXPECT_EQ(same.flat_offset(u), plain.owner[u] * plain.shard_size + plain.offset[u]);
    }

    const GradBuckets g = grad_buckets(units, 20, 300);
    ASSERT_GT(g.size(), 2u);
    const ShardPlan plan = assign_units(units, dp, g.unit_bucket);
    ASSERT_EQ(plan.bucket_size.size(), g.size());
    int64_t start = 0;
    std::vector<char> flat(static_cast<size_t>(dp * plan.shard_size), 0);
    for (size_t b = 0; b < g.size(); ++b) {
      EXPECT_EQ(plan.bucket_start[b], start);
      int64_t largest = 0;
      std::vector<int64_t> load(static_cast<size_t>(dp), 0);
      for (size_t u = 0; u < units.size(); ++u) {
        if (plan.bucket[u] != static_cast<int>(b)) continue;
        load[plan.owner[u]] += units[u].numel();
        largest = std::max(largest, units[u].numel());
        // Inside its owner's part of the bucket, in the shard and in the bucket's (dp·S_b) flat slice.
        EXPECT_GE(plan.offset[u], start);
        EXPECT_LE(plan.offset[u] + units[u].numel(), start + plan.bucket_size[b]);
        const int64_t f = plan.flat_offset(u) - dp * start;
        EXPECT_GE(f, plan.owner[u] * plan.bucket_size[b]);
        EXPECT_LE(f + units[u].numel(), (plan.owner[u] + 1) * plan.bucket_size[b]);
        EXPECT_EQ(plan.gathered_offset(u), plan.owner[u] * plan.shard_size + plan.offset[u]);
        for (int64_t k = 0; k < units[u].numel(); ++k) ++flat[static_cast<size_t>(plan.flat_offset(u) + k)];
      }
      const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
      EXPECT_LE(*hi - *lo, largest) << "dp " << dp << " bucket " << b;  // LPT within the bucket
      EXPECT_EQ(plan.bucket_size[b], std::max<int64_t>(1, *hi));
      start += plan.bucket_size[b];
    }
    EXPECT_EQ(plan.shard_size, start);
    // No two units share a flat element.
    EXPECT_EQ(std::count_if(flat.begin(), flat.end(), [](char c) { return c > 1; }), 0) << "dp " << dp;
  }
}

TEST(OptimizerUnits, PublishLayoutPacksEachShardsValuesAlignedAndInOrder) {
  // The bf16 tiny model (bf16 matrices, f32 gains) at several dp: within each shard the units lie in
  // ascending unit order, each at a multiple of kPublishAlign, not overlapping, inside shard_bytes,
  // which is the largest shard's aligned end; an all-f32 model whose units are all multiples of 8
  // elements (B = 1024 here) needs no padding, so its shard bytes are exactly 4·S (the f32 gather's).
  const LlamaConfig cfg = LlamaConfig::Preset("tiny").value();
  int exact_checks = 0;
  const auto check = [&](DType dtype, int64_t block, int dp) {
    const std::vector<Parameter> params = Llama::ParameterLayout(cfg, dtype, 1, 0);
    const std::vector<OptimizerUnit> units = make_units(params, block);
    const ShardPlan plan = assign_units(units, dp);
    const PublishLayout layout = publish_layout(units, plan, params);
    ASSERT_EQ(layout.offset.size(), units.size());
    EXPECT_EQ(layout.shard_bytes % kPublishAlign, 0);
    std::vector<int64_t> end(static_cast<size_t>(dp), 0);
    int64_t largest_end = 0;
    bool whole_packs = true;
    for (size_t u = 0; u < units.size(); ++u) {
      const int64_t bytes = units[u].numel() * static_cast<int64_t>(dtype_size(params[units[u].param].value.dtype));
      whole_packs = whole_packs && units[u].numel() % 8 == 0;
      int64_t& at = end[static_cast<size_t>(plan.owner[u])];
      EXPECT_EQ(layout.offset[u] % kPublishAlign, 0) << "unit " << u;
      EXPECT_GE(layout.offset[u], at) << "unit " << u << " overlaps the one before it in its shard";
      EXPECT_LT(layout.offset[u] - at, kPublishAlign) << "more padding than the alignment needs";
      at = layout.offset[u] + bytes;
      largest_end = std::max(largest_end, at);
      EXPECT_LE(at, layout.shard_bytes);
      EXPECT_EQ(layout.flat_offset(plan, u), plan.owner[u] * layout.shard_bytes + layout.offset[u]);
    }
    EXPECT_EQ(layout.shard_bytes, (largest_end + kPublishAlign - 1) / kPublishAlign * kPublishAlign);
    if (dtype == DType::kF32 && whole_packs) {
      EXPECT_EQ(layout.shard_bytes, 4 * plan.shard_size);
      ++exact_checks;
    }
  };
  for (DType dtype : {DType::kBF16, DType::kF32}) {
    for (int64_t block : {100, 1024}) {
      for (int dp : {1, 2, 3, 8}) {
        SCOPED_TRACE(format_message("%s B %ld dp %d", std::string(dtype_name(dtype)).c_str(), static_cast<long>(block), dp));
        check(dtype, block, dp);
      }
    }
  }
  EXPECT_EQ(exact_checks, 4) << "f32 with B = 1024 has whole packs at every dp";
}

}  // namespace
}  // namespace om
