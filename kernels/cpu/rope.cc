// CPU reference for rotary position embedding (kernels/rope.h), templated on the float type.
#include <cmath>
#include <vector>

#include "kernels/rope.h"

namespace om::cpu {
namespace {

// The forward rotates by +angle; the backward by -angle (R(t)^T = R(-t)).
enum class RotationSign : int8_t { kForward = 1, kTranspose = -1 };

// cos and sin of t * freq_i for every (t, i), shape (T, D/2), in double. The angle is formed in double
// so that late positions (t up to thousands times freq_0 = 1) keep full precision before the rotation;
// the table is computed once per call and shared by every batch row and head.
struct RotationTable {
  std::vector<double> cos, sin;
  RotationTable(int64_t T, int64_t D, double theta) {
    const int64_t half = D / 2;
    std::vector<double> freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
      freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
    cos.resize(static_cast<size_t>(T * half));
    sin.resize(static_cast<size_t>(T * half));
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(t) * freq[i];
        cos[t * half + i] = std::cos(angle);
        sin[t * half + i] = std::sin(angle);
      }
    }
  }
};

template <typename T>
void rotate_impl(const RopeArgs& a, RotationSign sign) {
  const int64_t B = a.x.dim(0), Tn = a.x.dim(1), Hx = a.x.dim(2), D = a.x.dim(3);
  const int64_t half = D / 2;
  const RotationTable table(Tn, D, static_cast<double>(a.theta));
  const double s = static_cast<double>(static_cast<int8_t>(sign));
  T* x = a.x.data_as<T>();
  // Every (b, t) row is independent; each element is written once from double arithmetic, so the
  // result does not depend on the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * Tn; ++bt) {
    const int64_t t = bt % Tn;
    const double* ct = table.cos.data() + t * half;
    const double* st = table.sin.data() + t * half;
    for (int64_t h = 0; h < a.n_rot_heads; ++h) {
      T* xh = x + (bt * Hx + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        const double x0 = xh[i], x1 = xh[i + half];
        const double sn = s * st[i];
        xh[i] = static_cast<T>(x0 * ct[i] - x1 * sn);
        xh[i + half] = static_cast<T>(x1 * ct[i] + x0 * sn);
      }
    }
  }
}

}  // namespace

void rope_forward(const RopeArgs& a) {
  if (a.x.dtype == DType::kF64) return rotate_impl<double>(a, RotationSign::kForward);
  rotate_impl<float>(a, RotationSign::kForward);
}

void rope_backward(const RopeArgs& a) {
  if (a.x.dtype == DType::kF64) return rotate_impl<double>(a, RotationSign::kTranspose);
  rotate_impl<float>(a, RotationSign::kTranspose);
}

}  // namespace om::cpu
