// CPU reference for SwiGLU (kernels/swiglu.h), templated on the float type. Element-wise in T.
#include <cmath>

#include "kernels/swiglu.h"

namespace om::cpu {
namespace {

// sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x), both without overflow or cancellation: exp is only
// taken of -|x| <= 0, so it lies in (0, 1], and 1 - sigmoid(x) is never formed by subtraction (it
// would lose every digit for large x, which the derivative below needs).
template <typename T>
inline void sigmoid_pair(T x, T& sig, T& sig_neg) {
  const T e = std::exp(-std::fabs(x));
  const T inv = T(1) / (T(1) + e);
  sig = x >= T(0) ? inv : e * inv;
  sig_neg = x >= T(0) ? e * inv : inv;
}

template <typename T>
void forward_impl(const SwigluForwardArgs& a) {
  const int64_t N = a.gate_up.dim(0), F = a.gate_up.dim(1) / 2;
  const T* gu = a.gate_up.data_as<const T>();
  T* y = a.out.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* g = gu + n * 2 * F;
    const T* u = g + F;
    T* yr = y + n * F;
    for (int64_t f = 0; f < F; ++f) {
      T s, sn;
      sigmoid_pair(g[f], s, sn);
      yr[f] = g[f] * s * u[f];
    }
  }
}

// d out / d g = u * silu'(g),  silu'(g) = s * (1 + g * (1 - s)) with s = sigmoid(g);  d out / d u = silu(g).
template <typename T>
void backward_impl(const SwigluBackwardArgs& a) {
  const int64_t N = a.gate_up.dim(0), F = a.gate_up.dim(1) / 2;
  const T* gu = a.gate_up.data_as<const T>();
  const T* dy = a.dout.data_as<const T>();
  T* dgu = a.dgate_up.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* g = gu + n * 2 * F;
    const T* u = g + F;
    const T* dyr = dy + n * F;
    T* dg = dgu + n * 2 * F;
    T* du = dg + F;
    for (int64_t f = 0; f < F; ++f) {
      T s, sn;
      sigmoid_pair(g[f], s, sn);
      dg[f] = dyr[f] * u[f] * s * (T(1) + g[f] * sn);
      du[f] = dyr[f] * g[f] * s;
    }
  }
}

}  // namespace

void swiglu_forward(const SwigluForwardArgs& a) {
  if (a.gate_up.dtype == DType::kF64) return forward_impl<double>(a);
  forward_impl<float>(a);
}

void swiglu_backward(const SwigluBackwardArgs& a) {
  if (a.gate_up.dtype == DType::kF64) return backward_impl<double>(a);
  backward_impl<float>(a);
}

}  // namespace om::cpu
