// optim::AdamW: the optimizer's wiring around kernels/adamw.h. A (2, 3) matrix (decayed) and a (3)
// gain (not decayed) take three steps against Adam's formulas written out in long double; grad_scale
// and the step counter; the moments' names and layout.
#include "optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/check/checks.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr int kSteps = 3;
constexpr float kLr = 1e-2f;

AdamWConfig test_config() {
  AdamWConfig c;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.eps = 1e-8f;
  c.weight_decay = 0.1f;
  return c;
}

// Gradient element j of a parameter at step k (1-based): multiples of 1/16 (exact in f32) whose
// sign and size change from step to step, so m and v are not just rescaled copies of step 1.
double grad_value(int param, int64_t j, int k) {
  const double base = static_cast<double>((j + 1) * (param == 0 ? 3 : -5) + 7 * k) - 10.0;
  return base / 16.0 * (k == 2 ? -1.0 : 1.0);
}

// Adam written out (kernels/adamw.h's formulas), in long double, one parameter.
struct Reference {
  std::vector<long double> p, m, v;
  double p_max = 0, u_max = 0, m_terms = 0, v_terms = 0;  // error-budget inputs, see ExpectMatches

  void Step(const std::vector<double>& grad, const AdamWConfig& c, double weight_decay, int k) {
    // The kernel receives the config as floats; the reference uses those same values exactly.
    const long double b1 = c.beta1, b2 = c.beta2, eps = c.eps, lr = kLr, wd = weight_decay;
    const long double bc1 = 1.0L - std::pow(b1, static_cast<long double>(k));
    const long double bc2 = 1.0L - std::pow(b2, static_cast<long double>(k));
    for (size_t i = 0; i < p.size(); ++i) {
      const long double g = grad[i];
      m_terms = std::max(m_terms, static_cast<double>(std::fabs(b1 * m[i]) + std::fabs((1 - b1) * g)));
      v_terms = std::max(v_terms, static_cast<double>(b2 * v[i] + (1 - b2) * g * g));
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const long double u = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
      p_max = std::max(p_max, static_cast<double>(std::fabs(p[i])));
      u_max = std::max(u_max, static_cast<double>(std::fabs(u)));
      p[i] -= lr * (u + wd * p[i]);
    }
  }
};

HostTensor to_tensor(const std::vector<long double>& x, const char* name) {
  HostTensor t(name, DType::kF64, {static_cast<int64_t>(x.size())});
  for (size_t i = 0; i < x.size(); ++i) t.set(static_cast<int64_t>(i), static_cast<double>(x[i]));
  return t;
}

// A host copy of an optimizer-owned f32 view (the moments live in AdamW's arena).
HostTensor copy_of(const TensorView& v) {
  HostTensor t(v.name, v.dtype, v.shape);
  std::memcpy(t.view().data, v.data, v.nbytes());
  return t;
}

// Error budget of an f32 AdamW state after K steps, the derivation of kernels/check/adamw_check.cc:
// each state element follows x_k = c x_{k-1} + t_k with |c| <= 1 and is rounded to f32 once per step
// after a double evaluation, with <= 3 eps of error per step relative to |c x| + |t| (its own
// rounding plus what m and v pass on to the update u); over K steps rule 2 with 3K terms of size
// max(|c x| + |t|). For param the terms are p_max and lr * (|u| + 1 + wd p_max) for K + 1 steps.
Tolerance param_tolerance(const Reference& r, double weight_decay) {
  return for_reduction(DType::kF32, 3 * kSteps,
                       r.p_max + (kSteps + 1) * static_cast<double>(kLr) * (r.u_max + 1.0 + weight_decay * r.p_max));
}

struct TwoParams {
  HostTensor w{"w", DType::kF32, {2, 3}}, gain{"gain", DType::kF32, {3}};
  HostTensor dw{"dw", DType::kF32, {2, 3}}, dgain{"dgain", DType::kF32, {3}};
  TwoParams() {
    for (int64_t j = 0; j < 6; ++j) w.set(j, 0.25 * static_cast<double>(j) - 0.5);  // 0 included: pure Adam
    for (int64_t j = 0; j < 3; ++j) gain.set(j, 1.0 + 0.5 * static_cast<double>(j));
  }
  std::vector<Parameter> params() {
    return {Parameter{"layers.0.attn.q.weight", w.view(), dw.view(), true},
            Parameter{"layers.0.attn_norm.weight", gain.view(), dgain.view(), false}};
  }
  // Writes step k's gradients times `scale` (a power of two: exact).
  void SetGrads(int k, double scale) {
    for (int64_t j = 0; j < 6; ++j) dw.set(j, scale * grad_value(0, j, k));
    for (int64_t j = 0; j < 3; ++j) dgain.set(j, scale * grad_value(1, j, k));
  }
};

Reference reference_start(const HostTensor& t) {
  Reference r;
  for (int64_t i = 0; i < t.numel(); ++i) r.p.push_back(t.get(i));
  r.m.assign(r.p.size(), 0.0L);
  r.v.assign(r.p.size(), 0.0L);
  return r;
}

std::vector<double> grads(int param, int64_t n, int k) {
  std::vector<double> g;
  for (int64_t j = 0; j < n; ++j) g.push_back(grad_value(param, j, k));
  return g;
}

TEST(OptimAdamW, ThreeStepsMatchLongDoubleAdamWithDecayOnlyOnMatrices) {
  const AdamWConfig config = test_config();
  TwoParams t;
  const std::vector<Parameter> params = t.params();
  Reference ref_w = reference_start(t.w), ref_gain = reference_start(t.gain);
  Reference ref_gain_decayed = ref_gain;  // what the gain would be if it (wrongly) decayed
  AdamW opt(params, config);
  EXPECT_EQ(opt.step(), 0);
  for (int k = 1; k <= kSteps; ++k) {
    t.SetGrads(k, 1.0);
    opt.Step(kLr);
    EXPECT_EQ(opt.step(), k);
    ref_w.Step(grads(0, 6, k), config, config.weight_decay, k);
    ref_gain.Step(grads(1, 3, k), config, 0.0, k);
    ref_gain_decayed.Step(grads(1, 3, k), config, config.weight_decay, k);
  }
  const Tolerance tol_w = param_tolerance(ref_w, config.weight_decay), tol_gain = param_tolerance(ref_gain, 0.0);
  expect_all_ok({
      compare_tensors("adamw (2,3) wd=0.1 K=3", "w vs long-double Adam", t.w, to_tensor(ref_w.p, "w ref"), tol_w),
      compare_tensors("adamw (2,3) wd=0.1 K=3", "exp_avg", copy_of(opt.m(0)), to_tensor(ref_w.m, "m ref"),
                      for_reduction(DType::kF32, 3 * kSteps, ref_w.m_terms)),
      compare_tensors("adamw (2,3) wd=0.1 K=3", "exp_avg_sq", copy_of(opt.v(0)), to_tensor(ref_w.v, "v ref"),
                      for_reduction(DType::kF32, 3 * kSteps, ref_w.v_terms)),
      compare_tensors("adamw (3) no decay K=3", "gain vs long-double Adam (wd 0)", t.gain,
                      to_tensor(ref_gain.p, "gain ref"), tol_gain),
      compare_tensors("adamw (3) no decay K=3", "exp_avg", copy_of(opt.m(1)), to_tensor(ref_gain.m, "m ref"),
                      for_reduction(DType::kF32, 3 * kSteps, ref_gain.m_terms)),
      compare_tensors("adamw (3) no decay K=3", "exp_avg_sq", copy_of(opt.v(1)), to_tensor(ref_gain.v, "v ref"),
                      for_reduction(DType::kF32, 3 * kSteps, ref_gain.v_terms)),
  });
  // The comparison can tell decay from no decay: a decayed gain would be off by ~K lr wd |p| (3e-3
  // to 6e-3 here), about a thousand times the ~2e-6 tolerance, so it would fail the check above.
  const CheckResult decayed = compare_tensors("adamw (3) no decay K=3", "gain vs decayed reference", t.gain,
                                              to_tensor(ref_gain_decayed.p, "decayed gain ref"), tol_gain);
  EXPECT_GT(decayed.budget_used, 100.0) << decayed.ToString();
}

TEST(OptimAdamW, GradScaleHalfEqualsHalvingTheGradients) {
  const AdamWConfig config = test_config();
  TwoParams a, b;
  const std::vector<Parameter> pa = a.params(), pb = b.params();
  AdamW opt_a(pa, config), opt_b(pb, config);
  for (int k = 1; k <= kSteps; ++k) {
    a.SetGrads(k, 1.0);
    opt_a.Step(kLr, 0.5f);
    b.SetGrads(k, 0.5);  // exact: a power-of-two scale
    opt_b.Step(kLr, 1.0f);
  }
  // Bit-identical (rule 1): the kernel forms grad_scale * grad in double, which equals the halved
  // gradient exactly, and everything after it is the same arithmetic.
  expect_all_ok({compare_tensors("adamw grad_scale 0.5", "w", a.w, b.w, exact()),
                 compare_tensors("adamw grad_scale 0.5", "gain", a.gain, b.gain, exact()),
                 compare_tensors("adamw grad_scale 0.5", "exp_avg w", copy_of(opt_a.m(0)), copy_of(opt_b.m(0)),
                                 exact()),
                 compare_tensors("adamw grad_scale 0.5", "exp_avg_sq gain", copy_of(opt_a.v(1)), copy_of(opt_b.v(1)),
                                 exact())});
  EXPECT_EQ(opt_a.step(), kSteps);
  EXPECT_EQ(opt_b.step(), kSteps);
  // And the scale reaches the moments: an optimizer c fed the full gradients with scale 1 holds
  // exactly twice a's first moment and four times its second (m is linear in g, v quadratic, and a
  // power-of-two factor commutes with every f32 rounding). Adam's update itself is nearly
  // scale-invariant, so the moments, not the weights, are where a dropped grad_scale would show.
  TwoParams c;
  const std::vector<Parameter> pc = c.params();
  AdamW opt_c(pc, config);
  for (int k = 1; k <= kSteps; ++k) {
    c.SetGrads(k, 1.0);
    opt_c.Step(kLr, 1.0f);
  }
  const HostTensor m_a = copy_of(opt_a.m(0)), m_c = copy_of(opt_c.m(0)), v_a = copy_of(opt_a.v(1)),
                   v_c = copy_of(opt_c.v(1));
  HostTensor half_m_c = m_c.Clone("m_c / 2"), quarter_v_c = v_c.Clone("v_c / 4");
  for (int64_t i = 0; i < m_c.numel(); ++i) half_m_c.set(i, 0.5 * m_c.get(i));
  for (int64_t i = 0; i < v_c.numel(); ++i) quarter_v_c.set(i, 0.25 * v_c.get(i));
  expect_all_ok({compare_tensors("adamw grad_scale 0.5", "exp_avg = unscaled / 2", m_a, half_m_c, exact()),
                 compare_tensors("adamw grad_scale 0.5", "exp_avg_sq = unscaled / 4", v_a, quarter_v_c, exact())});
  EXPECT_GT(m_c.max_abs(), 0.0);
}

TEST(OptimAdamW, MomentsAreNamedZeroedAndShapedLikeTheirParameters) {
  TwoParams t;
  const std::vector<Parameter> params = t.params();
  AdamW opt(params, test_config());
  EXPECT_STREQ(opt.m(0).name, "layers.0.attn.q.weight.exp_avg");
  EXPECT_STREQ(opt.v(0).name, "layers.0.attn.q.weight.exp_avg_sq");
  EXPECT_STREQ(opt.m(1).name, "layers.0.attn_norm.weight.exp_avg");
  EXPECT_STREQ(opt.v(1).name, "layers.0.attn_norm.weight.exp_avg_sq");
  EXPECT_EQ(opt.m(0).shape, (Shape{2, 3}));
  EXPECT_EQ(opt.v(1).shape, (Shape{3}));
  EXPECT_EQ(opt.m(1).dtype, DType::kF32);
  EXPECT_EQ(copy_of(opt.m(0)).max_abs(), 0.0);
  EXPECT_EQ(copy_of(opt.v(1)).max_abs(), 0.0);
  // One arena, in parameter order: each view starts after the previous one.
  const char* m0 = static_cast<const char*>(opt.m(0).data);
  EXPECT_LT(m0, static_cast<const char*>(opt.v(0).data));
  EXPECT_LT(static_cast<const char*>(opt.v(0).data), static_cast<const char*>(opt.m(1).data));
  EXPECT_LT(static_cast<const char*>(opt.m(1).data), static_cast<const char*>(opt.v(1).data));
}

TEST(OptimAdamW, ZeroLearningRateLeavesParamsButAdvancesMoments) {
  // lr = 0 (e.g. step 0 of a schedule that starts at zero) must not move weights, but it is still a
  // step: the counter and the moments advance, as in PyTorch.
  TwoParams t;
  const std::vector<Parameter> params = t.params();
  const HostTensor w0 = t.w.Clone("w0");
  AdamW opt(params, test_config());
  t.SetGrads(1, 1.0);
  opt.Step(0.0f);
  expect_all_ok({compare_tensors("adamw lr=0", "w unchanged", t.w, w0, exact())});
  EXPECT_EQ(opt.step(), 1);
  EXPECT_GT(copy_of(opt.v(0)).max_abs(), 0.0);
}

TEST(OptimAdamWDeathTest, GradientShapeMismatchIsNamed) {
  HostTensor w("w", DType::kF32, {2, 3}), dw("dw", DType::kF32, {3, 2});
  const std::vector<Parameter> params = {Parameter{"layers.1.mlp.up.weight", w.view(), dw.view(), true}};
  EXPECT_DEATH(AdamW(params, test_config()), "'layers.1.mlp.up.weight' is \\(2, 3\\) but its gradient is \\(3, 2\\)");
}

}  // namespace
}  // namespace om
