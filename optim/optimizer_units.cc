#include "optim/optimizer_units.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace om {
namespace {

// [lo, hi) cut at multiples of `block`: calls f(start, length) for each piece in order.
template <typename F>
void cut_at_multiples(int64_t lo, int64_t hi, int64_t block, F&& f) {
  for (int64_t a = lo; a < hi;) {
    const int64_t b = std::min(hi, (a / block + 1) * block);
    f(a, b - a);
    a = b;
  }
}

}  // namespace

std::vector<OptimizerUnit> make_units(std::span<const Parameter> params, int64_t block) {
  OM_CHECK(block >= 1, "make_units: block size %ld must be >= 1 (--ortho-block)", static_cast<long>(block));
  std::vector<OptimizerUnit> units;
  for (size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    for (const LogicalBlock& b : p.blocks) {
      OM_CHECK(b.rows >= 1 && b.row0 >= 0 && b.row0 + b.rows <= p.rows(),
               "make_units: logical block '%s' rows [%ld, %ld) do not fit parameter '%s' %s", b.name.c_str(),
               static_cast<long>(b.row0), static_cast<long>(b.row0 + b.rows), p.name.c_str(),
               p.value.shape.ToString().c_str());
      cut_at_multiples(b.logical_row0, b.logical_row0 + b.rows, block, [&](int64_t lr, int64_t n) {
        units.push_back({i, b.row0 + (lr - b.logical_row0), n, p.cols(), b.name, b.shape, lr, b.col0});
      });
    }
  }
  return units;
}

std::vector<int64_t> column_blocks(const OptimizerUnit& unit, int64_t block) {
  std::vector<int64_t> widths;
  cut_at_multiples(unit.logical_col0, unit.logical_col0 + unit.cols, block,
                   [&](int64_t, int64_t n) { widths.push_back(n); });
  return widths;
}

GradBuckets grad_buckets(std::span<const OptimizerUnit> units, size_t n_params, int64_t bucket_numel) {
  std::vector<int64_t> param_numel(n_params, 0);
  for (const OptimizerUnit& u : units) {
    OM_CHECK(u.param < n_params, "grad_buckets: a unit of parameter %zu of %zu", u.param, n_params);
    param_numel[u.param] += u.numel();
  }
  // From the last parameter down; a bucket closes once it holds >= bucket_numel elements. The
  // parameters below the last closed bucket form the final one (even when smaller).
  GradBuckets g;
  size_t end = n_params;
  int64_t held = 0;
  for (size_t p = n_params; p-- > 0;) {
    held += param_numel[p];
    if (bucket_numel > 0 && held >= bucket_numel && p > 0) {
      g.first_param.push_back(p);
      g.end_param.push_back(end);
      end = p;
      held = 0;
    }
  }
  if (end > 0 || g.first_param.empty()) {
    g.first_param.push_back(0);
    g.end_param.push_back(end);
  }
  std::vector<int> bucket_of_param(n_params, 0);
  for (size_t b = 0; b < g.size(); ++b) {
    for (size_t p = g.first_param[b]; p < g.end_param[b]; ++p) bucket_of_param[p] = static_cast<int>(b);
  }
  g.unit_bucket.reserve(units.size());
  for (const OptimizerUnit& u : units) g.unit_bucket.push_back(bucket_of_param[u.param]);
  return g;
}

ShardPlan assign_units(std::span<const OptimizerUnit> units, int dp, std::span<const int> unit_bucket) {
  OM_CHECK(dp >= 1, "assign_units: dp = %d must be >= 1", dp);
  OM_CHECK(unit_bucket.empty() || unit_bucket.size() == units.size(),
           "assign_units: %zu bucket indices for %zu units", unit_bucket.size(), units.size());
  ShardPlan plan;
  plan.dp = dp;
  plan.owner.assign(units.size(), 0);
  plan.offset.assign(units.size(), 0);
  plan.load.assign(static_cast<size_t>(dp), 0);
  plan.bucket.assign(units.size(), 0);
  int buckets = 1;
  for (size_t u = 0; u < unit_bucket.size(); ++u) {
    OM_CHECK(unit_bucket[u] >= 0, "assign_units: unit %zu has bucket %d", u, unit_bucket[u]);
    plan.bucket[u] = unit_bucket[u];
    buckets = std::max(buckets, unit_bucket[u] + 1);
  }
  // Per bucket: units largest first (ties: lower index), each to the least loaded rank of this
  // bucket (ties: lower rank); then, within each shard's part of the bucket, ascending unit order.
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return units[a].numel() > units[b].numel(); });
  int64_t start = 0;
  for (int b = 0; b < buckets; ++b) {
    std::vector<int64_t> load(static_cast<size_t>(dp), 0);
    for (size_t u : order) {
      if (plan.bucket[u] != b) continue;
      const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
      plan.owner[u] = r;
      load[r] += units[u].numel();
    }
    std::vector<int64_t> fill(static_cast<size_t>(dp), start);
    for (size_t u = 0; u < units.size(); ++u) {
      if (plan.bucket[u] != b) continue;
      plan.offset[u] = fill[plan.owner[u]];
      fill[plan.owner[u]] += units[u].numel();
    }
    const int64_t size = std::max<int64_t>(1, *std::max_element(load.begin(), load.end()));
    for (int r = 0; r < dp; ++r) plan.load[r] += load[r];
    plan.bucket_start.push_back(start);
    plan.bucket_size.push_back(size);
    start += size;
  }
  plan.shard_size = start;
  return plan;
}

bool gradients_form_shard(std::span<const OptimizerUnit> units, const ShardPlan& plan,
                          const std::function<uintptr_t(size_t)>& grad_address) {
  if (units.empty() || plan.dp != 1 || plan.bucket_size.size() != 1 || plan.offset[0] != 0) return false;
  const auto address = [&](const OptimizerUnit& u) {
    return grad_address(u.param) + static_cast<uintptr_t>(u.param_offset()) * sizeof(float);
  };
  const uintptr_t first = address(units[0]);
  for (size_t u = 0; u < units.size(); ++u) {
    if (address(units[u]) != first + static_cast<uintptr_t>(plan.offset[u]) * sizeof(float)) return false;
  }
  return true;
}

PublishLayout publish_layout(std::span<const OptimizerUnit> units, const ShardPlan& plan,
                             std::span<const Parameter> params) {
  OM_CHECK(plan.owner.size() == units.size(), "publish_layout: a plan of %zu units for %zu units", plan.owner.size(),
           units.size());
  const auto align = [](int64_t bytes) { return (bytes + kPublishAlign - 1) / kPublishAlign * kPublishAlign; };
  PublishLayout layout;
  layout.offset.assign(units.size(), 0);
  std::vector<int64_t> fill(static_cast<size_t>(plan.dp), 0);
  for (size_t u = 0; u < units.size(); ++u) {  // ascending unit order within each shard, as the plan
    OM_CHECK(units[u].param < params.size(), "publish_layout: unit %zu names parameter %zu of %zu", u, units[u].param,
             params.size());
    int64_t& at = fill[static_cast<size_t>(plan.owner[u])];
    layout.offset[u] = align(at);
    at = layout.offset[u] + units[u].numel() * static_cast<int64_t>(dtype_size(params[units[u].param].value.dtype));
  }
  layout.shard_bytes = kPublishAlign;
  for (int64_t bytes : fill) layout.shard_bytes = std::max(layout.shard_bytes, align(bytes));
  return layout;
}

}  // namespace om
