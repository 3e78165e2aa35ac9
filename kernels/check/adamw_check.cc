// Checks for kernels/adamw.h. AdamW has no gradient to check; instead the f64 and f32 kernels run
// K = 10 steps against a scalar long-double reference of the same formula, on f32-representable
// inputs, and param, m and v are compared after the last step.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/check/checks.h"

namespace om {
namespace {

constexpr int kSteps = 10;
constexpr int64_t kElems = 4096;

struct Hyper {
  float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.1f, grad_scale = 0.75f;
};

// Gradient of step k (1-based): a fresh normal draw times a per-element magnitude in [1e-6, 10], so
// some elements have sqrt(vh) close to eps and others are far above it.
HostTensor make_grad(int k) {
  HostTensor g("grad", DType::kF32, {kElems});
  const Rng noise(7, "adamw/grad"), mag(7, "adamw/magnitude");
  for (int64_t i = 0; i < kElems; ++i) {
    const double magnitude = std::pow(10.0, -6.0 + 7.0 * mag.UniformDouble(i));
    g.set(i, magnitude * noise.NormalDouble(static_cast<uint64_t>(k) * kElems + i));
  }
  return g;
}

// The reference state and, per element, the error budgets of the recurrences (see check_adamw).
struct Reference {
  std::vector<long double> p, m, v;
  double p_max = 0, u_max = 0, m_terms = 0, v_terms = 0;
};

void reference_step(Reference& r, const HostTensor& grad, const Hyper& h, int step) {
  const long double b1 = h.beta1, b2 = h.beta2, lr = h.lr, eps = h.eps, wd = h.weight_decay;
  const long double bc1 = 1.0L - std::pow(b1, static_cast<long double>(step));
  const long double bc2 = 1.0L - std::pow(b2, static_cast<long double>(step));
  for (int64_t i = 0; i < kElems; ++i) {
    const long double g = static_cast<long double>(h.grad_scale) * grad.get(i);
    r.m_terms = std::max(r.m_terms, static_cast<double>(std::fabs(b1 * r.m[i]) + std::fabs((1 - b1) * g)));
    r.v_terms = std::max(r.v_terms, static_cast<double>(std::fabs(b2 * r.v[i]) + (1 - b2) * g * g));
    r.m[i] = b1 * r.m[i] + (1 - b1) * g;
    r.v[i] = b2 * r.v[i] + (1 - b2) * g * g;
    const long double u = (r.m[i] / bc1) / (std::sqrt(r.v[i] / bc2) + eps);
    r.p_max = std::max(r.p_max, static_cast<double>(std::fabs(r.p[i])));
    r.u_max = std::max(r.u_max, static_cast<double>(std::fabs(u)));
    r.p[i] -= lr * (u + wd * r.p[i]);
  }
}

HostTensor to_tensor(const std::vector<long double>& x, const char* name) {
  HostTensor t(name, DType::kF64, {static_cast<int64_t>(x.size())});
  for (size_t i = 0; i < x.size(); ++i) t.set(static_cast<int64_t>(i), static_cast<double>(x[i]));
  return t;
}

}  // namespace

CheckList check_adamw() {
  const Hyper h;
  HostTensor p0("param0", DType::kF32, {kElems});
  p0.FillNormal(Rng(7, "adamw/param"), 0, 1.0);
  Reference ref;
  for (int64_t i = 0; i < kElems; ++i) ref.p.push_back(p0.get(i));
  ref.m.assign(kElems, 0.0L);
  ref.v.assign(kElems, 0.0L);
  for (int k = 1; k <= kSteps; ++k) reference_step(ref, make_grad(k), h, k);
  for (long double p : ref.p) ref.p_max = std::max(ref.p_max, static_cast<double>(std::fabs(p)));
  const HostTensor want_p = to_tensor(ref.p, "param (reference)"), want_m = to_tensor(ref.m, "m (reference)"),
                   want_v = to_tensor(ref.v, "v (reference)");

  // Error bound (rule 2). Each state element follows a recurrence x_k = c * x_{k-1} + t_k (m: c = b1,
  // v: c = b2, param: c ~ 1 - lr*wd) evaluated with at most 6 roundings of eps/2 of its operands per
  // step (<= 3 eps * (|c x| + |t|)), and older errors are scaled by |c| <= 1, so after K steps the
  // error is <= 3K * eps * max_k (|c x_{k-1}| + |t_k|): m_terms and v_terms. param's terms are
  // |p| <= p_max and lr * (|u| + wd |p|); each u_k also inherits the errors of m and v, at most
  // 3K * eps * (|u| + 1) (the 1: when m's terms cancel, its error is at most its terms' size, which
  // is O(sqrt(vh))), adding K such terms of size lr: abs_sum = p_max + (K + 1) lr (u_max + 1 + wd p_max).
  const double p_terms = ref.p_max + (kSteps + 1) * static_cast<double>(h.lr) *
                                         (ref.u_max + 1.0 + static_cast<double>(h.weight_decay) * ref.p_max);
  CheckList results;
  for (DType dt : {DType::kF64, DType::kF32}) {
    HostTensor p = p0.Converted(dt, "param"), m("m", dt, {kElems}), v("v", dt, {kElems});
    for (int k = 1; k <= kSteps; ++k) {
      const HostTensor g = make_grad(k).Converted(dt);
      adamw_update(ExecContext{}, {p.view(), m.view(), v.view(), g.view(), h.lr, h.beta1, h.beta2, h.eps,
                                   h.weight_decay, k, h.grad_scale});
    }
    const std::string tag = std::string("adamw n=4096 K=10 ") + std::string(dtype_name(dt));
    results.push_back(compare_tensors(tag, "param vs long-double reference", p, want_p,
                                      for_reduction(dt, 3 * kSteps, p_terms)));
    results.push_back(compare_tensors(tag, "m vs long-double reference", m, want_m,
                                      for_reduction(dt, 3 * kSteps, ref.m_terms)));
    results.push_back(compare_tensors(tag, "v vs long-double reference", v, want_v,
                                      for_reduction(dt, 3 * kSteps, ref.v_terms)));
  }
  return results;
}

}  // namespace om
