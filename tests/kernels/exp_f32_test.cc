// The shared f32 exp of the CPU row loops (kernels/cpu/exp_f32.h), through cpu::exp_f32_array, which
// runs the same multi-versioned clone as the kernels: exp_f32 within kExpF32Ulps of exp and within
// one float of the correctly rounded value on a dense grid of [-104, 88]; exp_shifted_f32 within
// kExpF32Ulps of exp(x - m) at shifts up to 1e4, where exp_f32(x - m) is not (why the TwoSum is
// kept); and the edges: exp(0) = 1, +0 below the underflow threshold, +inf above 88, NaN -> NaN.
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/check/tolerance.h"
#include "kernels/cpu/exp_f32.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

using cpu::ExpShift;

std::vector<float> exp_of(const std::vector<float>& x, float shift, ExpShift form) {
  std::vector<float> y(x.size());
  cpu::exp_f32_array({y.data(), x.data(), static_cast<int64_t>(x.size()), shift, form});
  return y;
}

// Units in the last place of e (double) as an f32 result: 2^(exponent - 23), or the subnormal
// spacing 2^-149 below FLT_MIN.
double f32_ulp(double e) {
  if (e < FLT_MIN) return std::ldexp(1.0, -149);
  int e2 = 0;
  std::frexp(e, &e2);
  return std::ldexp(1.0, e2 - 24);
}

// Floats between two non-negative floats (adjacent floats are 1 apart).
int64_t floats_apart(float a, float b) {
  return std::abs(static_cast<int64_t>(std::bit_cast<int32_t>(a)) - std::bit_cast<int32_t>(b));
}

// The largest errors of exp(x - m) over x = fl(m + d) for every stride-th float d in [-104, 88]
// (by bit pattern: (0, 88], then (-0, -104]), against exp(x - m) formed in double (exact there):
// in ulp of the exact value, and in floats from it rounded to f32. Where the exact value is below
// FLT_MIN, kExact must give 0 if x - m is exact in f32 (always for m = 0), else at most FLT_MIN
// (the flush applies to the rounded x - m); just above FLT_MIN, within FLT_MIN. Those edges are not
// asserted for kRounded at m != 0, whose x - m is rounded before the flush.
struct Sweep {
  double worst_ulps = 0.0;
  float worst_d = 0.0f;      // x - m at worst_ulps
  int64_t worst_floats = 0;  // floats between the result and the correctly rounded one
  int64_t counted = 0;       // results >= FLT_MIN (1 + 2^-10), measured in ulp
};
Sweep sweep(uint32_t stride, float m, ExpShift form) {
  constexpr size_t kChunk = size_t{1} << 20;
  const uint32_t ranges[2][2] = {{1u, std::bit_cast<uint32_t>(88.0f)},
                                 {std::bit_cast<uint32_t>(-0.0f) + 1, std::bit_cast<uint32_t>(-104.0f)}};
  Sweep s;
  std::vector<float> x;
  for (const auto& range : ranges) {
    for (uint64_t u = range[0]; u <= range[1];) {
      x.clear();
      for (; x.size() < kChunk && u <= range[1]; u += stride)
        x.push_back(static_cast<float>(static_cast<double>(m) + std::bit_cast<float>(static_cast<uint32_t>(u))));
      const std::vector<float> y = exp_of(x, m, form);
      for (size_t i = 0; i < x.size(); ++i) {
        const double e = std::exp(static_cast<double>(x[i]) - static_cast<double>(m)), got = y[i];
        if (e < FLT_MIN * (1.0 + 1.0 / 1024)) {
          if (form == ExpShift::kRounded && m != 0.0f) continue;
          if (e < FLT_MIN) {
            EXPECT_LE(got, m == 0.0f ? 0.0 : FLT_MIN) << "x=" << x[i] << " m=" << m;
          } else {
            EXPECT_LE(std::fabs(got - e), FLT_MIN) << "x=" << x[i] << " m=" << m;
          }
          continue;
        }
        const double err = std::fabs(got - e) / f32_ulp(e);
        if (err > s.worst_ulps) s.worst_ulps = err, s.worst_d = static_cast<float>(static_cast<double>(x[i]) - m);
        s.worst_floats = std::max(s.worst_floats, floats_apart(y[i], static_cast<float>(e)));
        ++s.counted;
      }
    }
  }
  return s;
}

// exp_f32 (kRounded at m = 0) on every 97th float of [-104, 88] (23 million of the 2.2e9; the
// bench's full sweep, bench/kernels/cross_entropy_bench --exp-ulp, measures the same maximum):
// within kExpF32Ulps (tolerance.h derives it from the measured 1.16 ulp), never more than one float
// from the correctly rounded exp, exactly 0 below kExpF32MinArg; exp_shifted_f32 at m = 0 likewise.
TEST(ExpF32, WithinKExpF32UlpsAndOneFloatOfTheCorrectlyRoundedExp) {
  for (ExpShift form : {ExpShift::kRounded, ExpShift::kExact}) {
    const Sweep s = sweep(97, 0.0f, form);
    EXPECT_LE(s.worst_ulps, kExpF32Ulps) << "worst at x = " << s.worst_d;
    EXPECT_LE(s.worst_floats, 1);
    EXPECT_GT(s.counted, 20'000'000);
    RecordProperty(form == ExpShift::kRounded ? "max_ulp" : "max_ulp_shifted", std::to_string(s.worst_ulps));
  }
  std::vector<float> below;
  for (float x = cpu::kExpF32MinArg; x > -104.5f; x -= 0.01f) below.push_back(std::nextafter(x, -INFINITY));
  for (float y : exp_of(below, 0.0f, ExpShift::kRounded)) ASSERT_EQ(std::bit_cast<uint32_t>(y), 0u);
}

// exp_shifted_f32 at shifts like the row maxima cross-entropy sees, over every 257th float of
// d = x - m in [-104, 88] (8.7e6 values per shift): within kExpF32Ulps of exp(x - m), as at m = 0.
// exp_f32(x - m) carries the rounding of x - m: exact at m = 1e4 (x and m within a factor 2,
// Sterbenz), not at m = 11.827, where it is many ulp off; that is why the TwoSum is kept.
TEST(ExpF32, ShiftedFormWithinKExpF32UlpsAtShiftsUpTo1e4) {
  for (float m : {-3.3f, 11.827f, 1e4f}) {
    const Sweep s = sweep(257, m, ExpShift::kExact);
    EXPECT_LE(s.worst_ulps, kExpF32Ulps) << "m=" << m << ": worst at x - m = " << s.worst_d;
    EXPECT_LE(s.worst_floats, 1) << "m=" << m;
    EXPECT_GT(s.counted, 8'000'000) << "m=" << m;
    RecordProperty("max_ulp_m" + std::to_string(m), std::to_string(s.worst_ulps));
  }
  EXPECT_LE(sweep(257, 1e4f, ExpShift::kRounded).worst_ulps, kExpF32Ulps);
  const Sweep rounded = sweep(257, 11.827f, ExpShift::kRounded);
  EXPECT_GT(rounded.worst_ulps, 10.0 * kExpF32Ulps);
  RecordProperty("max_ulp_rounded_m11.827", std::to_string(rounded.worst_ulps));
}

TEST(ExpF32, Edges) {
  const float inf = INFINITY, nan = NAN;
  // exp(0) = 1 exactly; below kExpF32MinArg (~ln FLT_MIN) +0, at it a normal float; above 88 +inf;
  // NaN stays NaN.
  const std::vector<float> x = {0.0f, -0.0f, cpu::kExpF32MinArg, std::nextafter(cpu::kExpF32MinArg, -inf),
                                -104.5f, -1e30f, -inf, 88.0f, std::nextafter(88.0f, inf), 1e30f, inf, nan};
  const std::vector<float> y = exp_of(x, 0.0f, ExpShift::kRounded);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_GE(y[2], FLT_MIN);
  EXPECT_LE(floats_apart(y[2], static_cast<float>(std::exp(static_cast<double>(x[2])))), 1);
  for (size_t i : {3, 4, 5, 6}) EXPECT_TRUE(y[i] == 0.0f && !std::signbit(y[i])) << "x=" << x[i] << ": " << y[i];
  EXPECT_LE(floats_apart(y[7], static_cast<float>(std::exp(88.0))), 1);
  EXPECT_TRUE(std::isfinite(y[7]));
  for (size_t i : {8, 9, 10}) EXPECT_EQ(y[i], inf) << "x=" << x[i];
  EXPECT_TRUE(std::isnan(y[11]));
  // The shifted form: exp(m - m) = 1 for any finite m, the same thresholds on x - m, NaN in x or m.
  for (float m : {-3.3f, 11.827f, 1e4f, -1e4f}) {
    const std::vector<float> xs = {m, m - 90.0f, -inf, m + 89.0f, nan};
    const std::vector<float> ys = exp_of(xs, m, ExpShift::kExact);
    EXPECT_EQ(ys[0], 1.0f) << "m=" << m;
    EXPECT_EQ(ys[1], 0.0f) << "m=" << m;
    EXPECT_EQ(ys[2], 0.0f) << "m=" << m;
    EXPECT_EQ(ys[3], inf) << "m=" << m;
    EXPECT_TRUE(std::isnan(ys[4])) << "m=" << m;
  }
  EXPECT_TRUE(std::isnan(exp_of({1.0f}, nan, ExpShift::kExact)[0]));
}

}  // namespace
}  // namespace om
