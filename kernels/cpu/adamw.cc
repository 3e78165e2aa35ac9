// CPU reference for AdamW (kernels/adamw.h). Templated on the float type (f32 production, f64 for
// checks). Each element is updated in double; the direction u and the new param, m and v are each
// rounded to T once, so the f32 path's only errors are those four roundings per step.
#include <cmath>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/adamw.h"

namespace om::cpu {
namespace {

// 1 - beta^step without cancellation: for beta2 = 0.999 at step 2, 1 - pow(beta, 2) loses ~8 bits
// (0.998001 rounded, then 1 - 0.998); -expm1(step * log1p(-(1 - beta))) keeps a few ulp relative
// (1 - beta is exact for beta in [0.5, 1), Sterbenz).
double bias_correction(double beta, int64_t step) {
  return -std::expm1(static_cast<double>(step) * std::log1p(-(1.0 - beta)));
}

// The moments and the direction of one element, in double: returns u = mh / (sqrt(vh) + eps) and
// leaves the new moments in mi, vi. Shared by the fused and the split kernels so they agree bit for
// bit.
struct Moments {
  double b1, b2, eps, scale, bc1, bc2;
  double Direction(double g, double& mi, double& vi) const {
    const double gi = scale * g;
    mi = b1 * mi + (1.0 - b1) * gi;
    vi = b2 * vi + (1.0 - b2) * gi * gi;
    return (mi / bc1) / (std::sqrt(vi / bc2) + eps);
  }
};

// Decoupled decay: wd * param is added to the Adam direction u (already rounded to T), not to the
// gradient, so it never enters the moments.
template <typename T>
T apply_one(double pi, T u, double lr, double wd) {
  return static_cast<T>(pi - lr * (static_cast<double>(u) + wd * pi));
}

// The fused publish (kernels/adamw.h): the updated param i into `value`, f32 as is or bf16 through
// core/dtype.h's rounding (kernels/cpu/cast.cc's, so the bits of a cast after the step). Only f32
// params have one (kernels/adamw.cc checks).
class ValueOut {
 public:
  explicit ValueOut(const TensorView& v) {
    if (v.empty()) return;
    if (v.dtype == DType::kBF16) {
      bf16_ = static_cast<uint16_t*>(v.data);  // raw bits (data_as<uint16_t> would check for kU16)
    } else {
      f32_ = v.data_as<float>();
    }
  }
  template <typename T>
  void Put(int64_t i, T p) const {
    if constexpr (std::is_same_v<T, float>) {
      if (f32_ != nullptr) f32_[i] = p;
      if (bf16_ != nullptr) bf16_[i] = float_to_bf16_bits(p);
    }
  }

 private:
  float* f32_ = nullptr;
  uint16_t* bf16_ = nullptr;
};

template <typename T>
void update_impl(const AdamWArgs& a) {
  const int64_t n = a.param.numel();
  T* p = a.param.data_as<T>();
  T* m = a.m.data_as<T>();
  T* v = a.v.data_as<T>();
  const T* g = a.grad.data_as<const T>();
  const double lr = a.lr, wd = a.weight_decay;
  const Moments mo{a.beta1, a.beta2, a.eps, a.grad_scale, bias_correction(a.beta1, a.step),
                   bias_correction(a.beta2, a.step)};
  const ValueOut out(a.value);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double mi = m[i], vi = v[i];
    const T u = static_cast<T>(mo.Direction(static_cast<double>(g[i]), mi, vi));
    p[i] = apply_one<T>(p[i], u, lr, wd);
    out.Put(i, p[i]);
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
  }
}

template <typename T>
void direction_impl(const AdamDirectionArgs& a) {
  const int64_t n = a.direction.numel();
  T* u = a.direction.data_as<T>();
  T* m = a.m.data_as<T>();
  T* v = a.v.data_as<T>();
  const T* g = a.grad.data_as<const T>();  // may alias u: element i is read before it is written
  const Moments mo{a.beta1, a.beta2, a.eps, a.grad_scale, bias_correction(a.beta1, a.step),
                   bias_correction(a.beta2, a.step)};
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double mi = m[i], vi = v[i];
    const double ui = mo.Direction(static_cast<double>(g[i]), mi, vi);
    u[i] = static_cast<T>(ui);
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
  }
}

template <typename T>
void apply_impl(const AdamApplyArgs& a) {
  const int64_t n = a.param.numel();
  T* p = a.param.data_as<T>();
  const T* u = a.direction.data_as<const T>();
  const double lr = a.lr, wd = a.weight_decay;
  const ValueOut out(a.value);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    p[i] = apply_one<T>(p[i], u[i], lr, wd);
    out.Put(i, p[i]);
  }
}

}  // namespace

void adamw_update(const AdamWArgs& a) {
  if (a.param.dtype == DType::kF64) return update_impl<double>(a);
  update_impl<float>(a);
}

void adam_direction(const AdamDirectionArgs& a) {
  if (a.direction.dtype == DType::kF64) return direction_impl<double>(a);
  direction_impl<float>(a);
}

void adam_apply(const AdamApplyArgs& a) {
  if (a.param.dtype == DType::kF64) return apply_impl<double>(a);
  apply_impl<float>(a);
}

}  // namespace om::cpu
