// Comparison and gradient-check engine shared by tests/kernels and ortho_selfcheck.
// A CheckResult records the worst element of one comparison and how much of its tolerance budget
// it used (ok iff <= 1). Tests assert ok(); the self-check prints the table.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kernels/check/host_tensor.h"
#include "kernels/check/tolerance.h"

namespace om {

struct CheckResult {
  std::string op;    // "rmsnorm(rmsnorm-s) N=10 C=8"
  std::string what;  // "dinp vs central differences"
  double max_err = 0.0;      // worst |got - want|
  double budget_used = 0.0;  // worst |got - want| / (atol + rtol * |want|); ok iff <= 1
  int64_t worst_index = -1;
  double got = 0.0, want = 0.0;
  std::string rule;  // Tolerance::rule
  bool ok() const { return budget_used <= 1.0; }
  // One line; on failure also the worst index, both values and the first elements.
  std::string ToString() const;
  std::string detail;  // first elements of got/want on failure
};
using CheckList = std::vector<CheckResult>;

// Element-wise comparison of two tensors of equal numel (any float dtypes).
CheckResult compare_tensors(std::string op, std::string what, const HostTensor& got, const HostTensor& want,
                            const Tolerance& tol);
// A pass/fail fact that is not a tensor comparison (e.g. "softmax-1 rows sum below 1").
CheckResult check_fact(std::string op, std::string what, bool holds, std::string detail = "");

// loss = sum_i out[i] * w[i] in double; *abs_sum (optional) = sum_i |out[i] * w[i]|.
double weighted_sum(const HostTensor& out, const HostTensor& w, double* abs_sum = nullptr);

// Central differences of `loss` w.r.t. every element of the f64 tensor `x`, against `analytic`.
// `loss` must recompute the forward from the current contents of x. x is restored afterwards.
CheckResult finite_difference_check(std::string op, std::string what, HostTensor& x, const HostTensor& analytic,
                                    const std::function<double()>& loss, double loss_scale, double h = kFdStep);

}  // namespace om
