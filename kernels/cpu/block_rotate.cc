// CPU block rotation (kernels/block_rotate.h). Per unit, two passes through a scratch t (R, K):
//   kForward:  t = Q_r · x;   x[:, b] = t[:, b] · q_bᵀ for each column block b
//   kInverse:  t = Q_rᵀ · x;  x[:, b] = t[:, b] · q_b
// Column block b of t and x is a strided (R, K_b) sub-matrix with leading dimension K.
// f32: each GEMM is one single-threaded dnnl_sgemm (inside our parallel region oneDNN runs on the
// calling thread; see kernels/cpu/matmul.cc), so a unit's result depends only on the unit.
// f64: the same two passes in plain loops, summing over k in ascending order.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <vector>

#include "kernels/block_rotate.h"

namespace om::cpu {
namespace {

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float* c, int64_t ldc, const RotationUnit& u) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  OM_CHECK(st == dnnl_success, "block_rotate: dnnl_sgemm failed (%s) on unit '%s' %s", dnnl_status2str(st), u.x.name,
           u.x.shape.ToString().c_str());
}

void rotate_f32(const RotationUnit& u, RotateDirection dir, std::vector<float>& scratch) {
  const int64_t R = u.x.dim(0), K = u.x.dim(1);
  float* x = u.x.data_as<float>();
  scratch.resize(static_cast<size_t>(R * K));
  float* t = scratch.data();
  const bool fwd = dir == RotateDirection::kForward;
  // t = Q_r · x (forward) or Q_rᵀ · x (inverse): (R, R) · (R, K).
  sgemm(fwd ? 'N' : 'T', 'N', R, K, R, u.q_r.data_as<const float>(), R, x, K, t, K, u);
  int64_t c0 = 0;
  for (const ConstTensorView& q : u.q_c) {
    const int64_t kb = q.dim(0);
    // x[:, c0:c0+kb] = t[:, c0:c0+kb] · q_bᵀ (forward) or · q_b (inverse): (R, kb) · (kb, kb).
    sgemm('N', fwd ? 'T' : 'N', R, kb, kb, t + c0, K, q.data_as<const float>(), kb, x + c0, K, u);
    c0 += kb;
  }
}

void rotate_f64(const RotationUnit& u, RotateDirection dir, std::vector<double>& scratch) {
  const int64_t R = u.x.dim(0), K = u.x.dim(1);
  double* x = u.x.data_as<double>();
  const double* qr = u.q_r.data_as<const double>();
  scratch.assign(static_cast<size_t>(R * K), 0.0);
  double* t = scratch.data();
  const bool fwd = dir == RotateDirection::kForward;
  for (int64_t i = 0; i < R; ++i) {
    for (int64_t k = 0; k < R; ++k) {
      const double a = fwd ? qr[i * R + k] : qr[k * R + i];
      for (int64_t j = 0; j < K; ++j) t[i * K + j] += a * x[k * K + j];
    }
  }
  int64_t c0 = 0;
  for (const ConstTensorView& qv : u.q_c) {
    const int64_t kb = qv.dim(0);
    const double* q = qv.data_as<const double>();
    for (int64_t i = 0; i < R; ++i) {
      for (int64_t j = 0; j < kb; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k < kb; ++k) acc += t[i * K + c0 + k] * (fwd ? q[j * kb + k] : q[k * kb + j]);
        x[i * K + c0 + j] = acc;
      }
    }
    c0 += kb;
  }
}

}  // namespace

void block_rotate(std::span<const RotationUnit> units, RotateDirection direction) {
  const bool f64 = units.front().x.dtype == DType::kF64;
  const int64_t n = static_cast<int64_t>(units.size());
  // One thread per unit (dynamic: units differ in size by orders of magnitude). Which thread rotates
  // a unit does not change its result.
#pragma omp parallel
  {
    omp_set_num_threads(1);
    std::vector<float> s32;
    std::vector<double> s64;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
      if (f64) {
        rotate_f64(units[i], direction, s64);
      } else {
        rotate_f32(units[i], direction, s32);
      }
    }
  }
}

}  // namespace om::cpu
