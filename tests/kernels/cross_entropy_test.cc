// Cross-entropy: gradient checks (kernels/check/cross_entropy_check.cc) plus the op's own facts: the loss is
// log-softmax, a two-shard (vocab-parallel) composition of the pieces equals the single-shard result, padding
// and ignored targets are excluded, large logits stay finite, NaN logits give NaN losses, forward_backward is
// forward then backward. The f32 cpu::*_simd variants (what the f32 dispatch runs) agree with the f64
// reference at every width 1..40 and are bit-identical for 1, 2 and 3 threads; their exp
// (cpu::exp_shifted_f32) is tested in tests/kernels/exp_f32_test.cc.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/check/checks.h"
#include "kernels/cross_entropy.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// One tensor's worth of cross-entropy state: logits (N, Vl) for `shard`, and its statistics.
struct Ce {
  HostTensor logits, targets, losses, row_max, sum_exp, target_logit, dlogits;
  VocabShard shard;
  Ce(DType dt, int64_t N, int64_t Vl, VocabShard s)
      : logits("logits", dt, {N, Vl}),
        targets("targets", DType::kI32, {N}),
        losses("losses", dt, {N}),
        row_max("row_max", dt, {N}),
        sum_exp("sum_exp", dt, {N}),
        target_logit("target_logit", dt, {N}),
        dlogits("dlogits", dt, {N, Vl}),
        shard(s) {}
  int64_t N() const { return logits.shape()[0]; }
  void forward() {
    cross_entropy_forward({}, {losses.view(), row_max.view(), sum_exp.view(), target_logit.view(), logits.view(),
                               targets.view(), shard});
  }
  void backward(float dloss) {
    cross_entropy_backward({}, {dlogits.view(), logits.view(), targets.view(), row_max.view(), sum_exp.view(), shard,
                                dloss});
  }
};

// Normal logits and uniform targets in [0, vocab_size), with `ignored` rows set to kIgnoreTarget.
void fill(Ce& c, uint64_t seed, double stddev, const std::vector<int64_t>& ignored = {}) {
  c.logits.FillNormal(Rng(seed, "ce/logits"), 0, stddev);
  const Rng rng(seed, "ce/targets");
  for (int64_t n = 0; n < c.N(); ++n) c.targets.set(n, std::floor(rng.UniformDouble(n) * c.shard.vocab_size));
  for (int64_t n : ignored) c.targets.set(n, kIgnoreTarget);
}

TEST(CrossEntropy, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_cross_entropy()); }

TEST(CrossEntropy, LossEqualsLongDoubleLogSoftmax) {
  const int64_t N = 16, Vl = 1000, V = 990;
  Ce c(DType::kF64, N, Vl, {0, V});
  fill(c, 11, 4.0, {5});
  c.forward();
  HostTensor want("log-softmax (long double)", DType::kF64, {N});
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = static_cast<int64_t>(c.targets.get(n));
    if (t == kIgnoreTarget) continue;  // stays 0
    long double m = -INFINITY, s = 0.0L;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, static_cast<long double>(c.logits.get(n * Vl + j)));
    for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<long double>(c.logits.get(n * Vl + j)) - m);
    want.set(n, static_cast<double>(std::log(s) + m - static_cast<long double>(c.logits.get(n * Vl + t))));
  }
  // The kernel sums V exponentials in double: recursive summation perturbs sum_exp by <= V * eps
  // relative (the terms are positive), which is an absolute error of V * eps on its log.
  expect_all_ok({compare_tensors("cross_entropy N=16 V=990", "losses vs long-double log-softmax", c.losses, want,
                                 for_reduction(DType::kF64, V, 1.0))});
  EXPECT_EQ(c.losses.get(5), 0.0);
}

// The tensor-parallel composition (DESIGN.md "Tensor parallel") with 2 ranks, simulated in one
// process: each shard computes its pieces, and the all-reduces (MAX of row_max, SUM of sum_exp and
// target_logit) are done here in f32 as NCCL would. Losses and each shard's dlogits must equal the
// single-shard result.
TEST(CrossEntropy, TwoShardCompositionEqualsSingleShard) {
  const int64_t N = 8, Vp = 256, V = 250, Vl = Vp / 2;  // 6 padding ids, all in shard 1
  const DType dt = DType::kF32;
  Ce full(dt, N, Vp, {0, V});
  fill(full, 21, 3.0, {3});
  // Targets on both sides of the shard boundary and at the last real id.
  full.targets.set(0, Vl - 1);
  full.targets.set(1, Vl);
  full.targets.set(2, V - 1);
  full.targets.set(4, 0);
  const float dloss = 1.0f / 7.0f;
  full.forward();
  full.backward(dloss);

  std::vector<Ce> shards;
  shards.reserve(2);
  for (int64_t r = 0; r < 2; ++r) {
    shards.emplace_back(dt, N, Vl, VocabShard{r * Vl, V});
    shards.back().logits = columns(full.logits, r * Vl, (r + 1) * Vl, "logits shard");
    shards.back().targets = full.targets.Clone();
  }
  HostTensor row_max("row_max (all-reduced)", dt, {N}), sum_exp("sum_exp (all-reduced)", dt, {N}),
      target_logit("target_logit (all-reduced)", dt, {N}), losses("losses (tp)", dt, {N});
  row_max.Fill(-INFINITY);
  for (Ce& s : shards) {
    cross_entropy_row_max({}, {s.row_max.view(), s.logits.view(), s.shard});
    for (int64_t n = 0; n < N; ++n) row_max.set(n, std::max(row_max.get(n), s.row_max.get(n)));
  }
  for (Ce& s : shards) {  // every shard uses the GLOBAL max, so the partial sums just add
    cross_entropy_sum_exp({}, {s.sum_exp.view(), s.logits.view(), row_max.view(), s.shard});
    cross_entropy_target_logit({}, {s.target_logit.view(), s.logits.view(), s.targets.view(), s.shard});
    for (int64_t n = 0; n < N; ++n) {
      sum_exp.set(n, sum_exp.get(n) + s.sum_exp.get(n));
      target_logit.set(n, target_logit.get(n) + s.target_logit.get(n));
    }
  }
  cross_entropy_loss({}, {losses.view(), row_max.view(), sum_exp.view(), target_logit.view(), full.targets.view()});
  for (Ce& s : shards)
    cross_entropy_backward({}, {s.dlogits.view(), s.logits.view(), s.targets.view(), row_max.view(),
                                sum_exp.view(), s.shard, dloss});

  // The max and the target logit are exact (a max, and a sum with exact zeros). Both sides compute
  // bit-identical exponentials (same x, same global max), so sum_exp differs only by how they are
  // added: each side's f32 lane sums err by <= ceil(V/16) * eps/2 relative, and the shards' two
  // roundings plus the f32 all-reduce add <= 1.5 eps: within rule 4 with term_ulps 0 (ceil(V/16)
  // + log2 16 eps). That is the absolute error of log(sum_exp), and the relative change of each
  // probability (the factor and product roundings, <= 2 eps relative, are in the rtol; on the
  // target, p - 1 can cancel, and its <= 2 eps * dloss fits in the log2 16 eps * dloss of atol).
  const std::string tag = "cross_entropy 2 shards N=8 Vp=256 V=250";
  const int64_t lanes = cpu::kCrossEntropySimdLanes;
  CheckList r = {compare_tensors(tag, "row_max", row_max, full.row_max, exact()),
                 compare_tensors(tag, "target_logit", target_logit, full.target_logit, exact()),
                 compare_tensors(tag, "losses vs single shard", losses, full.losses,
                                 for_lane_reduction(dt, V, lanes, 1.0, 0.0))};
  for (int64_t s = 0; s < 2; ++s)
    r.push_back(compare_tensors(tag, "shard " + std::to_string(s) + " dlogits vs single shard", shards[s].dlogits,
                                columns(full.dlogits, s * Vl, (s + 1) * Vl, "dlogits (single shard)"),
                                for_lane_reduction(dt, V, lanes, dloss, 0.0)));
  expect_all_ok(r);
  for (int64_t n = 0; n < N; ++n) {  // exactly one shard owns each non-ignored target
    const int64_t t = static_cast<int64_t>(full.targets.get(n));
    EXPECT_EQ(shards[0].target_logit.get(n) != 0.0, t != kIgnoreTarget && t < Vl) << "row " << n;
    EXPECT_EQ(shards[1].target_logit.get(n) != 0.0, t >= Vl) << "row " << n;
  }
}

TEST(CrossEntropy, PaddingColumnsGetZeroGradientAndDoNotChangeTheLoss) {
  const int64_t N = 5, Vl = 24, V = 20;
  Ce a(DType::kF32, N, Vl, {0, V});
  fill(a, 31, 2.0);
  a.forward();
  a.backward(1.0f);
  Ce b(DType::kF32, N, Vl, {0, V});
  b.logits = a.logits.Clone();
  b.targets = a.targets.Clone();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = V; j < Vl; ++j) b.logits.set(n * Vl + j, 50.0);  // would dominate any softmax
  b.forward();
  b.backward(1.0f);
  expect_all_ok({compare_tensors("cross_entropy padding=+50", "losses unchanged", b.losses, a.losses, exact()),
                 compare_tensors("cross_entropy padding=+50", "dlogits unchanged", b.dlogits, a.dlogits, exact())});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = V; j < Vl; ++j) EXPECT_EQ(b.dlogits.get(n * Vl + j), 0.0) << "row " << n << " padding id " << j;
}

TEST(CrossEntropy, IgnoredRowsHaveZeroLossAndZeroGradient) {
  const int64_t N = 4, Vl = 16;
  Ce c(DType::kF64, N, Vl, {0, Vl});
  fill(c, 41, 2.0, {1, 3});
  c.dlogits.Fill(7.0);  // an overwrite must replace this everywhere
  c.forward();
  c.backward(0.5f);
  for (int64_t n : {1, 3}) {
    EXPECT_EQ(c.losses.get(n), 0.0);
    for (int64_t j = 0; j < Vl; ++j) EXPECT_EQ(c.dlogits.get(n * Vl + j), 0.0) << "row " << n << " col " << j;
  }
  for (int64_t n : {0, 2}) {
    EXPECT_GT(c.losses.get(n), 0.0);
    // A softmax minus a one-hot sums to 0 over the row.
    double row = 0.0;
    for (int64_t j = 0; j < Vl; ++j) row += c.dlogits.get(n * Vl + j);
    EXPECT_NEAR(row, 0.0, for_reduction(DType::kF64, Vl, 1.0).atol) << "row " << n;
  }
}

TEST(CrossEntropy, BackwardOverwritesDlogits) {
  const int64_t N = 3, Vl = 10;
  Ce a(DType::kF32, N, Vl, {0, 9});
  fill(a, 51, 1.0);
  a.forward();
  a.backward(0.25f);
  HostTensor first = a.dlogits.Clone("dlogits (first)");
  a.dlogits.Fill(123.0);  // garbage, or a previous micro-batch's gradient: must not survive
  a.backward(0.25f);
  expect_all_ok({compare_tensors("cross_entropy", "dlogits overwritten (=)", a.dlogits, first, exact())});
}

// dlogits == logits (what Llama::Backward passes, model/llama_backward.cc) gives the bits of a
// separate dlogits buffer: f64 reference and f32 SIMD dispatch, odd widths (vector tails), padding
// columns, ignored rows, and a shard that does not own every target.
TEST(CrossEntropy, InPlaceBackwardEqualsASeparateBuffer) {
  for (DType dt : {DType::kF64, DType::kF32}) {
    for (int64_t Vl : {1, 7, 8, 9, 131}) {
      const int64_t N = 11;
      // Global ids [Vl/3, Vl/3 + Vl): the last two columns are padding (Vl > 2), and the targets, uniform in
      // [0, vocab_size), fall below the shard too.
      const VocabShard shard{Vl / 3, Vl / 3 + std::max<int64_t>(1, Vl - 2)};
      Ce c(dt, N, Vl, shard);
      fill(c, 61 + static_cast<uint64_t>(Vl), 2.0, {2, 7});
      // Row statistics over the whole shard (row_max, sum_exp), as the vocab-parallel path all-reduces them.
      cross_entropy_row_max({}, {c.row_max.view(), c.logits.view(), shard});
      cross_entropy_sum_exp({}, {c.sum_exp.view(), c.logits.view(), c.row_max.view(), shard});
      c.backward(0.3f);
      HostTensor in_place = c.logits.Clone("logits -> dlogits");
      cross_entropy_backward({}, {in_place.view(), in_place.view(), c.targets.view(), c.row_max.view(),
                                  c.sum_exp.view(), shard, 0.3f});
      expect_all_ok({compare_tensors("cross_entropy_backward in place", std::string(dtype_name(dt)) + " Vl " +
                                         std::to_string(Vl), in_place, c.dlogits, exact())});
    }
  }
}

// cross_entropy_forward_backward is the forward then the backward: the same losses, statistics and
// dlogits, into a separate buffer or over the logits, with padding columns and ignored rows.
TEST(CrossEntropy, ForwardBackwardEqualsForwardThenBackward) {
  for (DType dt : {DType::kF64, DType::kF32}) {
    const int64_t N = 9, Vl = 37;
    Ce want(dt, N, Vl, {0, 35});
    fill(want, 71, 2.0, {3});
    want.forward();
    want.backward(0.2f);
    for (bool in_place : {false, true}) {
      Ce got(dt, N, Vl, {0, 35});
      fill(got, 71, 2.0, {3});
      got.dlogits.Fill(123.0);  // garbage the backward must overwrite
      const TensorView dlogits = in_place ? got.logits.view() : got.dlogits.view();
      cross_entropy_forward_backward({}, {{got.losses.view(), got.row_max.view(), got.sum_exp.view(),
                                           got.target_logit.view(), got.logits.view(), got.targets.view(), got.shard},
                                          dlogits, 0.2f});
      const std::string what = std::string(dtype_name(dt)) + (in_place ? " in place" : " separate");
      expect_all_ok({compare_tensors("cross_entropy_forward_backward " + what, "losses", got.losses, want.losses,
                                     exact()),
                     compare_tensors("cross_entropy_forward_backward " + what, "row_max", got.row_max, want.row_max,
                                     exact()),
                     compare_tensors("cross_entropy_forward_backward " + what, "sum_exp", got.sum_exp, want.sum_exp,
                                     exact()),
                     compare_tensors("cross_entropy_forward_backward " + what, "target_logit", got.target_logit,
                                     want.target_logit, exact()),
                     compare_tensors("cross_entropy_forward_backward " + what, "dlogits",
                                     in_place ? got.logits : got.dlogits, want.dlogits, exact())});
    }
  }
}

TEST(CrossEntropy, LargeLogitsGiveFiniteResults) {
  const int64_t N = 3, Vl = 8;
  Ce c(DType::kF32, N, Vl, {0, Vl});
  c.logits.FillNormal(Rng(61, "ce/large"), 0, 1.0);
  for (int64_t n = 0; n < N; ++n) {
    c.logits.set(n * Vl + 1, 1e4);
    c.logits.set(n * Vl + 6, -1e4);
  }
  c.targets.set(0, 1);  // the +1e4 logit: every other exp(x - m) underflows, loss exactly 0
  c.targets.set(1, 6);  // the -1e4 logit: loss = 2e4 (log(1) + 1e4 + 1e4)
  c.targets.set(2, 3);  // an O(1) logit: loss = 1e4 - x_3
  c.forward();
  c.backward(1.0f);
  for (int64_t i = 0; i < c.dlogits.numel(); ++i) EXPECT_TRUE(std::isfinite(c.dlogits.get(i))) << i;
  EXPECT_EQ(c.losses.get(0), 0.0);
  EXPECT_EQ(c.losses.get(1), 2e4);
  EXPECT_EQ(c.losses.get(2), static_cast<float>(1e4 - c.logits.get(2 * Vl + 3)));
  EXPECT_EQ(c.dlogits.get(1 * Vl + 1), 1.0);   // p = 1 on the max
  EXPECT_EQ(c.dlogits.get(1 * Vl + 6), -1.0);  // p = 0 on the target
}

TEST(CrossEntropy, NanLogitGivesNanLoss) {
  for (DType dt : {DType::kF32, DType::kF64}) {
    const int64_t N = 3, Vl = 40;
    Ce c(dt, N, Vl, {0, Vl});
    fill(c, 71, 2.0);
    c.logits.set(1 * Vl + 17, NAN);  // a diverged model: the loss must say so, not skip the logit
    c.forward();
    EXPECT_TRUE(std::isnan(c.losses.get(1))) << dtype_name(dt);
    EXPECT_TRUE(std::isfinite(c.losses.get(0)) && std::isfinite(c.losses.get(2))) << dtype_name(dt);
  }
}

// Every width 1..40 (every partial-block size, with and without a full 16-column block) with 3
// padding columns: row max exact, sum_exp and dlogits within rule 4 of the f64 reference.
TEST(CrossEntropySimd, AgreesWithTheF64ReferenceAtEveryWidth) {
  const int64_t N = 5, lanes = cpu::kCrossEntropySimdLanes;
  for (int64_t V = 1; V <= 40; ++V) {
    Ce c32(DType::kF32, N, V + 3, {0, V});
    fill(c32, 81 + V, 4.0, {2});
    Ce c64(DType::kF64, N, V + 3, {0, V});
    c64.logits = c32.logits.Converted(DType::kF64);
    c64.targets = c32.targets.Clone();
    cpu::cross_entropy_row_max_simd({c32.row_max.view(), c32.logits.view(), c32.shard});
    cpu::cross_entropy_sum_exp_simd({c32.sum_exp.view(), c32.logits.view(), c32.row_max.view(), c32.shard});
    cpu::cross_entropy_backward_simd({c32.dlogits.view(), c32.logits.view(), c32.targets.view(), c32.row_max.view(),
                                      c32.sum_exp.view(), c32.shard, 0.25f});
    cpu::cross_entropy_row_max({c64.row_max.view(), c64.logits.view(), c64.shard});
    cpu::cross_entropy_sum_exp({c64.sum_exp.view(), c64.logits.view(), c64.row_max.view(), c64.shard});
    cpu::cross_entropy_backward({c64.dlogits.view(), c64.logits.view(), c64.targets.view(), c64.row_max.view(),
                                 c64.sum_exp.view(), c64.shard, 0.25f});
    // Rule 4 bounds sum_exp's error relative to sum_exp itself (its terms are positive): abs_sum is
    // the largest row's sum_exp. dlogits as in check_cross_entropy.
    double max_sum = 0.0;
    for (int64_t n = 0; n < N; ++n) max_sum = std::max(max_sum, c64.sum_exp.get(n));
    const std::string tag = "cross_entropy simd V=" + std::to_string(V) + " Vl=" + std::to_string(V + 3);
    expect_all_ok({compare_tensors(tag, "row_max vs f64", c32.row_max, c64.row_max, exact()),
                   compare_tensors(tag, "sum_exp vs f64", c32.sum_exp, c64.sum_exp,
                                   for_lane_reduction(DType::kF32, V, lanes, max_sum, kExpF32Ulps)),
                   compare_tensors(tag, "dlogits vs f64", c32.dlogits, c64.dlogits,
                                   for_lane_reduction(DType::kF32, V, lanes, 0.25, kExpF32Ulps + 3.0))});
  }
}

// The simd variants on 1, 2 and 3 threads, bit for bit: rows are independent and each row's lanes
// depend on the column index only. The public f32 entry points must be these variants.
TEST(CrossEntropySimd, BitIdenticalForAnyThreadCountAndUsedByTheF32Dispatch) {
  const int64_t N = 37, Vl = 1003, V = 990;
  Ce c(DType::kF32, N, Vl, {0, V});
  fill(c, 91, 3.0, {4, 20});
  auto bits = [](const HostTensor& t) {
    std::vector<uint32_t> b(static_cast<size_t>(t.numel()));
    std::memcpy(b.data(), t.data<float>(), b.size() * sizeof(uint32_t));
    return b;
  };
  std::vector<std::vector<uint32_t>> runs;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    c.row_max.Fill(0.0);
    c.sum_exp.Fill(0.0);
    c.dlogits.Fill(0.0);
    cpu::cross_entropy_row_max_simd({c.row_max.view(), c.logits.view(), c.shard});
    cpu::cross_entropy_sum_exp_simd({c.sum_exp.view(), c.logits.view(), c.row_max.view(), c.shard});
    cpu::cross_entropy_backward_simd({c.dlogits.view(), c.logits.view(), c.targets.view(), c.row_max.view(),
                                      c.sum_exp.view(), c.shard, 0.125f});
    std::vector<uint32_t> all = bits(c.row_max);
    for (const HostTensor* t : {&c.sum_exp, &c.dlogits}) {
      const std::vector<uint32_t> b = bits(*t);
      all.insert(all.end(), b.begin(), b.end());
    }
    runs.push_back(std::move(all));
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(runs[0] == runs[1]) << "1 vs 2 threads";
  EXPECT_TRUE(runs[0] == runs[2]) << "1 vs 3 threads";

  const HostTensor simd_sum = c.sum_exp.Clone("sum_exp (simd)"), simd_dlogits = c.dlogits.Clone("dlogits (simd)");
  c.forward();
  c.backward(0.125f);
  expect_all_ok({compare_tensors("cross_entropy f32 dispatch", "sum_exp == simd", c.sum_exp, simd_sum, exact()),
                 compare_tensors("cross_entropy f32 dispatch", "dlogits == simd", c.dlogits, simd_dlogits, exact())});
}

TEST(CrossEntropyDeathTest, TargetsOfTheWrongDtypeAreNamed) {
  HostTensor x("lm_head.logits", DType::kF32, {2, 8}), t("batch.targets", DType::kI64, {2}),
      tl("target_logit", DType::kF32, {2});
  EXPECT_DEATH(cross_entropy_target_logit({}, {tl.view(), x.view(), t.view(), {0, 8}}),
               "cross_entropy_target_logit: 'batch.targets' is i64 but expected i32");
}

TEST(CrossEntropyDeathTest, TargetOutsideTheVocabularyIsNamed) {
  HostTensor x("logits", DType::kF32, {2, 8}), t("batch.targets", DType::kI32, {2}),
      tl("target_logit", DType::kF32, {2});
  t.set(1, 6);  // a padding id: vocab_size is 5
  EXPECT_DEATH(cross_entropy_target_logit({}, {tl.view(), x.view(), t.view(), {0, 5}}),
               "'batch.targets'\\[1\\] = 6 is neither a token id in \\[0, 5\\)");
}

TEST(CrossEntropyDeathTest, ForwardRefusesAPartialShard) {
  HostTensor x("logits", DType::kF32, {2, 8}), t("targets", DType::kI32, {2}), l("l", DType::kF32, {2}),
      m("m", DType::kF32, {2}), s("s", DType::kF32, {2}), tl("tl", DType::kF32, {2});
  EXPECT_DEATH(cross_entropy_forward({}, {l.view(), m.view(), s.view(), tl.view(), x.view(), t.view(), {8, 16}}),
               "must cover the whole vocabulary");
  EXPECT_DEATH(cross_entropy_forward_backward(
                   {}, {{l.view(), m.view(), s.view(), tl.view(), x.view(), t.view(), {8, 16}}, x.view(), 1.0f}),
               "cross_entropy_forward_backward: 'logits' \\(2, 8\\) must cover the whole vocabulary");
}

}  // namespace
}  // namespace om
