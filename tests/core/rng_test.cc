// Counter-based RNG: known answers, layout/thread invariance, key separation and distribution moments.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Rng, SameKeyGivesSameNumbersOnAnyThreadCount) {
  const int64_t n = 100003;
  Rng rng(42, "init/layers.0.attn.q.weight");
  std::vector<float> one(n), two(n);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  rng.FillNormal(one.data(), n, 0, 0.0f, 0.02f);
  omp_set_num_threads(2);
  rng.FillNormal(two.data(), n, 0, 0.0f, 0.02f);
  omp_set_num_threads(saved);
  ASSERT_EQ(0, std::memcmp(one.data(), two.data(), n * sizeof(float)));
  // A fresh Rng with the same key reproduces the numbers element by element.
  Rng again(42, "init/layers.0.attn.q.weight");
  for (int64_t i = 0; i < n; i += 997) EXPECT_EQ(one[i], 0.02f * again.Normal(static_cast<uint64_t>(i)));
}

TEST(Rng, DrawsDependOnlyOnTheLogicalIndex) {
  // A shard that starts at logical element 1000 sees exactly the numbers the full tensor has there.
  Rng rng(7, "init/embed.weight");
  std::vector<double> full(3000), shard(1000);
  rng.FillNormal(full.data(), 3000, 0, 0.0, 1.0);
  rng.FillNormal(shard.data(), 1000, 1000, 0.0, 1.0);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(shard[i], full[1000 + i]) << i;
}

TEST(Rng, DifferentKeysGiveDifferentStreams) {
  const int n = 10000;
  Rng base(1, "a"), other_seed(2, "a"), other_stream(1, "b");
  int same_seed_collisions = 0, same_stream_collisions = 0;
  for (int i = 0; i < n; ++i) {
    same_seed_collisions += base.Block(i) == other_stream.Block(i);
    same_stream_collisions += base.Block(i) == other_seed.Block(i);
  }
  EXPECT_EQ(same_seed_collisions, 0);
  EXPECT_EQ(same_stream_collisions, 0);
  EXPECT_NE(rng_stream_id("layers.1.mlp.up.weight"), rng_stream_id("layers.1.mlp.gate.weight"));
}

TEST(Rng, NormalMeanAndVarianceWithinFiveSigma) {
  const int64_t n = 1000000;
  std::vector<float> x(n);
  Rng(123, "moments").FillNormal(x.data(), n, 0, 0.0f, 1.0f);
  double sum = 0, sum_sq = 0;
  for (float v : x) sum += v;
  const double mean = sum / n;
  for (float v : x) sum_sq += (v - mean) * (v - mean);
  const double var = sum_sq / (n - 1);
  // Standard errors: mean 1/sqrt(n); sample variance sqrt(2/(n-1)) for a Gaussian.
  EXPECT_LT(std::fabs(mean), 5.0 / std::sqrt(static_cast<double>(n)));
  EXPECT_LT(std::fabs(var - 1.0), 5.0 * std::sqrt(2.0 / (n - 1)));
}

TEST(Rng, UniformIsInUnitIntervalWithMeanWithinFiveSigma) {
  const int64_t n = 1000000;
  Rng rng(9, "uniform");
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.UniformDouble(i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const float f = rng.Uniform(i);
    ASSERT_GE(f, 0.0f);
    ASSERT_LT(f, 1.0f);
    sum += u;
  }
  EXPECT_LT(std::fabs(sum / n - 0.5), 5.0 * std::sqrt(1.0 / 12.0 / n));
}

}  // namespace
}  // namespace om
