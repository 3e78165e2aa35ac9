#include "kernels/check/gradcheck.h"

#include <algorithm>
#include <cmath>

namespace om {

std::string CheckResult::ToString() const {
  std::string s = format_message("%-4s %-40s %-44s max err %.3e  budget %5.1f%%", ok() ? "ok" : "FAIL", op.c_str(),
                                 what.c_str(), max_err, 100.0 * budget_used);
  if (!ok()) {
    s += format_message("\n     worst index %ld: got %.9g want %.9g (%s)", static_cast<long>(worst_index), got, want,
                        rule.c_str());
    if (!detail.empty()) s += "\n     " + detail;
  }
  return s;
}

CheckResult compare_tensors(std::string op, std::string what, const HostTensor& got, const HostTensor& want,
                            const Tolerance& tol) {
  OM_CHECK(got.numel() == want.numel(), "compare_tensors: '%s' has %ld elements, '%s' %ld", got.name().c_str(),
           static_cast<long>(got.numel()), want.name().c_str(), static_cast<long>(want.numel()));
  CheckResult r{std::move(op), std::move(what)};
  r.rule = tol.rule;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.get(i), w = want.get(i);
    const double err = std::fabs(g - w);
    const double budget = tol.atol + tol.rtol * std::fabs(w);
    // NaN anywhere fails; an exact match uses no budget even when the budget is 0.
    double used = std::isnan(err) ? INFINITY : (err == 0.0 ? 0.0 : (budget > 0.0 ? err / budget : INFINITY));
    r.max_err = std::max(r.max_err, std::isnan(err) ? INFINITY : err);
    if (used > r.budget_used || r.worst_index < 0) {
      r.budget_used = std::max(r.budget_used, used);
      r.worst_index = i;
      r.got = g;
      r.want = w;
    }
  }
  if (!r.ok()) {
    r.detail = "first elements got/want:";
    for (int64_t i = 0; i < std::min<int64_t>(4, got.numel()); ++i)
      r.detail += format_message(" %.6g/%.6g", got.get(i), want.get(i));
  }
  return r;
}

CheckResult check_fact(std::string op, std::string what, bool holds, std::string detail) {
  CheckResult r{std::move(op), std::move(what)};
  r.budget_used = holds ? 0.0 : INFINITY;
  r.rule = "fact";
  r.detail = std::move(detail);
  return r;
}

double weighted_sum(const HostTensor& out, const HostTensor& w, double* abs_sum) {
  OM_CHECK(out.numel() == w.numel(), "weighted_sum: '%s' and '%s' differ in size", out.name().c_str(),
           w.name().c_str());
  double s = 0.0, a = 0.0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double t = out.get(i) * w.get(i);
    s += t;
    a += std::fabs(t);
  }
  if (abs_sum) *abs_sum = a;
  return s;
}

CheckResult finite_difference_check(std::string op, std::string what, HostTensor& x, const HostTensor& analytic,
                                    const std::function<double()>& loss, double loss_scale, double h) {
  OM_CHECK(x.dtype() == DType::kF64, "finite differences run in f64; '%s' is %s", x.name().c_str(),
           std::string(dtype_name(x.dtype())).c_str());
  HostTensor numeric("numeric d" + x.name(), DType::kF64, x.shape());
  double* xd = x.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double saved = xd[i];
    xd[i] = saved + h;
    const double lp = loss();
    xd[i] = saved - h;
    const double lm = loss();
    xd[i] = saved;
    numeric.set(i, (lp - lm) / (2.0 * h));
  }
  loss();  // leave any forward state consistent with the restored x
  return compare_tensors(std::move(op), std::move(what), analytic, numeric, for_finite_difference(h, loss_scale));
}

}  // namespace om
