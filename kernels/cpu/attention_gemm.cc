// Per-head GEMM variant of CPU attention (kernels/attention.h), f32 only: the production CPU path.
//
// Per (b, h) pair, with q, k, v, dout, out read in place through sgemm's leading dimensions (a head's
// rows are D contiguous floats, 3*H*D apart in qkv; sgemm packs its panels itself, so gathering them
// into (T, D) buffers first would only add a copy):
//   forward:  S = scale q kᵀ, P = causal row softmax / softmax-1 of S, lse, out = P v
//   backward: P = exp(S - lse) recomputed, dP = dout vᵀ, dv = Pᵀ dout, dS = P ⊙ (dP - delta) with
//             delta_i = dout_i · out_i, dq = scale dS k, dk = scale dSᵀ q
// The matrix products go through dnnl_sgemm (f32 accumulation); the row-wise softmax runs in f32 with
// the reference's stable formulation (shift m = max s, or max(0, max s) for softmax-1, whose "+1" is
// exp(-m)), row sums, lse and delta in double.
//
// Causality by blocks: rows are cut into blocks of kBlock queries, and a row block [i0, i1) multiplies
// only against keys [0, i1), so the products cover the block lower triangle (about 5/8 of T x T at
// T = 4 kBlock) instead of all of it. Inside a diagonal block the entries above the diagonal are
// computed and then overwritten with exact zeros, so they add nothing to the sums that read them.
//
// Determinism: a pair's results come from one thread; every dnnl_sgemm call runs single-threaded
// (inside our OpenMP region, as in cpu/matmul.cc) with shapes fixed by (T, D, kBlock), and every row
// loop sums in a fixed order. So the results are bit-identical for any OpenMP thread count.
// Scratch: one or two (T, T) f32 matrices per thread (256 KiB each at T = 256).
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/cpu/exp_f32.h"

// The row loops below call the shared f32 exp (kernels/cpu/exp_f32.h: branch-free, within 1.5 ulp,
// 0 below ln(FLT_MIN)) and are multi-versioned with OM_ROW_LOOP_CLONES (AVX-512 / AVX2 + FMA /
// baseline, picked once at load time). The clones' exps differ in last bits (FMA contraction): like
// oneDNN's sgemm, results are reproducible on one machine for any thread count, not across
// instruction sets.

namespace om::cpu {
namespace {

// Queries per row block (and keys per column block in the backward's transposed products). Smaller
// blocks skip more of the upper triangle but make smaller, less efficient sgemm calls. Measured at
// B=8 T=256 H=4 D=64, one thread: 32, 48 and 64 within noise of each other, 96 ~5 %, 128 ~12 % and
// one T x T block ~30 % slower (bench/results/2026-11-28_cpu-2core_attention.md).
constexpr int64_t kBlock = 64;

// Row sums and dot products run in kLanes interleaved double partial sums (lane r takes j = r,
// r + kLanes, ...) added in lane order at the end: the order is fixed in the source, whatever the
// vector width, and the lanes vectorise (a single running sum is a serial chain of dependent adds).
constexpr int kLanes = 16;

// max(init, x[0], ..., x[n-1]). Exact in any order, so the reduction may be vectorised (written as
// m > x ? m : x, which GCC maps to maxps; a NaN score makes its row NaN through exp in any case).
OM_ROW_LOOP_CLONES float row_max(const float* x, int64_t n, float init) {
  float m = init;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = m > x[j] ? m : x[j];
  return m;
}

// x[j] = exp(x[j] - shift) for j < n; returns the sum of the new x[j] in double.
OM_ROW_LOOP_CLONES double exp_shifted_sum(float* x, int64_t n, float shift) {
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int r = 0; r < kLanes; ++r) {
      x[j + r] = exp_f32(x[j + r] - shift);
      lane[r] += x[j + r];
    }
  for (; j < n; ++j) {
    x[j] = exp_f32(x[j] - shift);
    lane[0] += x[j];
  }
  double sum = 0.0;
  for (int r = 0; r < kLanes; ++r) sum += lane[r];
  return sum;
}

// a · b in double, in kLanes interleaved partial sums.
OM_ROW_LOOP_CLONES double dot_f64(const float* a, const float* b, int64_t n) {
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int r = 0; r < kLanes; ++r) lane[r] += static_cast<double>(a[j + r]) * static_cast<double>(b[j + r]);
  for (; j < n; ++j) lane[0] += static_cast<double>(a[j]) * static_cast<double>(b[j]);
  double sum = 0.0;
  for (int r = 0; r < kLanes; ++r) sum += lane[r];
  return sum;
}

OM_ROW_LOOP_CLONES void scale_row(float* x, int64_t n, float c) {
  for (int64_t j = 0; j < n; ++j) x[j] *= c;
}

// The backward's row update for j < n: p[j] = exp(p[j] - lse) (p enters holding the scores s) and
// g[j] = p[j] (g[j] - delta) (g enters holding dP).
OM_ROW_LOOP_CLONES void softmax_grad_row(float* p, float* g, int64_t n, float lse, float delta) {
  for (int64_t j = 0; j < n; ++j) {
    p[j] = exp_f32(p[j] - lse);
    g[j] = p[j] * (g[j] - delta);
  }
}

// Row-major single-threaded sgemm, c = alpha op(a) op(b) (beta = 0: written). Called only inside our
// parallel region, after omp_set_num_threads(1) (see cpu/matmul.cc).
void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc, const char* op) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, 0.0f, c, ldc);
  OM_CHECK(st == dnnl_success, "%s: dnnl_sgemm failed (%s) on %c%c M=%ld N=%ld K=%ld", op, dnnl_status2str(st), ta, tb,
           static_cast<long>(M), static_cast<long>(N), static_cast<long>(K));
}

// A (b, h) pair's slices: row t of a head's q (k, v) is q + t * ld_qkv, of its out / dout o + t * ld_out.
struct Head {
  int64_t T, D, ld_qkv, ld_out;
  int64_t qkv_off, out_off, row_off;  // offsets of (b, t=0, head h) in qkv/dqkv, out/dout, and of row b*H+h in lse
  int64_t k_off, v_off;               // of the head's k and v from its q: H*D and 2*H*D
};

Head head_of(const ConstTensorView& qkv, int64_t H, int64_t bh) {
  const int64_t T = qkv.dim(1), D = qkv.dim(2) / (3 * H), b = bh / H, h = bh % H;
  return Head{T, D, 3 * H * D, H * D, b * T * 3 * H * D + h * D, b * T * H * D + h * D, bh * T, H * D, 2 * H * D};
}

int64_t pairs_of(const ConstTensorView& qkv, int64_t H) { return qkv.dim(0) * H; }

constexpr const char* kForwardOp = "attention_forward_gemm";
constexpr const char* kBackwardOp = "attention_backward_gemm";

// One pair's forward. p: the pair's (T, T) probability matrix (the probs output or scratch).
void forward_pair(const Head& m, const float* q, float* out, float* lse, float* p, float scale, AttentionKind kind) {
  const float* k = q + m.k_off;
  const float* v = q + m.v_off;
  for (int64_t i0 = 0; i0 < m.T; i0 += kBlock) {
    const int64_t i1 = std::min(m.T, i0 + kBlock);
    sgemm('N', 'T', i1 - i0, i1, m.D, scale, q + i0 * m.ld_qkv, m.ld_qkv, k, m.ld_qkv, p + i0 * m.T, m.T, kForwardOp);
    for (int64_t i = i0; i < i1; ++i) {
      float* row = p + i * m.T;
      // Shift by mx = max_j s_ij (softmax-1: max(0, max_j s_ij)); the sum's "+1" is exp(-mx) in shifted
      // units, so large logits come out right and nothing overflows (PAPER.md, cpu/attention.cc).
      const float mx = row_max(row, i + 1, kind == AttentionKind::kSoftmax1 ? 0.0f : -INFINITY);
      double sum = exp_shifted_sum(row, i + 1, mx);
      if (kind == AttentionKind::kSoftmax1) sum += std::exp(-static_cast<double>(mx));
      lse[i] = static_cast<float>(static_cast<double>(mx) + std::log(sum));
      scale_row(row, i + 1, static_cast<float>(1.0 / sum));
      std::fill(row + i + 1, row + m.T, 0.0f);  // P v reads up to column i1, the probs output all of them
    }
    sgemm('N', 'N', i1 - i0, m.D, i1, 1.0f, p + i0 * m.T, m.T, v, m.ld_qkv, out + i0 * m.ld_out, m.ld_out, kForwardOp);
  }
}

// One pair's backward. p, g: (T, T) scratch for P and for dP, then dS.
void backward_pair(const Head& m, const float* q, const float* dout, const float* out, const float* lse, float* dq,
                   float* p, float* g, float scale) {
  const float* k = q + m.k_off;
  const float* v = q + m.v_off;
  for (int64_t i0 = 0; i0 < m.T; i0 += kBlock) {
    const int64_t i1 = std::min(m.T, i0 + kBlock);
    sgemm('N', 'T', i1 - i0, i1, m.D, scale, q + i0 * m.ld_qkv, m.ld_qkv, k, m.ld_qkv, p + i0 * m.T, m.T, kBackwardOp);
    sgemm('N', 'T', i1 - i0, i1, m.D, 1.0f, dout + i0 * m.ld_out, m.ld_out, v, m.ld_qkv, g + i0 * m.T, m.T,
          kBackwardOp);
    for (int64_t i = i0; i < i1; ++i) {
      // delta_i = sum_j p_ij dp_ij = dout_i · out_i, D terms in double.
      const double delta = dot_f64(dout + i * m.ld_out, out + i * m.ld_out, m.D);
      softmax_grad_row(p + i * m.T, g + i * m.T, i + 1, lse[i], static_cast<float>(delta));
      std::fill(p + i * m.T + i + 1, p + i * m.T + i1, 0.0f);  // the products below read up to column i1
      std::fill(g + i * m.T + i + 1, g + i * m.T + i1, 0.0f);
    }
    sgemm('N', 'N', i1 - i0, m.D, i1, scale, g + i0 * m.T, m.T, k, m.ld_qkv, dq + i0 * m.ld_qkv, m.ld_qkv, kBackwardOp);
  }
  // Key block [j0, j1) is seen by queries [j0, T): dv = Pᵀ dout and dk = scale dSᵀ q over those rows,
  // all of which the row blocks above filled (zeros above the diagonal).
  float* dk = dq + m.k_off;
  float* dv = dq + m.v_off;
  for (int64_t j0 = 0; j0 < m.T; j0 += kBlock) {
    const int64_t j1 = std::min(m.T, j0 + kBlock), rows = m.T - j0;
    sgemm('T', 'N', j1 - j0, m.D, rows, 1.0f, p + j0 * m.T + j0, m.T, dout + j0 * m.ld_out, m.ld_out,
          dv + j0 * m.ld_qkv, m.ld_qkv, kBackwardOp);
    sgemm('T', 'N', j1 - j0, m.D, rows, scale, g + j0 * m.T + j0, m.T, q + j0 * m.ld_qkv, m.ld_qkv, dk + j0 * m.ld_qkv,
          m.ld_qkv, kBackwardOp);
  }
}

}  // namespace

void attention_forward_gemm(const AttentionForwardArgs& a) {
  OM_CHECK(a.qkv.dtype == DType::kF32, "%s: '%s' must be f32, got %s", kForwardOp, a.qkv.name,
           std::string(dtype_name(a.qkv.dtype)).c_str());
  const float* qkv = a.qkv.data_as<const float>();
  float* out = a.out.data_as<float>();
  float* lse = a.lse.data_as<float>();
  float* probs = a.probs.empty() ? nullptr : a.probs.data_as<float>();
  const int64_t pairs = pairs_of(a.qkv, a.n_heads);
#pragma omp parallel
  {
    omp_set_num_threads(1);  // this thread's sgemm calls run single-threaded (cpu/matmul.cc)
    std::vector<float> scratch;
    // A pair's output does not depend on which thread computes it: hand pairs out dynamically.
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < pairs; ++bh) {
      const Head m = head_of(a.qkv, a.n_heads, bh);
      float* p = probs ? probs + bh * m.T * m.T : nullptr;
      if (!p) {
        scratch.resize(static_cast<size_t>(m.T * m.T));
        p = scratch.data();
      }
      const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m.D)));
      forward_pair(m, qkv + m.qkv_off, out + m.out_off, lse + m.row_off, p, scale, a.kind);
    }
  }
}

void attention_backward_gemm(const AttentionBackwardArgs& a) {
  OM_CHECK(a.rope_theta == 0.0f, "%s: rope_theta = %g: RoPE's transpose is applied by om::attention_backward, "
           "call that", kBackwardOp, static_cast<double>(a.rope_theta));
  OM_CHECK(a.qkv.dtype == DType::kF32, "%s: '%s' must be f32, got %s", kBackwardOp, a.qkv.name,
           std::string(dtype_name(a.qkv.dtype)).c_str());
  const float* qkv = a.qkv.data_as<const float>();
  const float* dout = a.dout.data_as<const float>();
  const float* out = a.out.data_as<const float>();
  const float* lse = a.lse.data_as<const float>();
  float* dqkv = a.dqkv.data_as<float>();
  const int64_t pairs = pairs_of(a.qkv, a.n_heads);
#pragma omp parallel
  {
    omp_set_num_threads(1);
    std::vector<float> p, g;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < pairs; ++bh) {
      const Head m = head_of(a.qkv, a.n_heads, bh);
      p.resize(static_cast<size_t>(m.T * m.T));
      g.resize(p.size());
      const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(m.D)));
      backward_pair(m, qkv + m.qkv_off, dout + m.out_off, out + m.out_off, lse + m.row_off, dqkv + m.qkv_off, p.data(),
                    g.data(), scale);
    }
  }
}

}  // namespace om::cpu
