// Fake quantisation (eval/quantize.h): exact results on small examples whose steps s are powers of
// two (so x / s, rounding and q * s are all exact and the expected values follow by hand), the
// round-half-away-from-zero ties, degenerate groups, the error bound and grid structure on random
// data for every scheme's group layout, thread-count independence, and --quant parsing.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "eval/quantize.h"
#include "kernels/check/tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr QuantScheme kAllSchemes[] = {QuantScheme::kW8A8Coarse, QuantScheme::kW8A8Moderate, QuantScheme::kW8A8Fine,
                                       QuantScheme::kW4, QuantScheme::kW4G128};

// Element-wise numeric equality (so -0 == +0) with the index in the message.
void expect_values(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << what << " at " << i;
}

// Bitwise equality (NaN payloads and the sign of zero included).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> absmax(std::vector<float> x) {
  absmax_int8(x.data(), static_cast<int64_t>(x.size()));
  return x;
}
std::vector<float> zeropoint(std::vector<float> x) {
  zeropoint_int4(x.data(), static_cast<int64_t>(x.size()));
  return x;
}

// ---------------------------------------------------------------------------------------------------
// Absmax int8

TEST(Absmax, ExactOnSmallIntegerExample) {
  // max|x| = 127 -> s = 1: integers are unchanged; 63.5 / 1 = 63.5 is a tie and rounds away from 0.
  expect_values(absmax({-127.0f, 0.0f, 63.5f, 127.0f}), {-127.0f, 0.0f, 64.0f, 127.0f}, "absmax [-127, 0, 63.5, 127]");
  // The whole int8 grid at s = 1 is a fixed point.
  std::vector<float> grid;
  for (int k = -127; k <= 127; ++k) grid.push_back(static_cast<float>(k));
  expect_values(absmax(grid), grid, "absmax of -127..127");
}

TEST(Absmax, RoundsHalfAwayFromZero) {
  // max|x| = 63.5 -> s = 63.5 / 127 = 0.5 exactly. Each x below has x / s = k + 0.5 exactly in float;
  // half-away gives the first list, half-to-even (the usual rint) would give 1, -1, 0, -0, 63, -63, 2.
  const std::vector<float> x = {63.5f, 1.25f, -1.25f, 0.25f, -0.25f, 63.25f, -63.25f, 1.75f};
  //                    x / s:  127    2.5    -2.5    0.5    -0.5    126.5   -126.5   3.5
  expect_values(absmax(x), {63.5f, 1.5f, -1.5f, 0.5f, -0.5f, 63.5f, -63.5f, 2.0f}, "absmax ties at s = 0.5");
  // A tie at a step that is not a power of two: max|x| = 1, s = fl(1 / 127), x = fl(4.5 s) with
  // fl(x / s) = 4.5 exactly -> 5. x * fl(1 / s) would give 4.4999995 -> 4: the header's x / s matters.
  const float s = 1.0f / 127.0f, tie = 4.5f * s;
  ASSERT_EQ(tie / s, 4.5f) << "the example needs an exact tie in float";
  const std::vector<float> got = absmax({1.0f, tie});
  EXPECT_EQ(got[1], 5.0f * s) << "fl(4.5 s) at s = 1/127";
}

TEST(Absmax, AllZeroGroupStaysZero) {
  // s = 0 would give 0 / 0 = NaN: the header skips the group.
  for (float v : absmax(std::vector<float>(7, 0.0f))) EXPECT_EQ(v, 0.0f);
  // Per row: the zero row stays zero while its neighbours (max 127, s = 1) are quantised.
  std::vector<float> x = {127.0f, 2.5f, 0.0f, 0.0f, -127.0f, -0.4f};
  absmax_int8_rows(x.data(), 3, 2);
  expect_values(x, {127.0f, 3.0f, 0.0f, 0.0f, -127.0f, -0.0f}, "absmax rows with a zero row");
  absmax_int8(x.data(), 0);  // empty group: a no-op
}

// ---------------------------------------------------------------------------------------------------
// Zeropoint int4

TEST(Zeropoint, ExactOnIntegerGrids) {
  // lo 0, hi 15 -> s = 1, z = 0: every q = x.
  std::vector<float> x;
  for (int k = 0; k <= 15; ++k) x.push_back(static_cast<float>(k));
  expect_values(zeropoint(x), x, "zeropoint of 0..15");
  // lo -8, hi 7 -> s = 1, z = 8 (a negative minimum uses the zero point).
  std::vector<float> y;
  for (int k = 7; k >= -8; --k) y.push_back(static_cast<float>(k));
  expect_values(zeropoint(y), y, "zeropoint of 7..-8");
  // lo 0, hi 30 -> s = 2: even integers are on the grid.
  std::vector<float> e;
  for (int k = 0; k <= 15; ++k) e.push_back(2.0f * static_cast<float>(k));
  expect_values(zeropoint(e), e, "zeropoint of 0, 2, .., 30");
}

TEST(Zeropoint, RoundsHalfAwayFromZero) {
  // lo -3, hi 12 -> s = 1, z = 3. Ties x = k + 0.5: round(x) + 3, back as round(x). Half-to-even
  // would give -2, -0, 0, 2, 10.
  expect_values(zeropoint({-3.0f, 12.0f, -2.5f, -0.5f, 0.5f, 2.5f, 10.5f}),
                {-3.0f, 12.0f, -3.0f, -1.0f, 1.0f, 3.0f, 11.0f}, "zeropoint ties, lo -3 hi 12");
  // lo 0, hi 30 -> s = 2: x / s = 2.5, 1.5, 0.5, 14.5 -> 3, 2, 1, 15.
  expect_values(zeropoint({0.0f, 30.0f, 5.0f, 3.0f, 1.0f, 29.0f}), {0.0f, 30.0f, 6.0f, 4.0f, 2.0f, 30.0f},
                "zeropoint ties at s = 2");
  // A tie in the zero point itself: lo -7.5, hi 7.5 -> s = 1, z = round(7.5) = 8. The minimum maps
  // to q = round(-7.5) + 8 = 0 -> -8; the maximum to round(7.5) + 8 = 16, clamped to 15 -> 7. Both
  // errors are exactly s / 2, the bound.
  expect_values(zeropoint({-7.5f, 7.5f, 0.0f, 0.5f, -0.5f}), {-8.0f, 7.0f, 0.0f, 1.0f, -1.0f},
                "zeropoint with a tied zero point");
}

TEST(Zeropoint, ConstantZeroAndSingleElementGroupsAreUnchanged) {
  // hi = lo gives s = 0: the header leaves such a group as it is (no 0 / 0).
  const std::vector<std::vector<float>> groups = {
      {3.7f, 3.7f, 3.7f}, {0.0f, 0.0f, 0.0f, 0.0f}, {-2.3f}, {1e-30f}, {-5e30f, -5e30f}};
  for (const std::vector<float>& g : groups) {
    const std::vector<float> got = zeropoint(g);
    EXPECT_TRUE(same_bits(got, g)) << "constant group of " << g.size() << " x " << g[0];
  }
  // The same through the row/group entry points: a constant row next to a varying one, and w4 on a
  // (3, 1) weight (every row is a one-element group).
  std::vector<float> x = {4.1f, 4.1f, 4.1f, 0.0f, 15.0f, 7.5f};
  zeropoint_int4_groups(x.data(), 2, 3, 128);
  expect_values(x, {4.1f, 4.1f, 4.1f, 0.0f, 15.0f, 8.0f}, "constant row next to a varying row");
  std::vector<float> col = {0.3f, -1.7f, 9.9f};
  const std::vector<float> col0 = col;
  fake_quant_weight(QuantScheme::kW4, col.data(), 3, 1);
  EXPECT_TRUE(same_bits(col, col0)) << "w4 on single-element rows";
  zeropoint_int4(x.data(), 0);  // empty group: a no-op
}

// ---------------------------------------------------------------------------------------------------
// Random data: error bound, distinct values and grid, for each scheme's group layout.

// Rows of N(0, 1) scaled by 2^(r - 4): rows differ by up to 2^8 in magnitude, so a per-tensor step
// and a per-row step give visibly different grids.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  const Rng rng(seed, "quantize");
  rng.FillNormal(x.data(), rows * cols, 0, 0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] *= std::ldexp(1.0f, static_cast<int>(r % 9) - 4);
  return x;
}

enum class Kind : uint8_t { kAbsmax, kZeropoint };

// Checks one group x[begin, begin + n) of the original `orig` against its quantised `got`.
//
// Error bound. Let u = 2^-24 (f32 unit round-off), s the group's step (computed here by the header's
// formula, in float, as the implementation does), M = max|x| over the group, t = fl(x / s) =
// (x / s)(1 + d1) and r = round(t), |r - t| <= 1/2, |d1| <= u.
//   Unclamped (q - z = r): x' = fl(r s) = r s (1 + d2), so
//     |x' - x| <= |r - t| s + |t - x / s| s + u |r s| <= s/2 + u |x| + u |x'| (1 + u).
//   Absmax never clamps (fl(x / s) <= 127 (1 + u)^2 < 127.5). Zeropoint clamps at 15 only when
//   x > (15 - z) s; with x <= hi, 15 s = (hi - lo)(1 + e), |e| <= 2u + u^2 (hi - lo, then / 15) and
//   z s <= -lo (1 + d3) + s/2:  x - x' <= hi - (15 - z) s + u |x'| (1 + u)
//                                      <= s/2 + 2u (hi - lo) + u |lo| + u |x'| (1 + u)
//   with hi - lo <= 15 s (1 + 3u): <= s/2 + u (30 s + |lo| + |x'|) + O(u^2 s). The clamp at 0 is the
//   mirror image with x >= lo: x' - x <= s/2 + u |lo| + u |x'|.
// Both are below  s/2 + eps * (|x| + |x'| + M + 16 s)  with eps = dtype_eps(f32) = 2u: each u-term
// above is covered twice over (30 u s by 32 u s), which also absorbs the O(u^2) terms.
//
// Grid: x' = fl(k s) for an integer k = q - z with q in [0, 15] (zeropoint; z = 0 for absmax, q in
// [-127, 127]); fl(x' / s) = k (1 + d)(1 + d'), within 2 * 142 u of k, so round(x' / s) recovers k
// and x' must equal fl(k s) exactly. Distinct values per group then number at most 255 / 16.
void check_group(const std::vector<float>& orig, const std::vector<float>& got, int64_t begin, int64_t n, Kind kind,
                 const std::string& what) {
  float lo = orig[begin], hi = orig[begin], m = 0.0f;
  for (int64_t i = begin; i < begin + n; ++i) {
    lo = std::min(lo, orig[i]);
    hi = std::max(hi, orig[i]);
    m = std::max(m, std::fabs(orig[i]));
  }
  const float s = kind == Kind::kAbsmax ? m / 127.0f : (hi - lo) / 15.0f;
  ASSERT_GT(s, 0.0f) << what << ": the random group is not constant";
  const float z = kind == Kind::kAbsmax ? 0.0f : std::round(-lo / s);
  const float q_lo = kind == Kind::kAbsmax ? -127.0f : 0.0f, q_hi = kind == Kind::kAbsmax ? 127.0f : 15.0f;
  const double eps = dtype_eps(DType::kF32);
  std::set<float> distinct;
  int64_t bound_fail = 0, grid_fail = 0;
  double worst_budget = 0.0;
  for (int64_t i = begin; i < begin + n; ++i) {
    const double x = orig[i], xq = got[i];
    const double bound = 0.5 * s + eps * (std::fabs(x) + std::fabs(xq) + m + 16.0 * s);
    worst_budget = std::max(worst_budget, std::fabs(xq - x) / bound);
    if (!(std::fabs(xq - x) <= bound)) ++bound_fail;
    const float k = std::round(got[i] / s);
    if (!(got[i] == k * s && k + z >= q_lo && k + z <= q_hi)) ++grid_fail;
    distinct.insert(got[i]);
  }
  EXPECT_EQ(bound_fail, 0) << what << ": elements past s/2 + rounding (s = " << s << ", worst " << worst_budget
                           << " of the budget)";
  EXPECT_EQ(grid_fail, 0) << what << ": elements off the grid fl(k s), s = " << s;
  EXPECT_LE(distinct.size(), kind == Kind::kAbsmax ? 255u : 16u) << what;
  // Most of the budget is the s/2 term: on a few hundred N(0, 1) draws some element lands near a
  // half step. A quantiser that did nothing would pass the bound, so the grid check above is the one
  // that fails for it; this one fails for a wrong step (too coarse).
}

struct Layout {
  const char* name;
  int64_t group;  // contiguous group length inside a row; 0 = whole tensor
};

void check_layout(const std::vector<float>& orig, const std::vector<float>& got, int64_t rows, int64_t cols,
                  Layout layout, Kind kind) {
  if (layout.group == 0) {
    check_group(orig, got, 0, rows * cols, kind, std::string(layout.name) + " (whole tensor)");
    return;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += layout.group)
      check_group(orig, got, r * cols + c0, std::min(layout.group, cols - c0), kind,
                  std::string(layout.name) + " row " + std::to_string(r) + " col " + std::to_string(c0));
}

TEST(FakeQuant, RandomDataWithinHalfAStepOnTheGrid) {
  const int64_t rows = 9, cols = 300;  // 300 = 128 + 128 + 44
  const std::vector<float> w = random_matrix(rows, cols, 7);
  struct Case {
    QuantScheme scheme;
    bool weight;
    Layout layout;
    Kind kind;
  };
  const Case cases[] = {
      {QuantScheme::kW8A8Coarse, true, {"w8a8-coarse W per tensor", 0}, Kind::kAbsmax},
      {QuantScheme::kW8A8Moderate, true, {"w8a8-moderate W per row", cols}, Kind::kAbsmax},
      {QuantScheme::kW8A8Fine, true, {"w8a8-fine W per row", cols}, Kind::kAbsmax},
      {QuantScheme::kW4, true, {"w4 W per row", cols}, Kind::kZeropoint},
      {QuantScheme::kW4G128, true, {"w4-g128 W per 128", 128}, Kind::kZeropoint},
      {QuantScheme::kW8A8Coarse, false, {"w8a8-coarse X per tensor", 0}, Kind::kAbsmax},
      {QuantScheme::kW8A8Moderate, false, {"w8a8-moderate X per tensor", 0}, Kind::kAbsmax},
      {QuantScheme::kW8A8Fine, false, {"w8a8-fine X per token", cols}, Kind::kAbsmax},
  };
  for (const Case& c : cases) {
    std::vector<float> got = w;
    if (c.weight)
      fake_quant_weight(c.scheme, got.data(), rows, cols);
    else
      fake_quant_activation(c.scheme, got.data(), rows, cols);
    EXPECT_FALSE(same_bits(got, w)) << c.layout.name << ": nothing was quantised";
    check_layout(w, got, rows, cols, c.layout, c.kind);
  }
}

// ---------------------------------------------------------------------------------------------------
// Scheme layouts on exact examples

TEST(FakeQuant, PerTokenStepsDifferPerRowPerTensorStepIsShared) {
  // Row 0 has max 127, row 1 max 63.5. Per token: s = 1 and s = 0.5; per tensor: s = 1 for both.
  // 1.25: 1.25 (s 1) -> 1; 1.25 / 0.5 = 2.5 -> 3 -> 1.5.  63.5 at s = 1 is a tie -> 64.
  const std::vector<float> x = {127.0f, 1.25f, -3.0f, 0.5f, 63.5f, 1.25f, -3.0f, 0.5f};
  const std::vector<float> per_token = {127.0f, 1.0f, -3.0f, 1.0f, 63.5f, 1.5f, -3.0f, 0.5f};
  const std::vector<float> per_tensor = {127.0f, 1.0f, -3.0f, 1.0f, 64.0f, 1.0f, -3.0f, 1.0f};
  const auto act = [&](QuantScheme s) {
    std::vector<float> y = x;
    fake_quant_activation(s, y.data(), 2, 4);
    return y;
  };
  const auto wgt = [&](QuantScheme s) {
    std::vector<float> y = x;
    fake_quant_weight(s, y.data(), 2, 4);
    return y;
  };
  expect_values(act(QuantScheme::kW8A8Fine), per_token, "w8a8-fine activations (per token)");
  expect_values(act(QuantScheme::kW8A8Moderate), per_tensor, "w8a8-moderate activations (per tensor)");
  expect_values(act(QuantScheme::kW8A8Coarse), per_tensor, "w8a8-coarse activations (per tensor)");
  // Weights: per output channel (row) for moderate and fine, per tensor for coarse.
  expect_values(wgt(QuantScheme::kW8A8Fine), per_token, "w8a8-fine weights (per row)");
  expect_values(wgt(QuantScheme::kW8A8Moderate), per_token, "w8a8-moderate weights (per row)");
  expect_values(wgt(QuantScheme::kW8A8Coarse), per_tensor, "w8a8-coarse weights (per tensor)");
}

TEST(FakeQuant, W4G128GroupsArePerRowWithAShortTail) {
  // W (2, 300): groups of 128, 128, 44 in each row. Inside group g of row 0, element j has the grid
  // value b = j % 16 (g 0: s 1, z 0), 10 (j % 16) (g 1: s 10, z 0) or j % 16 - 8 (g 2: s 1, z 8), and
  // element j = 5 is moved off the grid: 5.25 -> 5, 52 -> 50, -2.75 -> -3. Row 1 is row 0 times 0.5
  // (all steps halve; still exact). Fake quantisation must give back the grid values b exactly.
  // Groups laid over the flat array (not per row) would mix row 0's tail (-8..7) with row 1's head
  // (0..7.5), s = 15.5 / 15, and miss; a dropped tail group would keep -2.75.
  const int64_t rows = 2, cols = 300;
  std::vector<float> w(rows * cols), want(rows * cols);
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t g = c / 128, j = c % 128;
    const float k = static_cast<float>(j % 16);
    const float b = g == 0 ? k : g == 1 ? 10.0f * k : k - 8.0f;
    const float off = g == 0 ? 5.25f : g == 1 ? 52.0f : -2.75f;
    want[c] = b;
    w[c] = j == 5 ? off : b;
    want[cols + c] = 0.5f * want[c];
    w[cols + c] = 0.5f * w[c];
  }
  std::vector<float> got = w;
  fake_quant_weight(QuantScheme::kW4G128, got.data(), rows, cols);
  expect_values(got, want, "w4-g128 on (2, 300)");
  // Per row (w4), row 0 spans -8..150 with s = 158 / 15: the small groups cannot stay on their grid.
  std::vector<float> per_row = w;
  fake_quant_weight(QuantScheme::kW4, per_row.data(), rows, cols);
  EXPECT_FALSE(same_bits(per_row, want)) << "w4 (one group per row) must differ from w4-g128 here";
  // And the group entry point agrees with quantising each row slice on its own.
  std::vector<float> slices = w;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += 128) zeropoint_int4(slices.data() + r * cols + c0, std::min<int64_t>(128, cols - c0));
  EXPECT_TRUE(same_bits(slices, got));
}

TEST(FakeQuant, WeightOnlySchemesLeaveActivationsUntouched) {
  std::vector<float> x = random_matrix(5, 77, 11);
  x[3] = -0.0f;
  x[4] = 1e-42f;  // a subnormal
  for (QuantScheme s : {QuantScheme::kW4, QuantScheme::kW4G128}) {
    std::vector<float> y = x;
    fake_quant_activation(s, y.data(), 5, 77);
    EXPECT_TRUE(same_bits(y, x)) << quant_scheme_name(s);
  }
}

TEST(FakeQuant, ResultsDoNotDependOnTheThreadCount) {
  // Rows are independent and the per-tensor max is exact in any order: 1 thread and 3 threads must
  // agree bit for bit. 37 rows do not divide evenly among 3 threads.
  const int64_t rows = 37, cols = 300;
  const std::vector<float> x = random_matrix(rows, cols, 23);
  const int saved = omp_get_max_threads();
  for (QuantScheme s : kAllSchemes) {
    std::vector<float> w1 = x, w3 = x, a1 = x, a3 = x;
    omp_set_num_threads(1);
    fake_quant_weight(s, w1.data(), rows, cols);
    fake_quant_activation(s, a1.data(), rows, cols);
    omp_set_num_threads(3);
    fake_quant_weight(s, w3.data(), rows, cols);
    fake_quant_activation(s, a3.data(), rows, cols);
    EXPECT_TRUE(same_bits(w1, w3)) << quant_scheme_name(s) << " weights";
    EXPECT_TRUE(same_bits(a1, a3)) << quant_scheme_name(s) << " activations";
  }
  omp_set_num_threads(saved);
}

// ---------------------------------------------------------------------------------------------------
// --quant

TEST(ParseQuantList, NamesRoundTrip) {
  for (QuantScheme s : kAllSchemes) {
    auto parsed = parse_quant_list(quant_scheme_name(s));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(parsed.value(), std::vector<QuantScheme>{s}) << quant_scheme_name(s);
  }
  auto all = parse_quant_list("all");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value(), std::vector<QuantScheme>(std::begin(kAllSchemes), std::end(kAllSchemes)));
  std::vector<std::string> names;
  for (QuantScheme s : all.value()) names.emplace_back(quant_scheme_name(s));
  EXPECT_EQ(names, (std::vector<std::string>{"w8a8-coarse", "w8a8-moderate", "w8a8-fine", "w4", "w4-g128"}));
  // The given order is kept; spaces around names are ignored.
  auto two = parse_quant_list("w4-g128, w8a8-coarse");
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two.value(), (std::vector<QuantScheme>{QuantScheme::kW4G128, QuantScheme::kW8A8Coarse}));
}

TEST(ParseQuantList, RejectsUnknownEmptyAndDuplicateNames) {
  for (const char* bad : {"", " ", "w3", "W4", "w4,w4", "w4,", ",w4", "w4,,w8a8-fine", "all,w4", "w8a8"}) {
    auto parsed = parse_quant_list(bad);
    ASSERT_FALSE(parsed.ok()) << "'" << bad << "' was accepted";
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    const std::string msg = parsed.status().message();  // status() returns a copy
    EXPECT_NE(msg.find("--quant"), std::string::npos) << msg;
    for (QuantScheme s : kAllSchemes)
      EXPECT_NE(msg.find(std::string(quant_scheme_name(s))), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace om
