// The one place where check tolerances are derived (STYLE.md §8). Tests and ortho_selfcheck both
// use these rules; no test picks its own numbers.
//
// A comparison passes element-wise when |got - want| <= atol + rtol * |want|. Each rule says why.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace om {

struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
  std::string rule;  // how it was derived, printed on failure
};

// Unit round-off-sized epsilon of a dtype: 2^-23 (f32), 2^-7 (bf16), 2^-52 (f64).
double dtype_eps(DType dtype);

// Rule 2 (error bound). A result computed in `dtype` that sums `reduce_len` terms whose absolute
// values add up to at most `abs_sum` (for a dot product: sum |x_i * y_i|), then passes through a
// few rounded element-wise operations (exp, rsqrt, multiply):
//   atol = reduce_len * eps * abs_sum        (recursive summation: gamma_n * sum|terms|, gamma_n ~ n*eps)
//   rtol = kElementwiseUlps * eps            (<= kElementwiseUlps roundings after the reduction)
inline constexpr double kElementwiseUlps = 8.0;
Tolerance for_reduction(DType dtype, int64_t reduce_len, double abs_sum);

// Exact by construction (rule 1): integer-valued data whose partial sums fit the mantissa.
Tolerance exact();

// Central differences (f(x+h) - f(x-h)) / 2h in double, for a loss whose terms sum in absolute value
// to `loss_scale`:
//   truncation  <= h^2/6 * |f'''|    with |f'''|/6 <= kFdCurvature for our smooth ops on O(1) inputs
//   rounding    <= 2 * eps64 * loss_scale / (2h)  (two loss evaluations, each off by eps64*loss_scale)
//   atol = kFdCurvature * h^2 + eps64 * loss_scale / h,   rtol = kFdCurvature * h^2
inline constexpr double kFdCurvature = 10.0;
inline constexpr double kFdStep = 1e-4;
Tolerance for_finite_difference(double h, double loss_scale);

// Rule 3 (relative to a same-precision naive reference, STYLE.md §8). A kernel whose output is
// rounded to a low-precision dtype (bf16: 8 significant bits) is dominated by that final rounding,
// which rule 2's bound for the f32 arithmetic inside does not cover; it is judged against a naive
// implementation with the same output precision instead:
//   max|kernel - ref_f64| <= kNaiveFactor * max|naive - ref_f64|
// where naive is the CPU reference run on the same (already rounded) inputs with its output
// rounded to the dtype, and ref_f64 the f64 CPU reference. The factor 2 leaves room for the
// kernel's own f32 rounding on top of the output rounding that both share (flash-attention's rule).
// As a Tolerance: atol = kNaiveFactor * naive_max_err, rtol = 0.
inline constexpr double kNaiveFactor = 2.0;
Tolerance for_naive_reference(double naive_max_err);

}  // namespace om
