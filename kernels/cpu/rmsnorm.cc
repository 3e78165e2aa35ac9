// CPU reference for RMSNorm / RMSNorm-S (kernels/rmsnorm.h). Templated on the float type so the
// same code runs in f32 (production) and f64 (gradient checks); sums accumulate in double.
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/opaque.h"
#include "kernels/cpu/reduce.h"
#include "kernels/rmsnorm.h"

namespace om::cpu {
namespace {

template <typename T>
void forward_impl(const RmsNormForwardArgs& a) {
  const int64_t N = a.inp.dim(0), C = a.inp.dim(1);
  const T* x = a.inp.data_as<const T>();
  const T* g = a.weight.data_as<const T>();
  T* y = a.out.data_as<T>();
  T* rstd = a.rstd.data_as<T>();
  const bool shared = a.kind == NormKind::kRmsNormS;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    double ss = 0.0;
    for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const T r = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(C) + static_cast<double>(a.eps)));
    rstd[n] = r;
    T* yr = y + n * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * r * (shared ? g[0] : g[c]);
  }
}

// With xh = x * r and gd = g * dy:
//   dx[c] = r * (gd[c] - xh[c] * mean_j(gd[j] * xh[j]))
//   dg[c] += sum_n dy[n, c] * xh[n, c]       (RMSNorm-S: dg[0] += sum_{n,c} dy * xh)
template <typename T>
void backward_impl(const RmsNormBackwardArgs& a) {
  const int64_t N = a.inp.dim(0), C = a.inp.dim(1);
  const T* x = a.inp.data_as<const T>();
  const T* dy = a.dout.data_as<const T>();
  const T* g = a.weight.data_as<const T>();
  const T* rstd = a.rstd.data_as<const T>();
  T* dx = a.dinp.data_as<T>();
  const bool shared = a.kind == NormKind::kRmsNormS;
  const bool accumulate = a.dinp_mode == WriteMode::kAccumulate;
  const int64_t G = shared ? 1 : C;
  const int64_t nblocks = reduce_block_count(N);
  std::vector<double> partial(static_cast<size_t>(nblocks * G), 0.0);  // per row block, per gain
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    double* pg = partial.data() + blk * G;
    for (int64_t n = blk * kReduceBlockRows; n < std::min(N, (blk + 1) * kReduceBlockRows); ++n) {
      const T* xr = x + n * C;
      const T* dyr = dy + n * C;
      const double r = rstd[n];
      double dot = 0.0;  // sum_j gd[j] * xh[j]
      for (int64_t c = 0; c < C; ++c) {
        const double xh = xr[c] * r;
        dot += static_cast<double>(dyr[c]) * (shared ? g[0] : g[c]) * xh;
        pg[shared ? 0 : c] += static_cast<double>(dyr[c]) * xh;
      }
      const double mean_dot = dot / static_cast<double>(C);
      T* dxr = dx + n * C;
      for (int64_t c = 0; c < C; ++c) {
        const double gd = static_cast<double>(dyr[c]) * (shared ? g[0] : g[c]);
        T v = static_cast<T>(r * (gd - xr[c] * r * mean_dot));
        // With kAccumulate, v rounded to T and then added, as residual_forward adds it. For T = f32 the
        // conversion rounds it; for f64 nothing would, and with FMA (-march=native) g++ fused r·(…) into the
        // add: 1 ulp from the two-pass bits (kernels_rmsnorm_test, caught in a -march=native build).
        if constexpr (std::is_same_v<T, double>) v = opaque(v);
        dxr[c] = accumulate ? static_cast<T>(dxr[c] + v) : v;  // residual_forward's add, in T
      }
    }
  }
  T* dg = a.dweight.data_as<T>();
  for (int64_t j = 0; j < G; ++j) {
    double s = 0.0;
    for (int64_t blk = 0; blk < nblocks; ++blk) s += partial[blk * G + j];
    dg[j] += static_cast<T>(s);
  }
}

}  // namespace

void rmsnorm_forward(const RmsNormForwardArgs& a) {
  if (a.inp.dtype == DType::kF64) return forward_impl<double>(a);
  forward_impl<float>(a);
}

void rmsnorm_backward(const RmsNormBackwardArgs& a) {
  if (a.inp.dtype == DType::kF64) return backward_impl<double>(a);
  backward_impl<float>(a);
}

}  // namespace om::cpu
