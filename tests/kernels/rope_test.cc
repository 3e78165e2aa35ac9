// RoPE: gradient checks (kernels/check/rope_check.cc) plus the op's own facts: hand-derived values,
// identity at position 0, untouched v heads, R^T R = I, pair norms kept, and the relative-position
// property that makes attention scores depend on t1 - t2 only.
// The op works in place on one tensor, so there is no separate accumulate/overwrite output to test.
#include <cmath>

#include "kernels/check/checks.h"
#include "kernels/rope.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(Rope, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_rope()); }

TEST(Rope, KnownValuesForHeadDimFourAtPositionOne) {
  // D = 4: freq_0 = 10000^0 = 1, freq_1 = 10000^(-2/4) = 0.01; rotate-half pairs channel 0 with 2 and
  // 1 with 3 (an interleaved (0, 1), (2, 3) pairing would give different numbers). At t = 1:
  //   x'0 = x0 cos(1) - x2 sin(1)         x'2 = x2 cos(1) + x0 sin(1)
  //   x'1 = x1 cos(0.01) - x3 sin(0.01)   x'3 = x3 cos(0.01) + x1 sin(0.01)
  HostTensor x("x", DType::kF64, {1, 2, 1, 4});
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t i = 0; i < 4; ++i) x.set(t * 4 + i, static_cast<double>(i + 1));
  rope_forward({}, {x.view(), 1});
  HostTensor want("hand-derived", DType::kF64, {1, 2, 1, 4});
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.01), s2 = std::sin(0.01);
  const double v[8] = {1, 2, 3, 4, 1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2};
  for (int64_t i = 0; i < 8; ++i) want.set(i, v[i]);
  // Each output is a two-term sum with |x_i| + |x_{i+2}| <= 2 + 4.
  expect_all_ok(
      {compare_tensors("rope D=4", "t=1 vs hand-derived formula", x, want, for_reduction(DType::kF64, 2, 6.0))});
}

TEST(Rope, PositionZeroIsTheIdentityAndValueHeadsAreUntouched) {
  // Fused qkv (B, T, 3H, D) with H = 2: heads 0..3 (q, k) rotate, heads 4..5 (v) must keep their bits,
  // in the forward and in the backward.
  const int64_t B = 2, T = 5, H = 2, D = 16;
  HostTensor x("qkv", DType::kF32, {B, T, 3 * H, D});
  x.FillNormal(Rng(21, "x"), 0, 1.0);
  HostTensor fwd = x.Clone("rope(qkv)"), bwd = x.Clone("rope^T(qkv)");
  rope_forward({}, {fwd.view(), 2 * H});
  rope_backward({}, {bwd.view(), 2 * H});
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < 3 * H; ++h) {
        const bool unchanged = t == 0 || h >= 2 * H;
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = ((b * T + t) * 3 * H + h) * D + d;
          if (unchanged) {
            EXPECT_EQ(fwd.data<float>()[i], x.data<float>()[i]) << "forward b=" << b << " t=" << t << " h=" << h;
            EXPECT_EQ(bwd.data<float>()[i], x.data<float>()[i]) << "backward b=" << b << " t=" << t << " h=" << h;
          }
        }
      }
    }
  }
  // ... and the rotated heads really did change past position 0.
  EXPECT_NE(fwd.get(((0 * T + 1) * 3 * H + 0) * D + 0), x.get(((0 * T + 1) * 3 * H + 0) * D + 0));
}

TEST(Rope, BackwardUndoesForward) {
  const int64_t B = 2, T = 64, Hx = 4, D = 64;
  HostTensor x("x", DType::kF32, {B, T, Hx, D});
  x.FillNormal(Rng(22, "x"), 0, 1.0);
  HostTensor y = x.Clone("R^T R x");
  rope_forward({}, {y.view(), Hx});
  rope_backward({}, {y.view(), Hx});
  // Each rotation forms x_i cos -+ x_{i+D/2} sin in double and rounds once to f32 (<= eps/2 of the
  // pair's |x_i| + |x_{i+D/2}| <= 2 max|x|); the second rotation carries the first one's error
  // without growth. Two roundings of a two-term sum: reduce_len 2.
  expect_all_ok({compare_tensors("rope T=64 D=64 f32", "backward(forward(x)) vs x", y, x,
                                 for_reduction(DType::kF32, 2, 2.0 * x.max_abs()))});
}

TEST(Rope, PreservesTheNormOfEveryRotatedPair) {
  const int64_t B = 2, T = 64, Hx = 2, D = 32, half = D / 2;
  HostTensor x("x", DType::kF32, {B, T, Hx, D});
  x.FillNormal(Rng(23, "x"), 0, 1.0);
  HostTensor y = x.Clone("y");
  rope_forward({}, {y.view(), Hx});
  HostTensor before("|pair|^2 before", DType::kF64, {B * T * Hx, half}),
      after("|pair|^2 after", DType::kF64, {B * T * Hx, half});
  for (int64_t r = 0; r < B * T * Hx; ++r) {
    for (int64_t i = 0; i < half; ++i) {
      const double x0 = x.get(r * D + i), x1 = x.get(r * D + i + half);
      const double y0 = y.get(r * D + i), y1 = y.get(r * D + i + half);
      before.set(r * half + i, x0 * x0 + x1 * x1);
      after.set(r * half + i, y0 * y0 + y1 * y1);
    }
  }
  // Rounding y0 to f32 moves y0^2 by <= eps * y0^2 (and y1 likewise), so the squared norm r^2 moves by
  // <= eps * r^2: within rule 2 with two terms of absolute sum max r^2.
  expect_all_ok({compare_tensors("rope D=32 f32", "pair norms after vs before", after, before,
                                 for_reduction(DType::kF32, 2, before.max_abs()))});
}

TEST(Rope, ScoresDependOnlyOnTheRelativePosition) {
  // One q head and one k head holding the same vectors q, k at every position. R(t1)^T R(t2) =
  // R(t2 - t1), so <R(t1) q, R(t2) k> must equal <R(t1 - t2) q, k> (or <q, R(t2 - t1) k>) for all t1, t2.
  const int64_t T = 16, D = 8, half = D / 2;
  HostTensor qk("qk", DType::kF64, {1, T, 2, D});
  const Rng rng(24, "qk");
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < 2 * D; ++j) qk.set(t * 2 * D + j, rng.NormalDouble(static_cast<uint64_t>(j)));
  rope_forward({}, {qk.view(), 2});
  auto score = [&](int64_t t1, int64_t t2) {
    double s = 0.0;
    for (int64_t d = 0; d < D; ++d) s += qk.get(t1 * 2 * D + d) * qk.get(t2 * 2 * D + D + d);
    return s;
  };
  HostTensor got("score(t1, t2)", DType::kF64, {T, T}), want("score(t1 - t2)", DType::kF64, {T, T});
  for (int64_t t1 = 0; t1 < T; ++t1) {
    for (int64_t t2 = 0; t2 < T; ++t2) {
      got.set(t1 * T + t2, score(t1, t2));
      want.set(t1 * T + t2, t1 >= t2 ? score(t1 - t2, 0) : score(0, t2 - t1));
    }
  }
  // Bound on one score's error, in units of eps64 * A, A = 2 sum_i (|q_i| + |q_{i+h}|)(|k_i| + |k_{i+h}|)
  // (which bounds sum_d |q'_d k'_d|): D for the dot product, ~3 for the rotation, and up to T for the
  // angle t * freq (relative error eps, so cos/sin move by <= t * eps). Two scores are compared.
  double A = 0.0;
  for (int64_t i = 0; i < half; ++i) {
    const double q = std::fabs(rng.NormalDouble(i)) + std::fabs(rng.NormalDouble(i + half));
    const double k = std::fabs(rng.NormalDouble(D + i)) + std::fabs(rng.NormalDouble(D + i + half));
    A += 2.0 * q * k;
  }
  CheckList results = {compare_tensors("rope T=16 D=8 f64", "<R(t1) q, R(t2) k> vs <R(t1 - t2) q, k>", got, want,
                                       for_reduction(DType::kF64, 2 * (D + 3 + T), A))};
  // The property must not hold trivially (as it would for a rope that does nothing).
  results.push_back(check_fact("rope", "scores vary with t1 - t2", std::fabs(score(3, 0) - score(0, 0)) > 1e-3));
  expect_all_ok(results);
}

TEST(RopeDeathTest, BadHeadCountOrOddHeadDimNameTheTensor) {
  HostTensor qkv("layers.0.attn.qkv", DType::kF32, {1, 2, 3, 8});
  EXPECT_DEATH(rope_forward({}, {qkv.view(), 4}), "n_rot_heads = 4 is outside \\[0, Hx = 3\\] of 'layers.0.attn.qkv'");
  HostTensor odd("layers.1.attn.qkv", DType::kF32, {1, 2, 3, 7});
  EXPECT_DEATH(rope_backward({}, {odd.view(), 2}), "'layers.1.attn.qkv' \\(1, 2, 3, 7\\): head dim D = 7 must be even");
}

}  // namespace
}  // namespace om
