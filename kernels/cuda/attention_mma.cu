// Tensor-core causal attention, bf16 heads of width 64 (kernels/cuda/attention_mma.cuh): FlashAttention-2's
// tiling with the products in registers (kernels/cuda/mma.cuh: PTX mma.sync m16n8k16, bf16 inputs, f32
// accumulation). Tiles of 64 queries by 64 keys, 4 warps per block, warp w owning rows [16w, 16w + 16) of
// the block's own tile; only the bf16 input tiles pass through shared memory (row strides padded by 8
// bf16, so ldmatrix's fragment loads are free of bank conflicts). Scores, probabilities and the output
// accumulator stay in the warp's registers: a score accumulator, rounded to bf16, is the A fragment of
// the next product (mma_a_from_acc), and a row's softmax statistics are reduced over the 4 lanes that
// hold it (lane / 4 = g: rows g and g + 8 of the warp's 16; lane % 4 = t: columns 2t, 2t + 1 of every
// 8-column tile).
//   forward  one block per (b, h, query tile): for each key tile up to the diagonal, S = Q·Kᵀ (f32),
//            online softmax per row (softmax: max from -inf, sum from 0; softmax-1: max from 0, sum from
//            1, as the warp kernel), P = exp(S·scale − m) rounded to bf16, O = O·corr + P·V (f32); then
//            out = O / l (bf16) and lse = m + log l (f32, from the f32 p's, not the rounded).
//   backward two kernels, every output written by one block (deterministic, no atomics), p and ds
//            recomputed from lse and delta = dout·out (attention.cu's delta kernel runs first), 16
//            columns at a time:
//            dK/dV: one block per key tile, warp w owning 16 keys, loops over query tiles from the
//                   diagonal: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, pᵀ = exp(Sᵀ·scale − lse), dsᵀ = pᵀ·(dPᵀ − delta),
//                   both rounded to bf16; dV += Pᵀ·dO and dK += dSᵀ·Q in registers; dK × scale at the end.
//            dQ:    one block per query tile, loops over key tiles up to the diagonal: S = Q·Kᵀ,
//                   dP = dO·Vᵀ, ds as above, dQ += dS·K; dQ × scale at the end.
//            On the diagonal tile a warp skips the 16-column groups that lie wholly above the diagonal.
//            Given RoPE's cos/sin table, dq and dk are stored rotated back by Rᵀ (store_acc_row_rope_t): the
//            bits of a separate rope_backward, without its read and write of dq and dk.
// Precision against the warp kernels: the same f32 accumulation, plus one bf16 rounding of each p (the
// P·V, Pᵀ·dO products) and of each ds (dSᵀ·Q, dS·K), relative 2^-9 each; tests/cuda/attention_test.cc
// bounds the outputs with that.
// Loads: every tile is fetched with cp.async (async_copy.cuh), the next key (forward, dQ) or query (dK/dV)
// tile into a second buffer while the block computes on the current one; one commit group per loop
// iteration, waited for one iteration later. Shared memory: 45 KiB (forward) and 55 KiB (backward, above
// the default 48 KiB: opted in) per block.
#include "kernels/cuda/attention_mma.cuh"

#include <atomic>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/async_copy.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/rope.cuh"

namespace om::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kD = kMmaHeadDim;       // 64
constexpr int kTile = 64;             // queries per block, keys per tile
constexpr int kWarps = kTile / 16;    // warp w: rows [16w, 16w + 16) of a tile
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kLdH = kD + 8;          // bf16 tile row stride (elements): 144 bytes
constexpr int kTileH = kTile * kLdH;  // elements of a bf16 tile
constexpr int kChunks = kD / 16;      // 16-wide k-chunks of a 64-wide row, 16-row groups of a tile
constexpr int kCols = kD / 8;         // 8-wide column tiles of an accumulator row block
static_assert(kD == kTile, "one tile shape serves queries, keys and head dimensions");

struct Dims {
  int64_t B, T;
  int H;
  int64_t stride_qkv, stride_out;  // elements between consecutive tokens: 3·H·64 and H·64
};

// Issues the block's copies (cp.async, async_copy.cuh) of rows [t0, t0 + 64) of one head's (T, 64) slice,
// row t at src + t·stride, into a bf16 tile; rows at or past T are zero-filled. 16 bytes each: src and
// stride are 8-element aligned (attention_mma_eligible). The tile is there after the caller's
// cp_async_commit, cp_async_wait and __syncthreads.
__device__ void fetch_tile(bf16* dst, const bf16* src, int64_t stride, int64_t t0, int64_t T) {
  for (int c = threadIdx.x; c < kTile * (kD / 8); c += kThreads) {
    const int r = c / (kD / 8), part = c % (kD / 8);
    const bool valid = t0 + r < T;
    cp_async_16(dst + r * kLdH + part * 8, valid ? src + (t0 + r) * stride + part * 8 : src, valid);
  }
}

// The warp's 16 rows [r0, r0 + 16) of a tile × all 64 columns as A fragments, one per 16-column chunk.
__device__ void load_rows(MmaA (&a)[kChunks], const bf16* tile, int r0, int lane) {
#pragma unroll
  for (int kc = 0; kc < kChunks; ++kc) mma_load_a(a[kc], tile, kLdH, r0, 16 * kc, lane);
}

// acc (16 × 8) += rows · tile[n0, n0 + 8)ᵀ: the dot products of the warp's 16 rows (A fragments) with 8
// rows of a tile, over all 64 columns.
__device__ __forceinline__ void rows_dot(MmaC& acc, const MmaA (&rows)[kChunks], const bf16* tile, int n0, int lane) {
#pragma unroll
  for (int kc = 0; kc < kChunks; kc += 2) {
    MmaB b0, b1;
    mma_load_b_t2(b0, b1, tile, kLdH, n0, 16 * kc, lane);
    mma_bf16(acc, rows[kc], b0);
    mma_bf16(acc, rows[kc + 1], b1);
  }
}

// acc[n] (16 × 64 as 8 tiles of 8 columns) += a (16 × 16) · tile rows [k0, k0 + 16).
__device__ __forceinline__ void acc_times_tile(MmaC (&acc)[kCols], const MmaA& a, const bf16* tile, int k0, int lane) {
#pragma unroll
  for (int n = 0; n < kCols; n += 2) {
    MmaB b0, b1;
    mma_load_b2(b0, b1, tile, kLdH, k0, 8 * n, lane);
    mma_bf16(acc[n], a, b0);
    mma_bf16(acc[n + 1], a, b1);
  }
}

// Row r (0: the lane's row g, 1: row g + 8) of a 16 × 64 accumulator block, each value through f and
// rounded to bf16, at row[8n], row[8n + 1] for n < 8 (the lane's columns 8n + 2t, 8n + 2t + 1 once the
// caller's row includes + 2t; 4-byte aligned).
template <typename F>
__device__ __forceinline__ void store_acc_row(bf16* row, const MmaC (&acc)[kCols], int r, F f) {
#pragma unroll
  for (int n = 0; n < kCols; ++n) {
    *reinterpret_cast<uint32_t*>(row + 8 * n) = pack_bf16(f(acc[n][2 * r]), f(acc[n][2 * r + 1]));
  }
}

// store_acc_row (identity f aside) followed by RoPE's backward, R(t)ᵀ, on the row's (c, c + 32) column
// pairs, where cs = the position's row of rope_cos_sin_table + 2·(2t) (the lane's first column): each
// value through f and rounded to bf16 as store_acc_row stores it, the pair rotated in double
// (rope.cuh's rope_rotate with −sin, as rope.cu's backward) and rounded once to bf16. The same bits as
// store_acc_row then rope_backward; a lane's columns c and c + 32 are in its tiles n and n + 4.
template <typename F>
__device__ __forceinline__ void store_acc_row_rope_t(bf16* row, const MmaC (&acc)[kCols], int r, F f,
                                                     const double* cs) {
  constexpr int kHalf = kCols / 2;  // column c + 32 is in tile n + 4
#pragma unroll
  for (int n = 0; n < kHalf; ++n) {
    uint32_t lo = 0, hi = 0;  // two bf16 each, the lower column in the low half (pack_bf16's layout)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const double x0 = __bfloat162float(__float2bfloat16_rn(f(acc[n][2 * r + e])));
      const double x1 = __bfloat162float(__float2bfloat16_rn(f(acc[n + kHalf][2 * r + e])));
      const double* c = cs + 2 * (8 * n + e);
      double y0, y1;
      rope_rotate(x0, x1, c[0], -c[1], y0, y1);
      lo |= static_cast<uint32_t>(__bfloat16_as_ushort(__double2bfloat16(y0))) << (16 * e);
      hi |= static_cast<uint32_t>(__bfloat16_as_ushort(__double2bfloat16(y1))) << (16 * e);
    }
    *reinterpret_cast<uint32_t*>(row + 8 * n) = lo;
    *reinterpret_cast<uint32_t*>(row + 8 * (n + kHalf)) = hi;
  }
}

// Row sums and maxima over the 4 lanes of a quad (lanes 4g..4g+3 hold row g's columns).
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullWarpMask, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFullWarpMask, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(kFullWarpMask, v, 1);
  return v + __shfl_xor_sync(kFullWarpMask, v, 2);
}

__global__ void __launch_bounds__(kThreads)
    attention_forward_mma_kernel(bf16* out, float* lse, const bf16* qkv, Dims g, float scale, bool plus_one) {
  extern __shared__ __align__(128) unsigned char smem[];
  // Q, then K and V of buffer 0, K and V of buffer 1: the next key tile is fetched while this one is used.
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  const auto sK = [&](int64_t buf) { return sQ + (1 + 2 * buf) * kTileH; };
  const auto sV = [&](int64_t buf) { return sQ + (2 + 2 * buf) * kTileH; };
  const int64_t bh = blockIdx.x, b = bh / g.H, q0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int gi = lane / 4, ti = lane % 4;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* head = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;  // q of token 0; k at + HD, v at + 2·HD
  fetch_tile(sQ, head, g.stride_qkv, q0, g.T);
  cp_async_commit();
  fetch_tile(sK(0), head + HD, g.stride_qkv, 0, g.T);
  fetch_tile(sV(0), head + 2 * HD, g.stride_qkv, 0, g.T);
  cp_async_commit();
  cp_async_wait<1>();  // Q (key tile 0 may still be in flight)
  __syncthreads();
  MmaA q[kChunks];
  load_rows(q, sQ, 16 * warp, lane);
  // This lane's rows: i[0] = row g, i[1] = row g + 8 of the warp's 16; their running max and denominator.
  const int64_t i[2] = {q0 + 16 * warp + gi, q0 + 16 * warp + gi + 8};
  float m[2] = {plus_one ? 0.0f : -INFINITY, plus_one ? 0.0f : -INFINITY};
  float l[2] = {plus_one ? 1.0f : 0.0f, plus_one ? 1.0f : 0.0f};
  MmaC o[kCols] = {};
  for (int64_t k0 = 0, it = 0; k0 <= q0; k0 += kTile, ++it) {  // causal: key tiles up to the diagonal one
    const bf16* kt = sK(it % 2);
    const bf16* vt = sV(it % 2);
    if (k0 + kTile <= q0) {  // the next tile, into the other buffer
      fetch_tile(sK((it + 1) % 2), head + HD, g.stride_qkv, k0 + kTile, g.T);
      fetch_tile(sV((it + 1) % 2), head + 2 * HD, g.stride_qkv, k0 + kTile, g.T);
    }
    cp_async_commit();   // one group per iteration (empty after the last tile)
    cp_async_wait<1>();  // everything but that group: this tile
    __syncthreads();
    // Key columns [8n, 8n + 8) with n >= n_end lie above the diagonal for all of this warp's rows.
    const int n_end = k0 == q0 ? 2 * warp + 2 : kCols;
    MmaC s[kCols] = {};
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kCols; ++n) {
      if (n < n_end) rows_dot(s[n], q, kt, 8 * n, lane);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = k0 + 8 * n + 2 * ti + e % 2;
        const float v = j <= i[e / 2] && j < g.T ? s[n][e] * scale : -INFINITY;
        s[n][e] = v;
        mx[e / 2] = fmaxf(mx[e / 2], v);
      }
    }
    float m_use[2], corr[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(mx[r]));
      m_use[r] = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: nothing to weigh
      corr[r] = expf(m[r] - m_use[r]);               // 1 while the max holds; 0 from softmax's -inf start
      m[r] = m_new;
    }
#pragma unroll
    for (int n = 0; n < kCols; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = expf(s[n][e] - m_use[e / 2]);  // masked keys: exp(-inf) = 0
        s[n][e] = p;
        sum[e / 2] += p;
      }
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + quad_sum(sum[r]);
#pragma unroll
    for (int kk = 0; kk < kChunks; ++kk) {  // O += P[:, 16kk, 16kk + 16) · V rows [16kk, 16kk + 16)
      if (2 * kk >= n_end) continue;        // all zeros
      MmaA p;
      mma_a_from_acc(p, s[2 * kk], s[2 * kk + 1]);
      acc_times_tile(o, p, vt, 16 * kk, lane);
    }
    __syncthreads();  // every warp is done with this tile's buffers before the next iteration refills them
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (i[r] >= g.T) continue;
    const float denominator = l[r];
    store_acc_row(out + (b * g.T + i[r]) * g.stride_out + int64_t{h} * kD + 2 * ti, o, r,
                  [=](float x) { return x / denominator; });
    if (ti == 0) lse[bh * g.T + i[r]] = m[r] + logf(l[r]);
  }
}

// The backward kernels' shared memory: six bf16 tiles and two sets of per-row lse and delta.
//   dK/dV: K, V (fixed), then Q, dO of query tile buffer 0 and of buffer 1, with lse/delta of each buffer.
//   dQ:    Q, dO (fixed), then K, V of key tile buffer 0 and of buffer 1; lse/delta [0] only.
// (Offsets, not arrays of pointers: a runtime index into an array would put it in local memory.)
struct BackwardTiles {
  bf16* base;
  __device__ explicit BackwardTiles(unsigned char* smem) : base(reinterpret_cast<bf16*>(smem)) {}
  __device__ bf16* tile(int k) const { return base + k * kTileH; }
  __device__ float* lse(int k) const { return reinterpret_cast<float*>(base + 6 * kTileH) + 2 * k * kTile; }
  __device__ float* delta(int k) const { return lse(k) + kTile; }
  // Stores lse and delta of the query rows [q0, q0 + 64) (0 past T) into set k: plain loads, visible to
  // the block after the next __syncthreads.
  __device__ void LoadRowStats(int k, const float* g_lse, const float* g_delta, int64_t bh, int64_t q0, int64_t T) {
    if (threadIdx.x < kTile) {
      const int64_t t = q0 + threadIdx.x;
      lse(k)[threadIdx.x] = t < T ? g_lse[bh * T + t] : 0.0f;
      delta(k)[threadIdx.x] = t < T ? g_delta[bh * T + t] : 0.0f;
    }
  }
};

// p = exp(s·scale − lse) and ds = p·(dp − delta) for query i and key j, both 0 outside the causal
// triangle and T.
__device__ __forceinline__ void p_and_ds(float& p, float& ds, float s, float dp, float lse, float delta, int64_t i,
                                         int64_t j, int64_t T, float scale) {
  const bool inside = i < T && j <= i;
  p = inside ? expf(s * scale - lse) : 0.0f;
  ds = inside ? p * (dp - delta) : 0.0f;
}

__global__ void __launch_bounds__(kThreads, 3)  // <= 168 registers: 3 blocks (12 warps) per SM
    attention_backward_dkdv_mma_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                                       const float* delta, const double* rope, Dims g, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardTiles t(smem);
  const int64_t bh = blockIdx.x, b = bh / g.H, k0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int gi = lane / 4, ti = lane % 4;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* qhead = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;
  const bf16* ohead = dout + b * g.T * g.stride_out + int64_t{h} * kD;
  fetch_tile(t.tile(0), qhead + HD, g.stride_qkv, k0, g.T);
  fetch_tile(t.tile(1), qhead + 2 * HD, g.stride_qkv, k0, g.T);
  cp_async_commit();
  fetch_tile(t.tile(2), qhead, g.stride_qkv, k0, g.T);  // query tile k0 (the diagonal one) into buffer 0
  fetch_tile(t.tile(3), ohead, g.stride_out, k0, g.T);
  t.LoadRowStats(0, lse, delta, bh, k0, g.T);
  cp_async_commit();
  cp_async_wait<1>();  // K and V
  __syncthreads();
  MmaA kf[kChunks], vf[kChunks];  // the warp's 16 keys: rows of K and V
  load_rows(kf, t.tile(0), 16 * warp, lane);
  load_rows(vf, t.tile(1), 16 * warp, lane);
  const int64_t j[2] = {k0 + 16 * warp + gi, k0 + 16 * warp + gi + 8};  // this lane's key rows
  MmaC dk[kCols] = {}, dv[kCols] = {};
  for (int64_t q0 = k0, it = 0; q0 < g.T; q0 += kTile, ++it) {  // causal: query tiles from the diagonal one
    const int cur = static_cast<int>(it % 2), nxt = 1 - cur;
    const bf16* qt = t.tile(2 + 2 * cur);
    const bf16* ot = t.tile(3 + 2 * cur);
    if (q0 + kTile < g.T) {  // the next tile, into the other buffer
      fetch_tile(t.tile(2 + 2 * nxt), qhead, g.stride_qkv, q0 + kTile, g.T);
      fetch_tile(t.tile(3 + 2 * nxt), ohead, g.stride_out, q0 + kTile, g.T);
      t.LoadRowStats(nxt, lse, delta, bh, q0 + kTile, g.T);
    }
    cp_async_commit();   // one group per iteration (empty after the last tile)
    cp_async_wait<1>();  // everything but that group: this tile
    __syncthreads();
#pragma unroll
    for (int qc = 0; qc < kChunks; ++qc) {  // queries [16qc, 16qc + 16) of the tile
      if (q0 == k0 && qc < warp) continue;  // all above the diagonal for this warp's keys
      MmaC st[2] = {}, dpt[2] = {};         // Sᵀ and dPᵀ: 16 keys × 2 tiles of 8 queries
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        rows_dot(st[n], kf, qt, 16 * qc + 8 * n, lane);
        rows_dot(dpt[n], vf, ot, 16 * qc + 8 * n, lane);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = 16 * qc + 8 * n + 2 * ti + e % 2;  // the query's row in the tile
          p_and_ds(st[n][e], dpt[n][e], st[n][e], dpt[n][e], t.lse(cur)[c], t.delta(cur)[c], q0 + c, j[e / 2], g.T,
                   scale);
        }
      }
      MmaA pt, dst;
      mma_a_from_acc(pt, st[0], st[1]);
      mma_a_from_acc(dst, dpt[0], dpt[1]);
      acc_times_tile(dv, pt, ot, 16 * qc, lane);
      acc_times_tile(dk, dst, qt, 16 * qc, lane);
    }
    __syncthreads();  // every warp is done with this tile's buffer before the next iteration refills it
  }
  // dv first: its registers are free before dk's rotation needs some.
  const auto row_of = [&](int r, int64_t part) { return dqkv + (b * g.T + j[r]) * g.stride_qkv + part + 2 * ti; };
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (j[r] < g.T) store_acc_row(row_of(r, 2 * HD + int64_t{h} * kD), dv, r, [](float x) { return x; });
  }
  const auto dk_value = [=](float x) { return x * scale; };
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (j[r] >= g.T) continue;
    bf16* row = row_of(r, HD + int64_t{h} * kD);
    if (rope != nullptr) {
      store_acc_row_rope_t(row, dk, r, dk_value, rope + 2 * (j[r] * (kD / 2) + 2 * ti));
    } else {
      store_acc_row(row, dk, r, dk_value);
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_mma_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                                     const float* delta, const double* rope, Dims g, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardTiles t(smem);
  const int64_t bh = blockIdx.x, b = bh / g.H, q0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int gi = lane / 4, ti = lane % 4;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* qhead = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;
  fetch_tile(t.tile(0), qhead, g.stride_qkv, q0, g.T);
  fetch_tile(t.tile(1), dout + b * g.T * g.stride_out + int64_t{h} * kD, g.stride_out, q0, g.T);
  t.LoadRowStats(0, lse, delta, bh, q0, g.T);
  cp_async_commit();
  fetch_tile(t.tile(2), qhead + HD, g.stride_qkv, 0, g.T);  // key tile 0 into buffer 0
  fetch_tile(t.tile(3), qhead + 2 * HD, g.stride_qkv, 0, g.T);
  cp_async_commit();
  cp_async_wait<1>();  // Q and dO
  __syncthreads();
  MmaA qf[kChunks], dof[kChunks];  // the warp's 16 queries: rows of Q and dO
  load_rows(qf, t.tile(0), 16 * warp, lane);
  load_rows(dof, t.tile(1), 16 * warp, lane);
  const int rows[2] = {16 * warp + gi, 16 * warp + gi + 8};  // this lane's query rows in the tile
  const float row_lse[2] = {t.lse(0)[rows[0]], t.lse(0)[rows[1]]};
  const float row_delta[2] = {t.delta(0)[rows[0]], t.delta(0)[rows[1]]};
  MmaC dq[kCols] = {};
  for (int64_t k0 = 0, it = 0; k0 <= q0; k0 += kTile, ++it) {
    const int cur = static_cast<int>(it % 2), nxt = 1 - cur;
    const bf16* kt = t.tile(2 + 2 * cur);
    const bf16* vt = t.tile(3 + 2 * cur);
    if (k0 + kTile <= q0) {  // the next tile, into the other buffer
      fetch_tile(t.tile(2 + 2 * nxt), qhead + HD, g.stride_qkv, k0 + kTile, g.T);
      fetch_tile(t.tile(3 + 2 * nxt), qhead + 2 * HD, g.stride_qkv, k0 + kTile, g.T);
    }
    cp_async_commit();   // one group per iteration (empty after the last tile)
    cp_async_wait<1>();  // everything but that group: this tile
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < kChunks; ++kc) {  // keys [16kc, 16kc + 16) of the tile
      if (k0 == q0 && kc > warp) continue;  // all above the diagonal for this warp's queries
      MmaC s[2] = {}, dp[2] = {};           // 16 queries × 2 tiles of 8 keys
#pragma unroll
      for (int n = 0; n < 2; ++n) {
        rows_dot(s[n], qf, kt, 16 * kc + 8 * n, lane);
        rows_dot(dp[n], dof, vt, 16 * kc + 8 * n, lane);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = e / 2;
          const int64_t jj = k0 + 16 * kc + 8 * n + 2 * ti + e % 2;
          float p;
          p_and_ds(p, dp[n][e], s[n][e], dp[n][e], row_lse[r], row_delta[r], q0 + rows[r], jj, g.T, scale);
        }
      }
      MmaA ds;
      mma_a_from_acc(ds, dp[0], dp[1]);
      acc_times_tile(dq, ds, kt, 16 * kc, lane);
    }
    __syncthreads();  // every warp is done with this tile's buffers before the next iteration refills them
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = q0 + rows[r];
    if (i >= g.T) continue;
    bf16* row = dqkv + (b * g.T + i) * g.stride_qkv + int64_t{h} * kD + 2 * ti;
    const auto dq_value = [=](float x) { return x * scale; };
    if (rope != nullptr) {
      store_acc_row_rope_t(row, dq, r, dq_value, rope + 2 * (i * (kD / 2) + 2 * ti));
    } else {
      store_acc_row(row, dq, r, dq_value);
    }
  }
}

constexpr size_t kForwardSmem = 5 * kTileH * sizeof(bf16);                                 // 45 KiB
constexpr size_t kBackwardSmem = 6 * kTileH * sizeof(bf16) + 4 * kTile * sizeof(float);  // 55 KiB
static_assert(kForwardSmem <= 48 * 1024, "the forward's tiles outgrew the limit without the opt-in");

Dims dims(int64_t B, int64_t T, int H) {
  return Dims{B, T, H, 3 * int64_t{H} * kD, int64_t{H} * kD};
}

// Above 48 KiB a kernel must opt in to its dynamic shared memory: once per device (cuda_common.cuh), since a
// step launches the backward once per layer and micro-batch.
void allow_backward_smem() {
  static std::atomic<uint64_t> done{0};
  opt_in_dynamic_smem(done, static_cast<int>(kBackwardSmem),
                      {attention_backward_dkdv_mma_kernel, attention_backward_dq_mma_kernel});
}

dim3 grid(const Dims& g) {
  OM_CHECK(g.B * g.H < (int64_t{1} << 31) && ceil_div(g.T, kTile) < 65536,
           "attention (cuda, tensor cores): B*H=%ld or T=%ld exceeds the grid", static_cast<long>(g.B * g.H),
           static_cast<long>(g.T));
  return dim3(static_cast<unsigned>(g.B * g.H), static_cast<unsigned>(ceil_div(g.T, kTile)));
}

}  // namespace

bool attention_mma_eligible(const ConstTensorView& qkv, int64_t n_heads, std::initializer_list<const void*> pointers) {
  if (qkv.dtype != DType::kBF16 || qkv.ndim() != 3 || n_heads <= 0 || qkv.dim(2) != 3 * n_heads * kD) return false;
  for (const void* p : pointers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

void attention_forward_mma(bf16* out, float* lse, const bf16* qkv, int64_t B, int64_t T, int H, float scale,
                           bool plus_one, cudaStream_t stream) {
  const Dims g = dims(B, T, H);
  if (B * T * H == 0) return;
  attention_forward_mma_kernel<<<grid(g), kThreads, kForwardSmem, stream>>>(out, lse, qkv, g, scale, plus_one);
  OM_CUDA_CHECK_KERNEL(stream);
}

void attention_backward_mma(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                            const double* rope_cos_sin, int64_t B, int64_t T, int H, float scale,
                            cudaStream_t stream) {
  const Dims g = dims(B, T, H);
  if (B * T * H == 0) return;
  allow_backward_smem();
  // Disjoint parts of dqkv: k and v rows here, q rows below.
  attention_backward_dkdv_mma_kernel<<<grid(g), kThreads, kBackwardSmem, stream>>>(dqkv, dout, qkv, lse, delta,
                                                                                    rope_cos_sin, g, scale);
  OM_CUDA_CHECK_KERNEL(stream);
  attention_backward_dq_mma_kernel<<<grid(g), kThreads, kBackwardSmem, stream>>>(dqkv, dout, qkv, lse, delta,
                                                                                  rope_cos_sin, g, scale);
  OM_CUDA_CHECK_KERNEL(stream);
}

}  // namespace om::cuda
