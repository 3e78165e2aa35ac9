#include "kernels/check/tolerance.h"

#include <cmath>

#include "core/check.h"

namespace om {

double dtype_eps(DType dtype) {
  switch (dtype) {
    case DType::kF32: return std::ldexp(1.0, -23);
    case DType::kBF16: return std::ldexp(1.0, -7);
    case DType::kF64: return std::ldexp(1.0, -52);
    default: return 0.0;  // integers are exact
  }
}

Tolerance for_reduction(DType dtype, int64_t reduce_len, double abs_sum) {
  const double eps = dtype_eps(dtype);
  return Tolerance{static_cast<double>(reduce_len) * eps * abs_sum, kElementwiseUlps * eps,
                   format_message("rule 2: %ld * eps(%s) * %.3g + %.0f ulp", static_cast<long>(reduce_len),
                                  std::string(dtype_name(dtype)).c_str(), abs_sum, kElementwiseUlps)};
}

Tolerance exact() { return Tolerance{0.0, 0.0, "rule 1: exact"}; }

Tolerance for_finite_difference(double h, double loss_scale) {
  const double eps = dtype_eps(DType::kF64);
  return Tolerance{kFdCurvature * h * h + eps * loss_scale / h, kFdCurvature * h * h,
                   format_message("finite differences: h=%.0e, loss scale %.3g", h, loss_scale)};
}

Tolerance for_naive_reference(double naive_max_err) {
  return Tolerance{kNaiveFactor * naive_max_err, 0.0,
                   format_message("rule 3: %.0f * max|naive - ref| = %.0f * %.3g", kNaiveFactor, kNaiveFactor,
                                  naive_max_err)};
}

Tolerance for_lane_reduction(DType dtype, int64_t reduce_len, int64_t lanes, double abs_sum, double term_ulps) {
  const double eps = dtype_eps(dtype);
  const double per_lane = std::ceil(static_cast<double>(reduce_len) / static_cast<double>(lanes));
  const double levels = std::log2(static_cast<double>(lanes));
  return Tolerance{(per_lane + levels + term_ulps) * eps * abs_sum, kElementwiseUlps * eps,
                   format_message("rule 4: (%.0f per lane + log2 %ld + %.2f ulp terms) * eps(%s) * %.3g + %.0f ulp",
                                  per_lane, static_cast<long>(lanes), term_ulps,
                                  std::string(dtype_name(dtype)).c_str(), abs_sum, kElementwiseUlps)};
}

}  // namespace om
