// CPU reference for AdamW (kernels/adamw.h). Templated on the float type (f32 production, f64 for
// checks). Each element is updated in double and the new param, m and v are rounded to T once, so
// the f32 path's only errors are those three roundings per step.
#include <cmath>

#include "kernels/adamw.h"

namespace om::cpu {
namespace {

// 1 - beta^step without cancellation: for beta2 = 0.999 at step 2, 1 - pow(beta, 2) loses ~8 bits
// (0.998001 rounded, then 1 - 0.998); -expm1(step * log1p(-(1 - beta))) keeps a few ulp relative
// (1 - beta is exact for beta in [0.5, 1), Sterbenz).
double bias_correction(double beta, int64_t step) {
  return -std::expm1(static_cast<double>(step) * std::log1p(-(1.0 - beta)));
}

template <typename T>
void update_impl(const AdamWArgs& a) {
  const int64_t n = a.param.numel();
  T* p = a.param.data_as<T>();
  T* m = a.m.data_as<T>();
  T* v = a.v.data_as<T>();
  const T* g = a.grad.data_as<const T>();
  const double b1 = a.beta1, b2 = a.beta2, lr = a.lr, eps = a.eps, wd = a.weight_decay, scale = a.grad_scale;
  const double bc1 = bias_correction(b1, a.step), bc2 = bias_correction(b2, a.step);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double gi = scale * static_cast<double>(g[i]);
    const double mi = b1 * m[i] + (1.0 - b1) * gi;
    const double vi = b2 * v[i] + (1.0 - b2) * gi * gi;
    const double pi = p[i];
    // Decoupled decay: wd * param is added to the Adam direction, not to the gradient, so it
    // never enters the moments.
    p[i] = static_cast<T>(pi - lr * ((mi / bc1) / (std::sqrt(vi / bc2) + eps) + wd * pi));
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
  }
}

}  // namespace

void adamw_update(const AdamWArgs& a) {
  if (a.param.dtype == DType::kF64) return update_impl<double>(a);
  update_impl<float>(a);
}

}  // namespace om::cpu
