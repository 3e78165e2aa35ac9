// SwiGLU: gradient checks (kernels/check/swiglu_check.cc) plus the op's own facts: silu values,
// saturation at large |gate| without NaN, and the overwrite contract of the backward.
#include <cmath>
#include <vector>

#include "kernels/check/checks.h"
#include "kernels/swiglu.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(Swiglu, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_swiglu()); }

TEST(Swiglu, MatchesTheDefinitionOnModerateGates) {
  // out = g * u / (1 + exp(-g)) evaluated directly (safe for |g| <= 8): a product chain, no sum.
  const std::vector<double> gates = {-8, -3, -1.5, -1, -0.25, 0.5, 1, 2, 4, 8};
  const int64_t F = static_cast<int64_t>(gates.size());
  HostTensor gu("gate_up", DType::kF64, {1, 2 * F}), y("out", DType::kF64, {1, F}),
      want("definition", DType::kF64, {1, F});
  for (int64_t f = 0; f < F; ++f) {
    const double u = 0.5 + 0.25 * static_cast<double>(f);
    gu.set(f, gates[f]);
    gu.set(F + f, u);
    want.set(f, gates[f] * u / (1.0 + std::exp(-gates[f])));
  }
  swiglu_forward({}, {y.view(), gu.view()});
  expect_all_ok({compare_tensors("swiglu f64", "out vs g*u/(1+exp(-g))", y, want,
                                 for_reduction(DType::kF64, 1, want.max_abs()))});
}

void expect_saturation_facts(DType dt) {
  // Gates 0, +1000, -1000: silu(0) = 0, silu(1000) = 1000 (sigmoid rounds to exactly 1),
  // silu(-1000) = 0 (sigmoid underflows to exactly 0). The gradients saturate the same way:
  // dgate = dout * u * silu'(g) with silu'(1000) = 1 and silu'(-1000) = 0; dup = dout * silu(g).
  const std::vector<double> gates = {0.0, 1000.0, -1000.0, 100.0, -100.0, 88.0, -88.0, 20.0, -20.0};
  const int64_t F = static_cast<int64_t>(gates.size());
  const double u = 3.0, dy = -2.0;
  HostTensor gu("gate_up", dt, {1, 2 * F}), y("out", dt, {1, F}), dout("dout", dt, {1, F}),
      dgu("dgate_up", dt, {1, 2 * F}), want("g*u/(1+exp(-g))", DType::kF64, {1, F});
  for (int64_t f = 0; f < F; ++f) {
    gu.set(f, gates[f]);
    gu.set(F + f, u);
    want.set(f, gates[f] * u / (1.0 + std::exp(-gates[f])));  // exp(1000) = inf gives the exact 0 here
  }
  dout.Fill(dy);
  swiglu_forward({}, {y.view(), gu.view()});
  swiglu_backward({}, {dgu.view(), dout.view(), gu.view()});
  for (int64_t f = 0; f < F; ++f) {
    EXPECT_TRUE(std::isfinite(y.get(f))) << "out at gate " << gates[f];
    EXPECT_TRUE(std::isfinite(dgu.get(f))) << "dgate at gate " << gates[f];
    EXPECT_TRUE(std::isfinite(dgu.get(F + f))) << "dup at gate " << gates[f];
  }
  EXPECT_EQ(y.get(0), 0.0);
  EXPECT_EQ(y.get(1), 1000.0 * u);
  EXPECT_EQ(y.get(2), 0.0);
  EXPECT_EQ(dgu.get(1), dy * u);
  EXPECT_EQ(dgu.get(2), 0.0);
  EXPECT_EQ(dgu.get(F + 0), 0.0);
  EXPECT_EQ(dgu.get(F + 1), dy * 1000.0);
  EXPECT_EQ(dgu.get(F + 2), 0.0);
  // Large positive gates give out ~ g * u, large negative ones out ~ 0: the definition, evaluated in
  // double, within the forward's product-chain bound (as in check_swiglu).
  expect_all_ok(
      {compare_tensors(std::string("swiglu ") + std::string(dtype_name(dt)), "out at |gate| up to 1000 vs definition",
                       y, want, for_reduction(dt, 1, want.max_abs()))});
}

TEST(Swiglu, SaturatesWithoutNaNAtLargeGatesF32) { expect_saturation_facts(DType::kF32); }
TEST(Swiglu, SaturatesWithoutNaNAtLargeGatesF64) { expect_saturation_facts(DType::kF64); }

TEST(Swiglu, BackwardOverwritesItsOutput) {
  const int64_t N = 5, F = 6;
  HostTensor gu("gate_up", DType::kF64, {N, 2 * F}), dout("dout", DType::kF64, {N, F});
  gu.FillNormal(Rng(31, "gate_up"), 0, 2.0);
  dout.FillNormal(Rng(31, "dout"), 0, 1.0);
  HostTensor d0("d0", DType::kF64, {N, 2 * F}), d1("d1", DType::kF64, {N, 2 * F});
  d1.Fill(123.0);  // garbage that an overwrite must replace
  swiglu_backward({}, {d0.view(), dout.view(), gu.view()});
  swiglu_backward({}, {d1.view(), dout.view(), gu.view()});
  for (int64_t i = 0; i < N * 2 * F; ++i) EXPECT_EQ(d1.get(i), d0.get(i));
}

TEST(SwigluDeathTest, WrongShapesNameTheTensor) {
  HostTensor gu("layers.0.mlp.gate_up", DType::kF32, {4, 8}), y("layers.0.mlp.act", DType::kF32, {4, 8});
  EXPECT_DEATH(swiglu_forward({}, {y.view(), gu.view()}),
               "'layers.0.mlp.act' has shape \\(4, 8\\) but expected \\(4, 4\\)");
  HostTensor odd("layers.1.mlp.gate_up", DType::kF32, {4, 7}), y4("y", DType::kF32, {4, 3});
  EXPECT_DEATH(swiglu_forward({}, {y4.view(), odd.view()}), "'layers.1.mlp.gate_up' must be \\(N, 2F\\)");
}

}  // namespace
}  // namespace om
