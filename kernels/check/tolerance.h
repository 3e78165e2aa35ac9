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

// Rule 4 (error bound, f32 lane sums; the cross-entropy *_simd variants). A result built from
// `reduce_len` terms, each computed in f32 to within `term_ulps` ulp (relative error <= term_ulps *
// eps) and summed in `lanes` f32 partial sums (lane l adds every lanes-th term recursively) that are
// then combined (in double, or pairwise in f32: log2(lanes) levels) and rounded once:
//   terms        <= term_ulps * eps * abs_sum
//   lane sums    <= ceil(reduce_len / lanes) * eps * abs_sum    (gamma_m <= m * eps/2 for m additions;
//                                                               rounded up to m * eps)
//   combination  <= log2(lanes) * eps * abs_sum                 (also covers the final rounding)
//   atol = (ceil(reduce_len / lanes) + log2(lanes) + term_ulps) * eps * abs_sum
//   rtol = kElementwiseUlps * eps                                (the roundings after the sum)
// abs_sum is sum |terms| scaled to the compared quantity: 1 for log(sum_exp) (an absolute error of
// the log is the relative error of the sum), dloss for dlogits = exp(x - m) / sum_exp * dloss.
// kExpF32Ulps: the shared f32 exp of the CPU row loops (kernels/cpu/exp_f32.h: exp_f32, and
// exp_shifted_f32 whose x - m is exact), measured against std::exp in double: max 1.13 ulp (SSE2),
// 1.16 ulp (with FMA contraction) over every float in [-104, 88] (bench/kernels/cross_entropy_bench
// --exp-ulp), and <= 1.16 ulp for exp(x - m) with m != 0 (one more rounding of the reduced
// argument) on a dense grid. 1.5 leaves a margin; it is also the bound that "within one float of the
// correctly rounded value" implies (1 + 0.5 ulp), which the exp keeps too. tests/kernels/exp_f32_test.cc
// asserts both. Results under FLT_MIN are flushed to 0: an absolute error below FLT_MIN ≈ 1.2e-38
// per term, negligible next to eps * abs_sum for any abs_sum >= 1e-20.
inline constexpr double kExpF32Ulps = 1.5;
Tolerance for_lane_reduction(DType dtype, int64_t reduce_len, int64_t lanes, double abs_sum, double term_ulps);

}  // namespace om
