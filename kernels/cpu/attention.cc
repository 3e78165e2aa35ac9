// CPU reference for causal softmax / softmax-1 attention (kernels/attention.h). Templated on the
// storage type (f32 production, f64 gradient checks). Each (b, h) pair copies its q, k, v slices
// into double buffers and computes in double, so an f32 call rounds only when it stores results.
// OpenMP runs over (b, h) pairs: a pair owns its out/lse/probs slices and its dq/dk/dv slices, and
// every sum inside a pair runs in a fixed order, so results are bit-identical for any thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"

namespace om::cpu {
namespace {

struct Dims {
  int64_t B, T, H, D;
  int64_t qkv_row() const { return 3 * H * D; }  // elements per token of qkv / dqkv
  int64_t out_row() const { return H * D; }      // elements per token of out / dout
};

Dims dims_of(const ConstTensorView& qkv, int64_t n_heads) {
  return {qkv.dim(0), qkv.dim(1), n_heads, qkv.dim(2) / (3 * n_heads)};
}

enum class QkvPart : int { kQ = 0, kK = 1, kV = 2 };

// Offset of element (b, t, part, head h, d = 0) in a (B, T, 3*H*D) tensor.
int64_t qkv_offset(const Dims& m, int64_t b, int64_t t, QkvPart part, int64_t h) {
  return (b * m.T + t) * m.qkv_row() + static_cast<int>(part) * m.H * m.D + h * m.D;
}

// Head h's q, k or v for batch row b as a row-major (T, D) double buffer.
template <typename T>
std::vector<double> head_rows(const T* qkv, const Dims& m, int64_t b, int64_t h, QkvPart part) {
  std::vector<double> x(static_cast<size_t>(m.T * m.D));
  for (int64_t t = 0; t < m.T; ++t) {
    const T* src = qkv + qkv_offset(m, b, t, part, h);
    for (int64_t d = 0; d < m.D; ++d) x[t * m.D + d] = src[d];
  }
  return x;
}

// a · b over d in kDotLanes interleaved partial sums (lane r takes d = r, r + kDotLanes, ...) that
// are combined in a fixed tree. A single running sum cannot be vectorised without reassociating;
// the lanes can, and the summation order stays fixed in the source, whatever the thread count.
inline constexpr int kDotLanes = 4;  // the combine below is written for 4
double dot(const double* a, const double* b, int64_t D) {
  double s[kDotLanes] = {};
  int64_t d = 0;
  for (; d + kDotLanes <= D; d += kDotLanes)
    for (int r = 0; r < kDotLanes; ++r) s[r] += a[d + r] * b[d + r];
  for (; d < D; ++d) s[0] += a[d] * b[d];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// out[j] = a · b_j for keys j in [0, i]; b is (T, D) row-major.
void causal_dots(const double* a, const double* b, int64_t i, const Dims& m, double* out) {
  for (int64_t j = 0; j <= i; ++j) out[j] = dot(a, b + j * m.D, m.D);
}

template <typename T>
void forward_impl(const AttentionForwardArgs& a) {
  const Dims m = dims_of(a.qkv, a.n_heads);
  const T* qkv = a.qkv.data_as<const T>();
  T* out = a.out.data_as<T>();
  T* lse = a.lse.data_as<T>();
  T* probs = a.probs.empty() ? nullptr : a.probs.data_as<T>();
  const double scale = 1.0 / std::sqrt(static_cast<double>(m.D));
  const bool plus_one = a.kind == AttentionKind::kSoftmax1;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < m.B * m.H; ++bh) {
    const int64_t b = bh / m.H, h = bh % m.H;
    const std::vector<double> q = head_rows(qkv, m, b, h, QkvPart::kQ);
    const std::vector<double> k = head_rows(qkv, m, b, h, QkvPart::kK);
    const std::vector<double> v = head_rows(qkv, m, b, h, QkvPart::kV);
    std::vector<double> e(static_cast<size_t>(m.T)), acc(static_cast<size_t>(m.D));
    for (int64_t i = 0; i < m.T; ++i) {
      causal_dots(q.data() + i * m.D, k.data(), i, m, e.data());
      // Shift by m0 = max_j s_ij, and for softmax-1 by max(0, max_j s_ij): the "+1" is exp(0 - m0)
      // in shifted units. Seeding the sum with exp(-m0), not a literal 1, is what makes large logits
      // come out right (PAPER.md), and m0 >= 0 keeps exp(-m0) <= 1 so nothing overflows.
      double m0 = plus_one ? 0.0 : -INFINITY;
      for (int64_t j = 0; j <= i; ++j) {
        e[j] *= scale;
        m0 = std::max(m0, e[j]);
      }
      double sum = plus_one ? std::exp(-m0) : 0.0;
      for (int64_t j = 0; j <= i; ++j) {
        e[j] = std::exp(e[j] - m0);
        sum += e[j];
      }
      lse[bh * m.T + i] = static_cast<T>(m0 + std::log(sum));
      T* prow = probs ? probs + (bh * m.T + i) * m.T : nullptr;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const double p = e[j] / sum;
        if (prow) prow[j] = static_cast<T>(p);
        const double* vj = v.data() + j * m.D;
        for (int64_t d = 0; d < m.D; ++d) acc[d] += p * vj[d];
      }
      if (prow) std::fill(prow + i + 1, prow + m.T, T(0));
      T* orow = out + (b * m.T + i) * m.out_row() + h * m.D;
      for (int64_t d = 0; d < m.D; ++d) orow[d] = static_cast<T>(acc[d]);
    }
  }
}

// With p_ij = exp(s_ij - lse_i) recomputed from q, k and the saved lse, for j <= i:
//   dv_j  += p_ij dout_i            dp_ij = dout_i · v_j
//   ds_ij  = p_ij (dp_ij - delta_i),  delta_i = sum_j p_ij dp_ij = dout_i · out_i
//   dq_i   = scale sum_j ds_ij k_j   dk_j += scale ds_ij q_i
// The Jacobian of softmax-1 has the same form as softmax's (p_i δ_ik - p_i p_k), so only p differs,
// and lse already carries the "+1".
template <typename T>
void backward_impl(const AttentionBackwardArgs& a) {
  const Dims m = dims_of(a.qkv, a.n_heads);
  const T* qkv = a.qkv.data_as<const T>();
  const T* dout = a.dout.data_as<const T>();
  const T* out = a.out.data_as<const T>();
  const T* lse = a.lse.data_as<const T>();
  T* dqkv = a.dqkv.data_as<T>();
  const double scale = 1.0 / std::sqrt(static_cast<double>(m.D));
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < m.B * m.H; ++bh) {
    const int64_t b = bh / m.H, h = bh % m.H;
    const std::vector<double> q = head_rows(qkv, m, b, h, QkvPart::kQ);
    const std::vector<double> k = head_rows(qkv, m, b, h, QkvPart::kK);
    const std::vector<double> v = head_rows(qkv, m, b, h, QkvPart::kV);
    // dk and dv collect contributions from every later query; they are stored once at the end.
    std::vector<double> dk(static_cast<size_t>(m.T * m.D), 0.0), dv(dk.size(), 0.0);
    std::vector<double> s(static_cast<size_t>(m.T)), dp(s.size()), go(static_cast<size_t>(m.D)), dq(go.size());
    for (int64_t i = 0; i < m.T; ++i) {
      const double* qi = q.data() + i * m.D;
      const T* grow = dout + (b * m.T + i) * m.out_row() + h * m.D;
      const T* orow = out + (b * m.T + i) * m.out_row() + h * m.D;
      double delta = 0.0;
      for (int64_t d = 0; d < m.D; ++d) {
        go[d] = grow[d];
        delta += go[d] * static_cast<double>(orow[d]);
      }
      causal_dots(qi, k.data(), i, m, s.data());
      causal_dots(go.data(), v.data(), i, m, dp.data());
      const double lse_i = lse[bh * m.T + i];
      std::fill(dq.begin(), dq.end(), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const double p = std::exp(scale * s[j] - lse_i);
        const double g = scale * p * (dp[j] - delta);  // d loss / d (q_i · k_j)
        const double* kj = k.data() + j * m.D;
        double* dkj = dk.data() + j * m.D;
        double* dvj = dv.data() + j * m.D;
        for (int64_t d = 0; d < m.D; ++d) {
          dq[d] += g * kj[d];
          dkj[d] += g * qi[d];
          dvj[d] += p * go[d];
        }
      }
      T* dqi = dqkv + qkv_offset(m, b, i, QkvPart::kQ, h);
      for (int64_t d = 0; d < m.D; ++d) dqi[d] = static_cast<T>(dq[d]);
    }
    for (int64_t t = 0; t < m.T; ++t) {
      T* dkt = dqkv + qkv_offset(m, b, t, QkvPart::kK, h);
      T* dvt = dqkv + qkv_offset(m, b, t, QkvPart::kV, h);
      for (int64_t d = 0; d < m.D; ++d) {
        dkt[d] = static_cast<T>(dk[t * m.D + d]);
        dvt[d] = static_cast<T>(dv[t * m.D + d]);
      }
    }
  }
}

}  // namespace

void attention_forward(const AttentionForwardArgs& a) {
  if (a.qkv.dtype == DType::kF64) return forward_impl<double>(a);
  forward_impl<float>(a);
}

void attention_backward(const AttentionBackwardArgs& a) {
  OM_CHECK(a.rope_theta == 0.0f, "cpu::attention_backward: rope_theta = %g: RoPE's transpose is applied by "
           "om::attention_backward, call that", static_cast<double>(a.rope_theta));
  if (a.qkv.dtype == DType::kF64) return backward_impl<double>(a);
  backward_impl<float>(a);
}

}  // namespace om::cpu
