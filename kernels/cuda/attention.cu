// CUDA causal attention with softmax or softmax-1 (kernels/attention.h): bf16 or f32 qkv, out, dout
// and dqkv (one dtype per call), f32 lse and probs, f32 arithmetic throughout. A first, correct and
// deterministic version: one warp per row, lane l holding elements d = l, l + 32, ... of a head
// vector (D <= 256: at most 8 per lane), one warp sum per dot product. No (T, T) matrix is stored
// except the optional probs.
//   forward   attention_forward_warp_per_query: online softmax over keys j <= i, then out_i and
//             lse_i; probs (if requested) in a second pass over the same keys, exp(s_ij - lse_i).
//   backward  attention_backward_delta: delta_i = dout_i · out_i into a (B, H, T) f32 scratch;
//             attention_backward_dq_warp_per_query:  dq_i = scale sum_{j<=i} ds_ij k_j;
//             attention_backward_dkdv_warp_per_key:  dk_j = scale sum_{i>=j} ds_ij q_i,
//                                                     dv_j = sum_{i>=j} p_ij dout_i;
//             with p_ij = exp(s_ij - lse_i) recomputed and ds_ij = p_ij (dout_i · v_j - delta_i);
//             with rope_theta, rope_backward on dq and dk after them (attention_mma.cu fuses it).
// Deterministic: every output element is written by exactly one warp, which sums in a fixed order
// (keys or queries ascending; warp_sum is a fixed butterfly); no atomics. Every kernel computes s_ij
// with the same code (warp_dot(q_i, k_j) * scale), so all of them see the same s_ij bits.
// Arguments were validated by kernels/attention.cc.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "core/buffer.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_mma.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/rope.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps = 4 rows per block
constexpr int kWarpsPerBlock = kThreads / kWarpSize;
constexpr int kMaxHeadDim = 8 * kWarpSize;  // the widest lane split below: 8 elements per lane

// Batch, time, heads and head dim. A row of the (B, H, T) layout of lse and delta, and the warp
// that owns it, is r = (b * H + h) * T + t.
struct HeadDims {
  int64_t B, T;
  int H, D;
  __host__ __device__ int64_t rows() const { return B * H * T; }
};

enum class QkvPart : int { kQ = 0, kK = 1, kV = 2 };

// Offset of element (b, t, part, head h, d = 0) of a (B, T, 3*H*D) tensor (qkv, dqkv).
__device__ __forceinline__ int64_t qkv_offset(const HeadDims& g, int64_t b, int64_t t, QkvPart part, int h) {
  return (b * g.T + t) * (3 * int64_t{g.H} * g.D) + static_cast<int64_t>(part) * g.H * g.D + int64_t{h} * g.D;
}

// Offset of element (b, t, head h, d = 0) of a (B, T, H*D) tensor (out, dout).
__device__ __forceinline__ int64_t out_offset(const HeadDims& g, int64_t b, int64_t t, int h) {
  return (b * g.T + t) * (int64_t{g.H} * g.D) + int64_t{h} * g.D;
}

// This warp's row r over (b, h, t); r >= rows() for the spare warps of the last block.
__device__ __forceinline__ int64_t warp_row() {
  return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
}

// The lane's share of a D-vector: x[r] = row[lane + 32 r], and 0 past D, so the padding adds
// nothing to a dot product or an accumulator.
template <int kPerLane, typename Act>
__device__ __forceinline__ void load_lanes(float (&x)[kPerLane], const Act* row, int D, int lane) {
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const int d = lane + r * kWarpSize;
    x[r] = d < D ? load_f32(row + d) : 0.0f;
  }
}

// row[d] = x[r] * scale for the lane's elements d = lane + 32 r < D.
template <int kPerLane, typename Act>
__device__ __forceinline__ void store_lanes(Act* row, const float (&x)[kPerLane], float scale, int D, int lane) {
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const int d = lane + r * kWarpSize;
    if (d < D) store_f32(row + d, x[r] * scale);
  }
}

// a · b over the warp: each lane adds its kPerLane products in r order, then warp_sum's butterfly.
// Every lane returns the same bits. REQUIRES: all 32 lanes active.
template <int kPerLane>
__device__ __forceinline__ float warp_dot(const float (&a)[kPerLane], const float (&b)[kPerLane]) {
  float s = 0.0f;
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) s += a[r] * b[r];
  return warp_sum(s);
}

// One warp per query row (b, h, i). The online softmax keeps a running max m, a running denominator
// l and a running sum acc = sum_j exp(s_ij - m) v_j, rescaling l and acc by exp(m_old - m_new) when
// the max grows, so each key is read once and no row of scores is stored. softmax: m = -inf and
// l = 0 at the start (the first key rescales by exp(-inf) = 0). softmax-1: m = 0 and l = 1, the
// stable form m = max(0, max_j s_ij) with the "+1" carried as exp(0 - m) (kernels/attention.h); it
// never overflows, as m >= 0 keeps exp(-m) <= 1. At the end out_i = acc / l, lse_i = m + log l.
template <typename Act, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    attention_forward_warp_per_query(Act* out, float* lse, const Act* qkv, HeadDims g, float scale, bool plus_one) {
  const int64_t row = warp_row();
  if (row >= g.rows()) return;  // the whole warp leaves together, so warp_dot sees 32 active lanes
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = row % g.T, bh = row / g.T, b = bh / g.H;
  const int h = static_cast<int>(bh % g.H);
  const int64_t stride = 3 * int64_t{g.H} * g.D;  // between consecutive tokens of qkv
  const Act* k0 = qkv + qkv_offset(g, b, 0, QkvPart::kK, h);
  const Act* v0 = qkv + qkv_offset(g, b, 0, QkvPart::kV, h);
  float q[kPerLane], kj[kPerLane], vj[kPerLane], acc[kPerLane];
  load_lanes(q, qkv + qkv_offset(g, b, i, QkvPart::kQ, h), g.D, lane);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) acc[r] = 0.0f;
  float m = plus_one ? 0.0f : -INFINITY;
  float l = plus_one ? 1.0f : 0.0f;
  for (int64_t j = 0; j <= i; ++j) {
    load_lanes(kj, k0 + j * stride, g.D, lane);
    const float s = warp_dot(q, kj) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 1 while the max holds
    const float p = expf(s - m_new);
    l = l * corr + p;
    load_lanes(vj, v0 + j * stride, g.D, lane);
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) acc[r] = acc[r] * corr + p * vj[r];
    m = m_new;
  }
  if (lane == 0) lse[row] = m + logf(l);
  Act* o = out + out_offset(g, b, i, h);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) {
    const int d = lane + r * kWarpSize;
    if (d < g.D) store_f32(o + d, acc[r] / l);
  }
}

// probs, when requested, after either forward (this file's or attention_mma.cu's): one warp per query
// row (b, h, i), p_ij = exp(s_ij - lse_i) from the saved lse, the same p_ij the backward uses; 0 above
// the diagonal.
template <typename Act, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    attention_probs_warp_per_query(float* probs, const float* lse, const Act* qkv, HeadDims g, float scale) {
  const int64_t row = warp_row();
  if (row >= g.rows()) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = row % g.T, bh = row / g.T, b = bh / g.H;
  const int h = static_cast<int>(bh % g.H);
  const int64_t stride = 3 * int64_t{g.H} * g.D;
  const Act* k0 = qkv + qkv_offset(g, b, 0, QkvPart::kK, h);
  float q[kPerLane], kj[kPerLane];
  load_lanes(q, qkv + qkv_offset(g, b, i, QkvPart::kQ, h), g.D, lane);
  const float lse_i = lse[row];
  float* prow = probs + row * g.T;
  for (int64_t j = 0; j <= i; ++j) {
    load_lanes(kj, k0 + j * stride, g.D, lane);
    const float s = warp_dot(q, kj) * scale;
    if (lane == 0) prow[j] = expf(s - lse_i);
  }
  for (int64_t j = i + 1 + lane; j < g.T; j += kWarpSize) prow[j] = 0.0f;  // above the diagonal
}

// delta[r] = dout_i · out_i for row r = (b, h, i): sum_j p_ij dp_ij, the softmax Jacobian's
// row term, computed once per row for both backward kernels.
template <typename Act, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    attention_backward_delta(float* delta, const Act* dout, const Act* out, HeadDims g) {
  const int64_t row = warp_row();
  if (row >= g.rows()) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = row % g.T, bh = row / g.T, b = bh / g.H;
  const int h = static_cast<int>(bh % g.H);
  float go[kPerLane], o[kPerLane];
  load_lanes(go, dout + out_offset(g, b, i, h), g.D, lane);
  load_lanes(o, out + out_offset(g, b, i, h), g.D, lane);
  const float d = warp_dot(go, o);
  if (lane == 0) delta[row] = d;
}

// One warp per query row (b, h, i): dq_i = scale sum_{j<=i} ds_ij k_j, keys ascending, with
// p_ij = exp(s_ij - lse_i), dp_ij = dout_i · v_j and ds_ij = p_ij (dp_ij - delta_i). softmax-1's
// Jacobian has softmax's form (kernels/cpu/attention.cc), so the kind only enters through lse.
template <typename Act, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_warp_per_query(Act* dqkv, const Act* dout, const Act* qkv, const float* lse,
                                         const float* delta, HeadDims g, float scale) {
  const int64_t row = warp_row();
  if (row >= g.rows()) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = row % g.T, bh = row / g.T, b = bh / g.H;
  const int h = static_cast<int>(bh % g.H);
  const int64_t stride = 3 * int64_t{g.H} * g.D;
  const Act* k0 = qkv + qkv_offset(g, b, 0, QkvPart::kK, h);
  const Act* v0 = qkv + qkv_offset(g, b, 0, QkvPart::kV, h);
  float q[kPerLane], go[kPerLane], kj[kPerLane], vj[kPerLane], dq[kPerLane];
  load_lanes(q, qkv + qkv_offset(g, b, i, QkvPart::kQ, h), g.D, lane);
  load_lanes(go, dout + out_offset(g, b, i, h), g.D, lane);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) dq[r] = 0.0f;
  const float lse_i = lse[row], delta_i = delta[row];
  for (int64_t j = 0; j <= i; ++j) {
    load_lanes(kj, k0 + j * stride, g.D, lane);
    load_lanes(vj, v0 + j * stride, g.D, lane);
    const float p = expf(warp_dot(q, kj) * scale - lse_i);
    const float ds = p * (warp_dot(go, vj) - delta_i);
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) dq[r] += ds * kj[r];
  }
  store_lanes(dqkv + qkv_offset(g, b, i, QkvPart::kQ, h), dq, scale, g.D, lane);
}

// One warp per key row (b, h, j): dk_j = scale sum_{i>=j} ds_ij q_i and dv_j = sum_{i>=j} p_ij dout_i,
// queries ascending, with p and ds as in the dq kernel (the same s_ij bits). Owning the key row
// makes the sums over queries plain loops: no atomics, no partials.
template <typename Act, int kPerLane>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_warp_per_key(Act* dqkv, const Act* dout, const Act* qkv, const float* lse,
                                         const float* delta, HeadDims g, float scale) {
  const int64_t row = warp_row();
  if (row >= g.rows()) return;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t j = row % g.T, bh = row / g.T, b = bh / g.H;
  const int h = static_cast<int>(bh % g.H);
  const int64_t stride = 3 * int64_t{g.H} * g.D;
  const int64_t out_stride = int64_t{g.H} * g.D;  // between consecutive tokens of dout
  const int64_t row0 = row - j;                   // the (b, h, t = 0) row of lse and delta
  const Act* q0 = qkv + qkv_offset(g, b, 0, QkvPart::kQ, h);
  const Act* go0 = dout + out_offset(g, b, 0, h);
  float kj[kPerLane], vj[kPerLane], qi[kPerLane], go[kPerLane], dk[kPerLane], dv[kPerLane];
  load_lanes(kj, qkv + qkv_offset(g, b, j, QkvPart::kK, h), g.D, lane);
  load_lanes(vj, qkv + qkv_offset(g, b, j, QkvPart::kV, h), g.D, lane);
#pragma unroll
  for (int r = 0; r < kPerLane; ++r) dk[r] = dv[r] = 0.0f;
  for (int64_t i = j; i < g.T; ++i) {
    load_lanes(qi, q0 + i * stride, g.D, lane);
    load_lanes(go, go0 + i * out_stride, g.D, lane);
    const float p = expf(warp_dot(qi, kj) * scale - lse[row0 + i]);
    const float ds = p * (warp_dot(go, vj) - delta[row0 + i]);
#pragma unroll
    for (int r = 0; r < kPerLane; ++r) {
      dk[r] += ds * qi[r];
      dv[r] += p * go[r];
    }
  }
  store_lanes(dqkv + qkv_offset(g, b, j, QkvPart::kK, h), dk, scale, g.D, lane);
  store_lanes(dqkv + qkv_offset(g, b, j, QkvPart::kV, h), dv, 1.0f, g.D, lane);
}

HeadDims head_dims(const char* op, const ConstTensorView& qkv, int64_t n_heads) {
  const int64_t D = qkv.dim(2) / (3 * n_heads);
  OM_CHECK(D <= kMaxHeadDim, "%s (cuda): head dim D=%ld exceeds the kernel's limit of %d", op, static_cast<long>(D),
           kMaxHeadDim);
  OM_CHECK(n_heads <= (int64_t{1} << 30), "%s (cuda): n_heads=%ld exceeds the kernel's int range", op,
           static_cast<long>(n_heads));
  const HeadDims g{qkv.dim(0), qkv.dim(1), static_cast<int>(n_heads), static_cast<int>(D)};
  OM_CHECK(ceil_div(g.rows(), kWarpsPerBlock) < (int64_t{1} << 31), "%s (cuda): B*H*T=%ld rows exceed the grid", op,
           static_cast<long>(g.rows()));
  return g;
}

// 1 / sqrt(D) rounded once to f32 (computed in double), the scale of every s_ij.
float softmax_scale(int D) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))); }

unsigned row_blocks(const HeadDims& g) { return static_cast<unsigned>(ceil_div(g.rows(), kWarpsPerBlock)); }

// Calls f(std::integral_constant<int, kPerLane>) with the fewest elements per lane, among 1, 2, 4
// and 8, that hold a D-vector: every kernel is instantiated for these four splits only.
template <typename F>
void with_lane_split(int D, F&& f) {
  if (D <= kWarpSize) return f(std::integral_constant<int, 1>{});
  if (D <= 2 * kWarpSize) return f(std::integral_constant<int, 2>{});
  if (D <= 4 * kWarpSize) return f(std::integral_constant<int, 4>{});
  return f(std::integral_constant<int, 8>{});
}

// -1: not read yet (OM_ATTENTION_KERNEL decides), 0: warp kernels only, 1: tensor cores where eligible.
std::atomic<int> g_tensor_cores{-1};

bool tensor_core_attention() {
  int v = g_tensor_cores.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* e = std::getenv("OM_ATTENTION_KERNEL");
    v = e != nullptr && std::string(e) == "warp" ? 0 : 1;
    g_tensor_cores.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

}  // namespace

bool attention_forward_uses_tensor_cores(const AttentionForwardArgs& a) {
  return a.qkv.dtype == DType::kBF16 && tensor_core_attention() &&
         attention_mma_eligible(a.qkv, a.n_heads, {a.qkv.data, a.out.data});
}

bool attention_backward_uses_tensor_cores(const AttentionBackwardArgs& a) {
  return a.qkv.dtype == DType::kBF16 && tensor_core_attention() &&
         attention_mma_eligible(a.qkv, a.n_heads, {a.qkv.data, a.dqkv.data, a.dout.data});
}

namespace {

template <typename Act>
void forward_impl(const AttentionForwardArgs& a, Stream stream) {
  const HeadDims g = head_dims("attention_forward", a.qkv, a.n_heads);
  if (g.rows() == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  const float scale = softmax_scale(g.D);
  const bool plus_one = a.kind == AttentionKind::kSoftmax1;
  const bool tensor_cores = [&] {  // launched the tensor-core forward (bf16 only: attention_mma.cuh)
    if constexpr (std::is_same_v<Act, __nv_bfloat16>) {
      if (attention_forward_uses_tensor_cores(a)) {
        attention_forward_mma(a.out.data_as<Act>(), a.lse.data_as<float>(), a.qkv.data_as<const Act>(), g.B, g.T,
                              g.H, scale, plus_one, s);
        return true;
      }
    }
    return false;
  }();
  if (!tensor_cores) {
    with_lane_split(g.D, [&](auto per_lane) {
      attention_forward_warp_per_query<Act, decltype(per_lane)::value><<<row_blocks(g), kThreads, 0, s>>>(
          a.out.data_as<Act>(), a.lse.data_as<float>(), a.qkv.data_as<const Act>(), g, scale, plus_one);
    });
    OM_CUDA_CHECK_KERNEL(s);
  }
  if (a.probs.empty()) return;
  with_lane_split(g.D, [&](auto per_lane) {
    attention_probs_warp_per_query<Act, decltype(per_lane)::value><<<row_blocks(g), kThreads, 0, s>>>(
        a.probs.data_as<float>(), a.lse.data_as<const float>(), a.qkv.data_as<const Act>(), g, scale);
  });
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename Act>
void backward_impl(const AttentionBackwardArgs& a, Stream stream) {
  const HeadDims g = head_dims("attention_backward", a.qkv, a.n_heads);
  if (g.rows() == 0) return;  // nothing to write
  const cudaStream_t s = to_cuda_stream(stream);
  // Per-call scratch for delta, stream-ordered (Buffer::AllocateScratch): freed after the kernels
  // below on `s`, without the host waiting for them.
  Buffer delta_buf = Buffer::AllocateScratch(a.qkv.device, stream, static_cast<size_t>(g.rows()) * sizeof(float),
                                             "attention_backward.delta");
  float* delta = static_cast<float*>(delta_buf.data());
  const float scale = softmax_scale(g.D);
  Act* dqkv = a.dqkv.data_as<Act>();
  const Act* dout = a.dout.data_as<const Act>();
  const Act* qkv = a.qkv.data_as<const Act>();
  const float* lse = a.lse.data_as<const float>();
  with_lane_split(g.D, [&](auto per_lane) {
    constexpr int kPerLane = decltype(per_lane)::value;
    attention_backward_delta<Act, kPerLane>
        <<<row_blocks(g), kThreads, 0, s>>>(delta, dout, a.out.data_as<const Act>(), g);
    OM_CUDA_CHECK_KERNEL(s);
    if constexpr (std::is_same_v<Act, __nv_bfloat16>) {
      if (attention_backward_uses_tensor_cores(a)) {
        // RoPE's transpose in the kernels' stores: its cos/sin table, made once per process (rope.cuh).
        Buffer scratch;
        const double* cos_sin = a.rope_theta > 0.0f
                                    ? rope_cos_sin_table_cached(g.T, static_cast<int>(g.D),
                                                                static_cast<double>(a.rope_theta), a.qkv.device,
                                                                stream, &scratch)
                                    : nullptr;
        attention_backward_mma(dqkv, dout, qkv, lse, delta, cos_sin, g.B, g.T, g.H, scale, s);
        return;
      }
    }
    // dq and (dk, dv) write disjoint parts of dqkv; both read delta, written by the launch above.
    attention_backward_dq_warp_per_query<Act, kPerLane>
        <<<row_blocks(g), kThreads, 0, s>>>(dqkv, dout, qkv, lse, delta, g, scale);
    OM_CUDA_CHECK_KERNEL(s);
    attention_backward_dkdv_warp_per_key<Act, kPerLane>
        <<<row_blocks(g), kThreads, 0, s>>>(dqkv, dout, qkv, lse, delta, g, scale);
    OM_CUDA_CHECK_KERNEL(s);
    if (a.rope_theta > 0.0f) {  // RoPE's transpose on dq and dk: heads [0, 2H) of (B, T, 3H, D)
      rope_backward(RopeArgs{reshape(a.dqkv, Shape{g.B, g.T, 3 * g.H, g.D}), 2 * g.H, a.rope_theta}, stream);
    }
  });
}

}  // namespace

void set_tensor_core_attention(bool allowed) { g_tensor_cores.store(allowed ? 1 : 0, std::memory_order_relaxed); }

void attention_forward(const AttentionForwardArgs& a, Stream stream) {
  switch (a.qkv.dtype) {
    case DType::kF32: return forward_impl<float>(a, stream);
    case DType::kBF16: return forward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("attention_forward", a.qkv);
  }
}

void attention_backward(const AttentionBackwardArgs& a, Stream stream) {
  switch (a.qkv.dtype) {
    case DType::kF32: return backward_impl<float>(a, stream);
    case DType::kBF16: return backward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("attention_backward", a.qkv);
  }
}

}  // namespace om::cuda
