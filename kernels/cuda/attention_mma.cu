// Tensor-core causal attention, bf16 heads of width 64 (kernels/cuda/attention_mma.cuh): FlashAttention-2's
// tiling with WMMA bf16 m16n16k16 products and f32 accumulation. Tiles of 64 queries by 64 keys, 4 warps
// per block, warp w owning rows [16w, 16w + 16) of a tile; tiles live in shared memory (row strides padded
// by 8 bf16 / 4 f32 against bank conflicts), and the softmax runs on f32 scores staged there, because a
// WMMA fragment's element layout is opaque.
//   forward  one block per (b, h, query tile): for each key tile up to the diagonal, S = Q·Kᵀ (f32),
//            online softmax per row (softmax: max from -inf, sum from 0; softmax-1: max from 0, sum from
//            1, as the warp kernel), P = exp(S·scale − m) rounded to bf16, O = O·corr + P·V (f32 in shared
//            memory); then out = O / l (bf16) and lse = m + log l (f32, from the f32 p's, not the rounded).
//   backward two kernels, every output written by one block (deterministic, no atomics), p and ds
//            recomputed from lse and delta = dout·out (attention.cu's delta kernel runs first):
//            dK/dV: one block per key tile, loops over query tiles from the diagonal: S = Q·Kᵀ,
//                   dP = dO·Vᵀ, p = exp(S·scale − lse), ds = p·(dP − delta), both rounded to bf16;
//                   dV += Pᵀ·dO and dK += dSᵀ·Q in register accumulators; dK × scale at the end.
//            dQ:    one block per query tile, loops over key tiles up to the diagonal: dQ += dS·K.
// Precision against the warp kernels: the same f32 accumulation, plus one bf16 rounding of each p (the
// P·V, Pᵀ·dO products) and of each ds (dSᵀ·Q, dS·K), relative 2^-9 each; tests/cuda/attention_test.cc
// bounds the outputs with that. Shared memory: 71 KiB (forward) and 89 KiB (backward) per block (opt-in
// above 48 KiB).
#include "kernels/cuda/attention_mma.cuh"

#include <mma.h>

#include <cmath>

#include "kernels/cuda/cuda_common.cuh"

namespace om::cuda {
namespace {

using bf16 = __nv_bfloat16;
using namespace nvcuda;

constexpr int kD = kMmaHeadDim;       // 64
constexpr int kTile = 64;             // queries per block, keys per tile
constexpr int kWarps = kTile / 16;    // warp w: rows [16w, 16w + 16) of a tile
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kLdH = kD + 8;          // bf16 tile row stride (elements): 144 bytes
constexpr int kLdF = kTile + 4;       // f32 tile row stride (elements): 272 bytes
constexpr int kTileH = kTile * kLdH;  // elements of a bf16 tile
constexpr int kTileF = kTile * kLdF;  // elements of an f32 tile
static_assert(kD == kTile, "the f32 tiles hold both 64-key score rows and 64-wide output rows");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragAT = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;  // a tile read transposed
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBT = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // a tile read transposed
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

struct Dims {
  int64_t B, T;
  int H;
  int64_t stride_qkv, stride_out;  // elements between consecutive tokens: 3·H·64 and H·64
};

// Rows [t0, t0 + 64) of one head's (T, 64) slice, row t at src + t·stride, into a bf16 tile; rows at or
// past T are zero. 16-byte loads: src and stride are 8-element aligned (attention_mma_eligible).
__device__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int64_t t0, int64_t T) {
  for (int c = threadIdx.x; c < kTile * (kD / 8); c += kThreads) {
    const int r = c / (kD / 8), part = c % (kD / 8);
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (t0 + r < T) v = *reinterpret_cast<const uint4*>(src + (t0 + r) * stride + part * 8);
    *reinterpret_cast<uint4*>(dst + r * kLdH + part * 8) = v;
  }
}

// c (16 × 64, f32 rows at ldm kLdF) = a (16 × 64 bf16 rows) · tileᵀ: c[r][j] = Σ_d a[r][d]·tile[j][d].
__device__ void rows_times_tile_t(float* c, const bf16* a, const bf16* tile) {
  for (int n = 0; n < kTile / 16; ++n) {
    FragC acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < kD / 16; ++k) {
      FragA fa;
      FragBT fb;  // (d, j) of tileᵀ is tile[j][d]: column-major at tile + 16n·ld + 16k
      wmma::load_matrix_sync(fa, a + 16 * k, kLdH);
      wmma::load_matrix_sync(fb, tile + 16 * n * kLdH + 16 * k, kLdH);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + 16 * n, acc, kLdF, wmma::mem_row_major);
  }
}

// c (16 × 64 f32 rows) += a (16 × 64 bf16 rows) · tile (64 × 64): c[r][d] += Σ_j a[r][j]·tile[j][d].
__device__ void rows_times_tile_acc(float* c, const bf16* a, const bf16* tile) {
  for (int n = 0; n < kD / 16; ++n) {
    FragC acc;
    wmma::load_matrix_sync(acc, c + 16 * n, kLdF, wmma::mem_row_major);
    for (int k = 0; k < kTile / 16; ++k) {
      FragA fa;
      FragB fb;
      wmma::load_matrix_sync(fa, a + 16 * k, kLdH);
      wmma::load_matrix_sync(fb, tile + 16 * k * kLdH + 16 * n, kLdH);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + 16 * n, acc, kLdF, wmma::mem_row_major);
  }
}

__global__ void __launch_bounds__(kThreads)
    attention_forward_mma_kernel(bf16* out, float* lse, const bf16* qkv, Dims g, float scale, bool plus_one) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kTileH;
  bf16* sV = sK + kTileH;
  bf16* sP = sV + kTileH;
  float* sS = reinterpret_cast<float*>(sP + kTileH);
  float* sO = sS + kTileF;
  float* sM = sO + kTileF;  // per row: running max, running denominator, this tile's rescale
  float* sL = sM + kTile;
  float* sC = sL + kTile;
  const int64_t bh = blockIdx.x, b = bh / g.H, q0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* head = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;  // q of token 0; k at + HD, v at + 2·HD
  load_tile(sQ, head, g.stride_qkv, q0, g.T);
  for (int e = threadIdx.x; e < kTile * kD; e += kThreads) sO[(e / kD) * kLdF + e % kD] = 0.0f;
  if (threadIdx.x < kTile) {
    sM[threadIdx.x] = plus_one ? 0.0f : -INFINITY;
    sL[threadIdx.x] = plus_one ? 1.0f : 0.0f;
  }
  // The softmax step: lanes 2r' and 2r' + 1 of warp w share row r = 16w + r', 32 columns each.
  const int r = 16 * warp + lane / 2, half = lane % 2;
  const int64_t i = q0 + r;
  for (int64_t k0 = 0; k0 <= q0; k0 += kTile) {  // causal: key tiles up to the diagonal one
    __syncthreads();                             // the last tile's sK, sV are no longer read
    load_tile(sK, head + HD, g.stride_qkv, k0, g.T);
    load_tile(sV, head + 2 * HD, g.stride_qkv, k0, g.T);
    __syncthreads();
    rows_times_tile_t(sS + 16 * warp * kLdF, sQ + 16 * warp * kLdH, sK);
    __syncwarp();
    float* srow = sS + r * kLdF;
    float mx = -INFINITY;
    for (int c = 32 * half; c < 32 * half + 32; ++c) {
      const int64_t j = k0 + c;
      const float s = j <= i && j < g.T ? srow[c] * scale : -INFINITY;
      srow[c] = s;
      mx = fmaxf(mx, s);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_old = sM[r], m_new = fmaxf(m_old, mx);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: nothing to weigh
    float sum = 0.0f;
    bf16* prow = sP + r * kLdH;
    for (int c = 32 * half; c < 32 * half + 32; ++c) {
      const float p = expf(srow[c] - m_use);  // masked keys: exp(-inf) = 0
      prow[c] = __float2bfloat16_rn(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (half == 0) {
      const float corr = expf(m_old - m_use);  // 1 while the max holds; 0 from softmax's -inf start
      sC[r] = corr;
      sL[r] = sL[r] * corr + sum;
      sM[r] = m_new;
    }
    __syncwarp();
    for (int e = lane; e < 16 * kD; e += kWarpSize) {
      const int rr = 16 * warp + e / kD;
      sO[rr * kLdF + e % kD] *= sC[rr];
    }
    __syncwarp();
    rows_times_tile_acc(sO + 16 * warp * kLdF, sP + 16 * warp * kLdH, sV);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kTile * kD; e += kThreads) {
    const int rr = e / kD, d = e % kD;
    const int64_t t = q0 + rr;
    if (t >= g.T) continue;
    out[(b * g.T + t) * g.stride_out + int64_t{h} * kD + d] = __float2bfloat16_rn(sO[rr * kLdF + d] / sL[rr]);
  }
  if (threadIdx.x < kTile && q0 + threadIdx.x < g.T) {
    lse[bh * g.T + q0 + threadIdx.x] = sM[threadIdx.x] + logf(sL[threadIdx.x]);
  }
}

// The backward kernels' shared-memory tiles (one layout for both; the dQ kernel leaves sP unused).
struct BackwardTiles {
  bf16 *sQ, *sDO, *sK, *sV, *sP, *sDS;  // bf16 tiles
  float *sS, *sDP;                      // f32 score and dP tiles
  float *sLse, *sDelta;                 // per query row of the tile
  __device__ explicit BackwardTiles(unsigned char* smem) {
    sQ = reinterpret_cast<bf16*>(smem);
    sDO = sQ + kTileH;
    sK = sDO + kTileH;
    sV = sK + kTileH;
    sP = sV + kTileH;
    sDS = sP + kTileH;
    sS = reinterpret_cast<float*>(sDS + kTileH);
    sDP = sS + kTileF;
    sLse = sDP + kTileF;
    sDelta = sLse + kTile;
  }
  // lse and delta of the query rows [q0, q0 + 64) (0 past T).
  __device__ void LoadRowStats(const float* lse, const float* delta, int64_t bh, int64_t q0, int64_t T) {
    if (threadIdx.x < kTile) {
      const int64_t t = q0 + threadIdx.x;
      sLse[threadIdx.x] = t < T ? lse[bh * T + t] : 0.0f;
      sDelta[threadIdx.x] = t < T ? delta[bh * T + t] : 0.0f;
    }
  }
  // Warp w's query rows of the tile pair (q0, k0): S = Q·Kᵀ and dP = dO·Vᵀ, then p = exp(S·scale − lse)
  // and ds = p·(dP − delta), 0 outside the causal triangle and T, rounded to bf16 into sP (with_p) and
  // sDS. Reads sQ, sDO, sK, sV and the row stats; REQUIRES them loaded and synchronized.
  __device__ void WarpPandDs(int warp, int lane, int64_t q0, int64_t k0, int64_t T, float scale, bool with_p) {
    rows_times_tile_t(sS + 16 * warp * kLdF, sQ + 16 * warp * kLdH, sK);
    rows_times_tile_t(sDP + 16 * warp * kLdF, sDO + 16 * warp * kLdH, sV);
    __syncwarp();
    for (int e = lane; e < 16 * kTile; e += kWarpSize) {
      const int rr = 16 * warp + e / kTile, c = e % kTile;
      const int64_t i = q0 + rr, j = k0 + c;
      const bool inside = i < T && j <= i;
      const float p = inside ? expf(sS[rr * kLdF + c] * scale - sLse[rr]) : 0.0f;
      const float ds = inside ? p * (sDP[rr * kLdF + c] - sDelta[rr]) : 0.0f;
      if (with_p) sP[rr * kLdH + c] = __float2bfloat16_rn(p);
      sDS[rr * kLdH + c] = __float2bfloat16_rn(ds);
    }
  }
};

__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_mma_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                                       const float* delta, Dims g, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardTiles t(smem);
  const int64_t bh = blockIdx.x, b = bh / g.H, k0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* qhead = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;
  const bf16* ohead = dout + b * g.T * g.stride_out + int64_t{h} * kD;
  load_tile(t.sK, qhead + HD, g.stride_qkv, k0, g.T);
  load_tile(t.sV, qhead + 2 * HD, g.stride_qkv, k0, g.T);
  FragC dk[kD / 16], dv[kD / 16];  // warp w: keys [16w, 16w + 16) of the tile × 64
  for (int n = 0; n < kD / 16; ++n) {
    wmma::fill_fragment(dk[n], 0.0f);
    wmma::fill_fragment(dv[n], 0.0f);
  }
  for (int64_t q0 = k0; q0 < g.T; q0 += kTile) {  // causal: query tiles from the diagonal one
    __syncthreads();                              // the last tile's sQ, sDO, sP, sDS are no longer read
    load_tile(t.sQ, qhead, g.stride_qkv, q0, g.T);
    load_tile(t.sDO, ohead, g.stride_out, q0, g.T);
    t.LoadRowStats(lse, delta, bh, q0, g.T);
    __syncthreads();
    t.WarpPandDs(warp, lane, q0, k0, g.T, scale, /*with_p=*/true);
    __syncthreads();  // every warp's query rows of sP and sDS feed every warp's keys below
    for (int kq = 0; kq < kTile / 16; ++kq) {
      FragAT pt, dst;  // (key, query) of Pᵀ and dSᵀ: column-major at sP + 16kq·ld + 16w
      wmma::load_matrix_sync(pt, t.sP + 16 * kq * kLdH + 16 * warp, kLdH);
      wmma::load_matrix_sync(dst, t.sDS + 16 * kq * kLdH + 16 * warp, kLdH);
      for (int n = 0; n < kD / 16; ++n) {
        FragB fo, fq;
        wmma::load_matrix_sync(fo, t.sDO + 16 * kq * kLdH + 16 * n, kLdH);
        wmma::load_matrix_sync(fq, t.sQ + 16 * kq * kLdH + 16 * n, kLdH);
        wmma::mma_sync(dv[n], pt, fo, dv[n]);
        wmma::mma_sync(dk[n], dst, fq, dk[n]);
      }
    }
  }
  // sS and sDP rows of warp w are this warp's alone: stage its dK and dV rows there.
  for (int n = 0; n < kD / 16; ++n) {
    wmma::store_matrix_sync(t.sS + 16 * warp * kLdF + 16 * n, dk[n], kLdF, wmma::mem_row_major);
    wmma::store_matrix_sync(t.sDP + 16 * warp * kLdF + 16 * n, dv[n], kLdF, wmma::mem_row_major);
  }
  __syncwarp();
  for (int e = lane; e < 16 * kD; e += kWarpSize) {
    const int rr = 16 * warp + e / kD, d = e % kD;
    const int64_t j = k0 + rr;
    if (j >= g.T) continue;
    bf16* row = dqkv + (b * g.T + j) * g.stride_qkv + int64_t{h} * kD + d;
    row[HD] = __float2bfloat16_rn(t.sS[rr * kLdF + d] * scale);
    row[2 * HD] = __float2bfloat16_rn(t.sDP[rr * kLdF + d]);
  }
}

__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_mma_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                                     const float* delta, Dims g, float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  BackwardTiles t(smem);
  const int64_t bh = blockIdx.x, b = bh / g.H, q0 = int64_t{blockIdx.y} * kTile;
  const int h = static_cast<int>(bh % g.H), warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t HD = int64_t{g.H} * kD;
  const bf16* qhead = qkv + b * g.T * g.stride_qkv + int64_t{h} * kD;
  load_tile(t.sQ, qhead, g.stride_qkv, q0, g.T);
  load_tile(t.sDO, dout + b * g.T * g.stride_out + int64_t{h} * kD, g.stride_out, q0, g.T);
  t.LoadRowStats(lse, delta, bh, q0, g.T);
  FragC dq[kD / 16];  // warp w: queries [16w, 16w + 16) × 64
  for (int n = 0; n < kD / 16; ++n) wmma::fill_fragment(dq[n], 0.0f);
  for (int64_t k0 = 0; k0 <= q0; k0 += kTile) {
    __syncthreads();  // the last tile's sK, sV are no longer read (first pass: sQ, sDO, row stats ready)
    load_tile(t.sK, qhead + HD, g.stride_qkv, k0, g.T);
    load_tile(t.sV, qhead + 2 * HD, g.stride_qkv, k0, g.T);
    __syncthreads();
    t.WarpPandDs(warp, lane, q0, k0, g.T, scale, /*with_p=*/false);
    __syncwarp();
    for (int kk = 0; kk < kTile / 16; ++kk) {
      FragA fds;
      wmma::load_matrix_sync(fds, t.sDS + 16 * warp * kLdH + 16 * kk, kLdH);
      for (int n = 0; n < kD / 16; ++n) {
        FragB fk;
        wmma::load_matrix_sync(fk, t.sK + 16 * kk * kLdH + 16 * n, kLdH);
        wmma::mma_sync(dq[n], fds, fk, dq[n]);
      }
    }
  }
  for (int n = 0; n < kD / 16; ++n) {
    wmma::store_matrix_sync(t.sS + 16 * warp * kLdF + 16 * n, dq[n], kLdF, wmma::mem_row_major);
  }
  __syncwarp();
  for (int e = lane; e < 16 * kD; e += kWarpSize) {
    const int rr = 16 * warp + e / kD, d = e % kD;
    const int64_t i = q0 + rr;
    if (i >= g.T) continue;
    dqkv[(b * g.T + i) * g.stride_qkv + int64_t{h} * kD + d] = __float2bfloat16_rn(t.sS[rr * kLdF + d] * scale);
  }
}

constexpr size_t kForwardSmem = 4 * kTileH * sizeof(bf16) + 2 * kTileF * sizeof(float) + 3 * kTile * sizeof(float);
constexpr size_t kBackwardSmem = 6 * kTileH * sizeof(bf16) + 2 * kTileF * sizeof(float) + 2 * kTile * sizeof(float);

Dims dims(int64_t B, int64_t T, int H) {
  return Dims{B, T, H, 3 * int64_t{H} * kD, int64_t{H} * kD};
}

dim3 grid(const Dims& g) {
  OM_CHECK(g.B * g.H < (int64_t{1} << 31) && ceil_div(g.T, kTile) < 65536,
           "attention (cuda, tensor cores): B*H=%ld or T=%ld exceeds the grid", static_cast<long>(g.B * g.H),
           static_cast<long>(g.T));
  return dim3(static_cast<unsigned>(g.B * g.H), static_cast<unsigned>(ceil_div(g.T, kTile)));
}

// Above 48 KiB a kernel must opt in to its dynamic shared memory (per device; cheap to repeat).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  OM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
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
  allow_smem(attention_forward_mma_kernel, kForwardSmem);
  attention_forward_mma_kernel<<<grid(g), kThreads, kForwardSmem, stream>>>(out, lse, qkv, g, scale, plus_one);
  OM_CUDA_CHECK_KERNEL(stream);
}

void attention_backward_mma(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                            int64_t B, int64_t T, int H, float scale, cudaStream_t stream) {
  const Dims g = dims(B, T, H);
  if (B * T * H == 0) return;
  allow_smem(attention_backward_dkdv_mma_kernel, kBackwardSmem);
  allow_smem(attention_backward_dq_mma_kernel, kBackwardSmem);
  // Disjoint parts of dqkv: k and v rows here, q rows below.
  attention_backward_dkdv_mma_kernel<<<grid(g), kThreads, kBackwardSmem, stream>>>(dqkv, dout, qkv, lse, delta, g,
                                                                                    scale);
  OM_CUDA_CHECK_KERNEL(stream);
  attention_backward_dq_mma_kernel<<<grid(g), kThreads, kBackwardSmem, stream>>>(dqkv, dout, qkv, lse, delta, g,
                                                                                  scale);
  OM_CUDA_CHECK_KERNEL(stream);
}

}  // namespace om::cuda
