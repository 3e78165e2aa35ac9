// core/portable_normal.h: accuracy of the fixed log and cos against long double, the draws against
// Rng::NormalDouble (the same uniforms through libm) and N(0, 1)'s moments, and pinned bits: the
// function is a contract shared by the CPU and CUDA (kernels/normal_init.h), so a change of its
// operations must show up here, not as a silent change of every run's initial weights.
#include "core/portable_normal.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "core/rng.h"

namespace om {
namespace {

constexpr long double kPi = 3.141592653589793238462643383279502884L;

double ulp_of(double x) {
  const double a = std::fabs(x);
  return std::nextafter(a, INFINITY) - a;
}

TEST(PortableNormal, LogOfTheUnitIntervalIsWithinFourUlp) {
  // Error budget in ulps of the result: the quotient s (a rounded sum and a rounded division: 2), the
  // series' tail and the product 2s·p (1 more), at most doubled where e·ln2 and log m cancel (u near
  // ½..√½: |log u| ≥ ½·|e·ln2|): ≤ 4 ulp with room; measured max 2.6 over 2·10⁷ draws.
  const Rng rng(3, "portable/log");
  double worst = 0;
  auto check = [&](double u) {
    const long double ref = logl(static_cast<long double>(u));
    if (ref == 0) {
      EXPECT_EQ(portable::log_unit(u), 0.0);
      return;
    }
    const double err = static_cast<double>(std::fabs(static_cast<long double>(portable::log_unit(u)) - ref)) /
                       ulp_of(static_cast<double>(ref));
    worst = std::fmax(worst, err);
    EXPECT_LE(err, 4.0) << "u = " << u;
  };
  for (double u : {1.0, 0.5, 0x1p-53, 1.0 - 0x1p-53, 0x1.6a09e667f3bcdp-1, 0x1.6a09e667f3bccp-1, 0.75, 1e-10}) check(u);
  for (uint64_t i = 0; i < 200000; ++i) check(1.0 - rng.UniformDouble(i));
  RecordProperty("worst_log_ulp", std::to_string(worst));
}

TEST(PortableNormal, CosOfTwoPiUIsWithinFourTimesTwoToTheMinus53) {
  // |a| ≤ π/4 carries one rounding (≤ 2^-53·π/4 into cos, whose slope is ≤ 1) and each Horner step of
  // the polynomials ≤ 1 rounding of a term ≤ ½: ≤ 4·2^-53 absolute; measured max 1.6.
  const Rng rng(4, "portable/cos");
  auto check = [&](double u) {
    const long double ref = cosl(2.0L * kPi * static_cast<long double>(u));
    EXPECT_LE(std::fabs(static_cast<long double>(portable::cos_2pi(u)) - ref), 4.0L * 0x1p-53L) << "u = " << u;
  };
  for (double u : {0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0 - 0x1p-53, 0x1p-53}) check(u);
  for (uint64_t i = 0; i < 200000; ++i) check(rng.UniformDouble(i));
  EXPECT_EQ(portable::cos_2pi(0.0), 1.0);
  EXPECT_EQ(portable::cos_2pi(0.5), -1.0);
}

TEST(PortableNormal, DrawsAreNormalDoubleUpToLibmRoundingAndHaveUnitMoments) {
  // Both draw sqrt(−2·log u1)·cos(2π·u2) from the same Philox block; only the log and cos differ, each
  // by a few ulp: relative 1e-14 is ample (measured 2.5e-15).
  const Rng rng(1234, "init/layers.0.attn.q.weight");
  const int64_t n = 1 << 20;
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = portable::normal_portable(rng.seed(), rng.stream(), static_cast<uint64_t>(i));
    const double libm = rng.NormalDouble(static_cast<uint64_t>(i));
    ASSERT_LE(std::fabs(x - libm), 1e-14 * (1.0 + std::fabs(libm))) << "draw " << i;
    sum += x;
    sum_sq += x * x;
  }
  // Five standard errors: mean 1/sqrt(n), variance sqrt(2/n).
  EXPECT_LT(std::fabs(sum / n), 5.0 / std::sqrt(static_cast<double>(n)));
  EXPECT_LT(std::fabs(sum_sq / n - 1.0), 5.0 * std::sqrt(2.0 / static_cast<double>(n)));
}

TEST(PortableNormal, BitsArePinned) {
  // Computed by this implementation (2026-11-30); the same on a GPU (tests/cuda/normal_init_test.cc).
  // Indices past 2^32 exercise the counter's high word.
  const uint64_t stream = rng_stream_id("init/embed.weight");
  const struct {
    uint64_t index, bits;
  } pinned[] = {{0, 0x3fde4c95e5cc5b28ull},
                {1, 0x40005410aedd4518ull},
                {12345, 0xbff256f3e1868283ull},
                {uint64_t{1} << 32, 0x3ff90d22dc40d1ecull},
                {(uint64_t{1} << 40) + 7, 0xbffbf712b7265418ull}};
  for (const auto& p : pinned) {
    const double x = portable::normal_portable(1234, stream, p.index);
    uint64_t bits = 0;
    std::memcpy(&bits, &x, sizeof(bits));
    EXPECT_EQ(bits, p.bits) << "draw " << p.index << " = " << x;
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// Compiled where FMA is available, as a -march=native build or a target clone compiles it: g++ contracts
// a·b + c into an FMA there unless a product is opaque (core/portable_normal.h).
__attribute__((target("fma"))) double fma_target_draw(uint64_t seed, uint64_t stream, uint64_t i) {
  return portable::normal_portable(seed, stream, i);
}
__attribute__((target("fma"))) double fma_target_mul_add(double a, double b, double c) { return a * b + c; }

TEST(PortableNormal, TheBitsDoNotChangeWhereFmaIsAvailable) {
  if (!__builtin_cpu_supports("fma")) GTEST_SKIP() << "this CPU has no FMA";
  // The control: in this context the compiler does fuse a plain a·b + c (one rounding instead of two).
  volatile double a = 1.0 + 0x1p-30, c = -(1.0 + 0x1p-29);  // volatile: not folded at compile time
  ASSERT_EQ(fma_target_mul_add(a, a, c), 0x1p-60) << "no contraction here: the test below proves nothing";
  const uint64_t stream = rng_stream_id("portable/fma");
  for (uint64_t i = 0; i < 100000; ++i) {
    const double want = portable::normal_portable(7, stream, i), got = fma_target_draw(7, stream, i);
    ASSERT_EQ(std::memcmp(&want, &got, sizeof(double)), 0) << "draw " << i << ": " << got << " vs " << want;
  }
}
#endif

TEST(PortableNormal, PhiloxIsRngsBlock) {
  const Rng rng(99, "portable/philox");
  for (uint64_t i : {uint64_t{0}, uint64_t{7}, uint64_t{1} << 33}) {
    const PhiloxBlock a = rng.Block(i);
    const portable::Words b = portable::philox_block(rng.seed(), rng.stream(), i);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(a[k], b.w[k]) << "block " << i << " word " << k;
  }
}

}  // namespace
}  // namespace om
