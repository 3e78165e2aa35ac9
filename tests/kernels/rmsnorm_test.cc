// RMSNorm / RMSNorm-S: gradient checks (kernels/check/rmsnorm_check.cc) plus the op's own facts.
#include <cmath>
#include <string>

#include "kernels/check/checks.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(RmsNorm, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_rmsnorm()); }

TEST(RmsNorm, SharedScaleVariantHasExactlyOneGainAndScalesUniformly) {
  // RMSNorm-S with g = 2 equals RMSNorm with every gain 2; its weight has exactly one element.
  const int64_t N = 3, C = 5;
  HostTensor x("x", DType::kF32, {N, C}), gs("g_shared", DType::kF32, {1}), gc("g_channel", DType::kF32, {C});
  x.FillNormal(Rng(7, "x"), 0, 1.0);
  gs.Fill(2.0);
  gc.Fill(2.0);
  HostTensor ys("ys", DType::kF32, {N, C}), yc("yc", DType::kF32, {N, C}), r("rstd", DType::kF32, {N});
  rmsnorm_forward({}, {ys.view(), r.view(), x.view(), gs.view(), NormKind::kRmsNormS});
  rmsnorm_forward({}, {yc.view(), r.view(), x.view(), gc.view(), NormKind::kRmsNorm});
  EXPECT_EQ(gs.numel(), 1);
  expect_all_ok({compare_tensors("rmsnorm-s", "g=2 equals per-channel g=2", ys, yc, exact())});
}

TEST(RmsNorm, OutputHasUnitRmsWithUnitGain) {
  const int64_t N = 4, C = 64;
  HostTensor x("x", DType::kF64, {N, C}), g("g", DType::kF64, {C}), y("y", DType::kF64, {N, C}),
      r("rstd", DType::kF64, {N});
  x.FillNormal(Rng(3, "x"), 0, 5.0);
  g.Fill(1.0);
  rmsnorm_forward({}, {y.view(), r.view(), x.view(), g.view(), NormKind::kRmsNorm, 0.0f});
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += y.get(n * C + c) * y.get(n * C + c);
    EXPECT_NEAR(ss / C, 1.0, 1e-12) << "row " << n;
  }
}

TEST(RmsNorm, WeightGradientAccumulatesInputGradientOverwrites) {
  const int64_t N = 6, C = 4;
  HostTensor x("x", DType::kF64, {N, C}), g("g", DType::kF64, {C}), y("y", DType::kF64, {N, C}),
      r("rstd", DType::kF64, {N}), dy("dy", DType::kF64, {N, C});
  x.FillNormal(Rng(5, "x"), 0, 1.0);
  g.Fill(1.0);
  dy.FillNormal(Rng(5, "dy"), 0, 1.0);
  rmsnorm_forward({}, {y.view(), r.view(), x.view(), g.view()});
  HostTensor dx0("dx0", DType::kF64, {N, C}), dg0("dg0", DType::kF64, {C});
  rmsnorm_backward({}, {dx0.view(), dg0.view(), dy.view(), x.view(), g.view(), r.view()});
  HostTensor dx1("dx1", DType::kF64, {N, C}), dg1("dg1", DType::kF64, {C});
  dx1.Fill(123.0);  // garbage that an overwrite must replace
  dg1.Fill(0.5);    // a previous micro-batch's gradient that must be kept
  rmsnorm_backward({}, {dx1.view(), dg1.view(), dy.view(), x.view(), g.view(), r.view()});
  for (int64_t i = 0; i < C; ++i) EXPECT_DOUBLE_EQ(dg1.get(i), dg0.get(i) + 0.5);
  for (int64_t i = 0; i < N * C; ++i) EXPECT_DOUBLE_EQ(dx1.get(i), dx0.get(i));
}

TEST(RmsNorm, AccumulatingTheInputGradientEqualsAResidualAddBitForBit) {
  // kAccumulate (the backward's fused residual add, model/llama_backward.cc): dx += v in one pass is
  // the same bits as v written out and added by residual_forward, in f32 and f64, both kinds.
  const int64_t N = 37, C = 48;  // more than one row block
  for (DType dt : {DType::kF32, DType::kF64}) {
    for (NormKind kind : {NormKind::kRmsNorm, NormKind::kRmsNormS}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (kind == NormKind::kRmsNormS ? " rmsnorm-s" : " rmsnorm"));
      const Shape gs = kind == NormKind::kRmsNormS ? Shape{1} : Shape{C};
      HostTensor x("x", dt, {N, C}), g("g", dt, gs), y("y", dt, {N, C}), r("rstd", dt, {N}), dy("dy", dt, {N, C}),
          skip("dx_skip", dt, {N, C});
      x.FillNormal(Rng(21, "x"), 0, 1.0);
      g.FillUniform(Rng(21, "g"), 0, 0.5, 1.5);
      dy.FillNormal(Rng(21, "dy"), 0, 1.0);
      skip.FillNormal(Rng(21, "skip"), 0, 3.0);
      rmsnorm_forward({}, {y.view(), r.view(), x.view(), g.view(), kind});
      HostTensor v("v", dt, {N, C}), dg0("dg0", dt, gs), two_pass = skip.Clone("two_pass");
      rmsnorm_backward({}, {v.view(), dg0.view(), dy.view(), x.view(), g.view(), r.view(), kind});
      residual_forward({}, {two_pass.view(), two_pass.view(), v.view()});
      HostTensor fused = skip.Clone("fused"), dg1("dg1", dt, gs);
      rmsnorm_backward({}, {fused.view(), dg1.view(), dy.view(), x.view(), g.view(), r.view(), kind,
                            WriteMode::kAccumulate});
      expect_all_ok({compare_tensors("rmsnorm", "dinp += equals a residual add", fused, two_pass, exact()),
                     compare_tensors("rmsnorm", "dweight unchanged by the mode", dg1, dg0, exact())});
    }
  }
}

TEST(RmsNormDeathTest, WrongWeightShapeNamesTheTensor) {
  HostTensor x("x", DType::kF32, {2, 8}), g("layers.0.attn_norm.weight", DType::kF32, {8}),
      y("y", DType::kF32, {2, 8}), r("rstd", DType::kF32, {2});
  EXPECT_DEATH(rmsnorm_forward({}, {y.view(), r.view(), x.view(), g.view(), NormKind::kRmsNormS}),
               "layers.0.attn_norm.weight' has shape \\(8\\) but expected \\(1\\)");
}

}  // namespace
}  // namespace om
