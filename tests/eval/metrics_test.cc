// The paper's metrics on inputs with known answers (eval/metrics.h): uniform attention gives the
// chance level, attention on key 0 gives 1, random attention's argmax lands on key 0 at the chance
// rate, Gaussian hidden states have kurtosis 3, a planted outlier channel gives kurtosis ≫ 3 and the
// first token is told apart from the rest.
#include "eval/metrics.h"

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr int64_t kT = 16, kH = 2, kB = 3;

// (B, H, T, T) causal rows from `fill(i, j)` (j ≤ i), normalised to sum 1.
template <typename F>
HostTensor attention(F&& fill) {
  HostTensor p("probs", DType::kF64, {kB, kH, kT, kT});
  for (int64_t b = 0; b < kB; ++b)
    for (int64_t h = 0; h < kH; ++h)
      for (int64_t i = 0; i < kT; ++i) {
        double sum = 0.0;
        std::vector<double> row(static_cast<size_t>(i + 1));
        for (int64_t j = 0; j <= i; ++j) sum += row[j] = fill(b, h, i, j);
        for (int64_t j = 0; j <= i; ++j) p.set(((b * kH + h) * kT + i) * kT + j, row[j] / sum);
      }
  return p;
}

TEST(EvalMetrics, ChanceLevelIsTheMeanOfOneOverIPlusOne) {
  // (H_T − 1)/(T − 1): T = 2 → (1.5 − 1)/1 = 1/2; T = 256 → ≈ 2.0 % (2.4 % counts query 0 too).
  EXPECT_DOUBLE_EQ(first_token_chance(2), 0.5);
  EXPECT_NEAR(first_token_chance(3), (1.0 / 2 + 1.0 / 3) / 2, 1e-15);
  EXPECT_NEAR(first_token_chance(256), 0.0200954704, 1e-10);  // (H_256 − 1)/255, H_256 = 6.1243…
}

TEST(EvalMetrics, UniformAttentionGivesTheChanceMassAndKeyZeroGivesOne) {
  MetricsAccumulator m(2, kH, kT);
  m.AddAttention(0, attention([](int64_t, int64_t, int64_t, int64_t) { return 1.0; }).cview());
  m.AddAttention(1, attention([](int64_t, int64_t, int64_t, int64_t j) { return j == 0 ? 1.0 : 0.0; }).cview());
  EvalReport r;
  m.Fill(r);
  // Layer 0: the mean over i = 1..T−1 of 1/(i+1), summed in double: rule-2 sized bound.
  for (int64_t h = 0; h < kH; ++h) {
    EXPECT_NEAR(r.first_mass[0][h], r.chance, 64 * 1.1e-16);
    EXPECT_DOUBLE_EQ(r.first_mass[1][h], 1.0);
    EXPECT_DOUBLE_EQ(r.first_argmax[1][h], 1.0);
    // Key share: uniform rows give key j the mean over i ≥ max(j,1) of 1/(i+1); all on key 0 gives 1, 0, 0, ...
    EXPECT_DOUBLE_EQ(r.key_share[1][h][0], 1.0);
    EXPECT_DOUBLE_EQ(r.key_share[1][h][5], 0.0);
  }
  EXPECT_NEAR(r.first_mass_overall, (r.chance + 1.0) / 2, 1e-15);
}

TEST(EvalMetrics, RandomAttentionArgmaxIsOnKeyZeroAtTheChanceRate) {
  // I.i.d. continuous weights: the argmax of row i is uniform over its i+1 keys, so the rate is the chance
  // level. Over n = B·H·(T−1) queries per call and 200 calls the rate's standard deviation is
  // ≤ sqrt(0.25 / (200·n)); 5σ.
  MetricsAccumulator m(1, kH, kT);
  const Rng rng(3, "random_attention");
  uint64_t k = 0;
  for (int call = 0; call < 200; ++call) {
    m.AddAttention(0, attention([&](int64_t, int64_t, int64_t, int64_t) { return rng.UniformDouble(k++) + 1e-3; }).cview());
  }
  EvalReport r;
  m.Fill(r);
  const double n = 200.0 * kB * kH * (kT - 1);
  EXPECT_NEAR(r.first_argmax_overall, r.chance, 5 * std::sqrt(0.25 / n));
}

TEST(EvalMetrics, GaussianHiddenStatesHaveKurtosisThree) {
  // Sample kurtosis of n i.i.d. normals: mean 3 − 6/(n+1), standard deviation ≈ sqrt(24/n). C = 4096
  // channels per token, averaged over B·T = 48 tokens: sd ≈ 0.077 / sqrt(48) ≈ 0.011 for the rest
  // (47 tokens), 0.077 / sqrt(3) ≈ 0.044 for the first (3 tokens); 5σ.
  const int64_t C = 4096;
  HostTensor x("x", DType::kF32, {kB, kT, C});
  x.FillNormal(Rng(4, "hidden"), 0, 1.0);
  MetricsAccumulator m(1, kH, kT);
  m.AddHidden(0, x.cview());
  EvalReport r;
  m.Fill(r);
  EXPECT_NEAR(r.kurtosis_rest[0], 3.0, 5 * 0.077 / std::sqrt(45.0));
  EXPECT_NEAR(r.kurtosis_first[0], 3.0, 5 * 0.077 / std::sqrt(3.0));
  EXPECT_NEAR(kurtosis(x.data<float>(), C), 3.0, 5 * 0.077);
}

TEST(EvalMetrics, PlantedOutlierChannelOnTheFirstTokenIsSeen) {
  // Token 0 of every sequence: channel 7 = 200 among N(0, 1). With one value a ≫ the rest, the population
  // kurtosis → C (a·(1 − 1/C) dominates both moments): ≈ 256 − small; max |x| = 200. Other tokens stay ≈ 3.
  const int64_t C = 256;
  HostTensor x("x", DType::kF32, {kB, kT, C});
  x.FillNormal(Rng(5, "hidden"), 0, 1.0);
  for (int64_t b = 0; b < kB; ++b) x.set((b * kT + 0) * C + 7, 200.0);
  MetricsAccumulator m(2, kH, kT);
  m.AddHidden(0, x.cview());
  m.AddHidden(1, x.cview());
  EvalReport r;
  m.Fill(r);
  EXPECT_GT(r.kurtosis_first_mean, 200.0);
  EXPECT_LT(r.kurtosis_first_mean, 256.0);
  EXPECT_NEAR(r.kurtosis_rest_mean, 3.0, 0.5);  // 45 tokens of 256 normals: sd ≈ sqrt(24/256)/sqrt(45) ≈ 0.05
  EXPECT_DOUBLE_EQ(r.maxabs_first_mean, 200.0);
  EXPECT_LT(r.maxabs_rest_mean, 6.0);  // the max of 256 normals exceeds 6 with probability ~5e-7
}

TEST(EvalMetrics, ConstantHiddenStateHasZeroKurtosisNotNaN) {
  std::vector<float> x(64, 2.5f);
  EXPECT_EQ(kurtosis(x.data(), 64), 0.0);
}

}  // namespace
}  // namespace om
