// CUDA RMSNorm / RMSNorm-S (kernels/rmsnorm.h): bf16 or f32 activations, f32 weight and rstd,
// f32 arithmetic throughout. Both passes are memory-bound: one warp per row, 128-bit accesses.
// Column layout, shared by every pass over a row: its C channels are read in packs of W consecutive
// channels (W = kPackWidth<T>, 16 bytes, when W divides C; else W = 1), lane l of the row's warp owning
// the packs p = l, l + 32, ... in increasing order. The packs are moved with 128-bit accesses when the
// pointers allow it (kVector: activations 16-byte aligned, the gain aligned to its W-float pack), element
// by element otherwise: the same values in the same order, so the bits depend on C, never on alignment.
//   forward   rmsnorm_forward_warp_per_row: the sum of squares is the lanes' sums in pack order, then a
//             warp sum.
//   backward  rmsnorm_backward_warp_per_row: a block of `warps` warps owns kRowsPerWarp * warps
//             consecutive rows, warp w the rows w, w + warps, ... of them. Per row it writes dinp (=, or +=
//             with WriteMode::kAccumulate: the input gradient rounded to the activation dtype, then added
//             as residual.cu adds) and adds dy * xh into its own shared-memory row of per-channel sums
//             (each lane its own channels: no races, row order). The block then adds its warps' rows in
//             warp order into its dweight partial (global scratch, one row per block);
//             rmsnorm_dweight_sum_partials adds the partials into dweight (+=): per channel, 32 threads
//             each sum a contiguous range of row blocks in order, then the 32 range sums in range order.
// Every sum has a fixed order (no float atomics), so two runs on the same inputs give the same bits.
// Arguments were validated by kernels/rmsnorm.cc.
#include <algorithm>
#include <atomic>
#include <initializer_list>

#include "core/buffer.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/rmsnorm.h"

namespace om::cuda {
namespace {

constexpr int kForwardThreads = 256;  // 8 warps: 8 rows per block
constexpr int kMaxBackwardWarps = 8;
// Rows per backward warp: a training batch (N = B*T in the thousands: 16384 rows are 512 blocks of 8 warps)
// still fills the GPU, and the partials stay small (N / 32 rows of C floats).
constexpr int64_t kRowsPerWarp = 4;
// The backward's per-warp channel sums (warps * C floats) fit the default 48 KiB of shared memory with 8
// warps up to C = 1536 and with fewer warps up to C = 12288; wider rows opt in to more (sm_90: 227 KiB).
constexpr int64_t kDefaultSharedBytes = 48 * 1024;
constexpr int64_t kMaxSharedBytes = 227 * 1024;
constexpr int kSumColumns = 32, kSumRanges = 32;  // rmsnorm_dweight_sum_partials' block: 32 x 32 threads

// The gain of the W channels of pack p: its own W (kRmsNorm) or the one shared gain W times (kRmsNormS).
template <int W, bool kVector>
__device__ __forceinline__ Pack<float, W> gain_pack(const float* weight, int p, bool shared_gain) {
  if (!shared_gain) return load_pack<W, kVector>(weight + p * W);
  Pack<float, W> g;
#pragma unroll
  for (int j = 0; j < W; ++j) g.v[j] = weight[0];
  return g;
}

// out[n, c] = inp[n, c] * rstd[n] * g, in the CPU reference's order ((x * r) * g).
template <typename T, int W, bool kVector>
__global__ void __launch_bounds__(kForwardThreads)
    rmsnorm_forward_warp_per_row(T* out, float* rstd, const T* inp, const float* weight, int64_t N, int C,
                                 NormKind kind, float eps) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (kForwardThreads / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= N) return;  // the whole warp leaves together, so warp_sum below sees 32 active lanes
  const T* x = inp + n * C;
  T* y = out + n * C;
  const int packs = C / W;
  float ss = 0.0f;
  for (int p = lane; p < packs; p += kWarpSize) {
    const Pack<T, W> px = load_pack<W, kVector>(x + p * W);
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float v = load_f32(&px.v[j]);
      ss += v * v;
    }
  }
  ss = warp_sum(ss);
  // 1/sqrtf (correctly rounded without --use_fast_math) rather than rsqrtf (up to 2 ulp).
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if (lane == 0) rstd[n] = r;
  const bool shared_gain = kind == NormKind::kRmsNormS;
  for (int p = lane; p < packs; p += kWarpSize) {
    const Pack<T, W> px = load_pack<W, kVector>(x + p * W);  // the row again, from L1
    const Pack<float, W> pg = gain_pack<W, kVector>(weight, p, shared_gain);
    Pack<T, W> py;
#pragma unroll
    for (int j = 0; j < W; ++j) store_f32(&py.v[j], load_f32(&px.v[j]) * r * pg.v[j]);
    store_pack<W, kVector>(y + p * W, py);
  }
}

// For one row, with xh = x * r and gd = g * dy (the CPU reference's formulas):
//   dx[c] = r * (gd[c] - xh[c] * mean_j(gd[j] * xh[j]))                        written (=) or added (+=)
//   partial[blk, c] = sum over this block's rows of dy * xh    (kRmsNorm: G = C partials per block)
//   partial[blk]    = sum over this block's rows and channels  (kRmsNormS: G = 1)
// Shared memory `sums`: kRmsNorm: warps x C floats, warp w's sum for channel c = p W + j at
// w C + j (C / W) + p (consecutive lanes on consecutive words: no bank conflicts); kRmsNormS: warps floats.
template <typename T, int W, bool kVector>
__global__ void __launch_bounds__(kMaxBackwardWarps * kWarpSize)
    rmsnorm_backward_warp_per_row(T* dinp, float* partial, const T* dout, const T* inp, const float* weight,
                                  const float* rstd, int64_t N, int C, NormKind kind, bool accumulate) {
  extern __shared__ float sums[];
  const bool shared_gain = kind == NormKind::kRmsNormS;
  const int warps = blockDim.x / kWarpSize, warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int packs = C / W;
  float* mine = sums + (shared_gain ? warp : warp * C);  // this warp's row of sums
  if (!shared_gain) {
    for (int p = lane; p < packs; p += kWarpSize) {
#pragma unroll
      for (int j = 0; j < W; ++j) mine[j * packs + p] = 0.0f;
    }
  }
  float shared_acc = 0.0f;  // kRmsNormS: this lane's share of the one gain's partial
  const int64_t row_begin = static_cast<int64_t>(blockIdx.x) * kRowsPerWarp * warps;
  const int64_t row_end = row_begin + kRowsPerWarp * warps < N ? row_begin + kRowsPerWarp * warps : N;
  for (int64_t n = row_begin + warp; n < row_end; n += warps) {
    const T* x = inp + n * C;
    const T* dy = dout + n * C;
    T* dx = dinp + n * C;
    const float r = rstd[n];
    float dot = 0.0f;
    for (int p = lane; p < packs; p += kWarpSize) {
      const Pack<T, W> px = load_pack<W, kVector>(x + p * W), pdy = load_pack<W, kVector>(dy + p * W);
      const Pack<float, W> pg = gain_pack<W, kVector>(weight, p, shared_gain);
#pragma unroll
      for (int j = 0; j < W; ++j) dot += (load_f32(&pdy.v[j]) * pg.v[j]) * (load_f32(&px.v[j]) * r);
    }
    const float mean_dot = warp_sum(dot) / static_cast<float>(C);  // every lane of the warp is here
    for (int p = lane; p < packs; p += kWarpSize) {
      const Pack<T, W> px = load_pack<W, kVector>(x + p * W), pdy = load_pack<W, kVector>(dy + p * W);
      const Pack<float, W> pg = gain_pack<W, kVector>(weight, p, shared_gain);
      Pack<T, W> pdx;
      if (accumulate) pdx = load_pack<W, kVector>(dx + p * W);
#pragma unroll
      for (int j = 0; j < W; ++j) {
        const float dyc = load_f32(&pdy.v[j]);
        const float xh = load_f32(&px.v[j]) * r;
        const float v = r * (dyc * pg.v[j] - xh * mean_dot);
        if (accumulate) {
          T rounded;  // v in the activation dtype, as a separate pass would have stored it
          store_f32(&rounded, v);
          store_f32(&pdx.v[j], load_f32(&pdx.v[j]) + load_f32(&rounded));
        } else {
          store_f32(&pdx.v[j], v);
        }
        if (shared_gain) {
          shared_acc += dyc * xh;
        } else {
          mine[j * packs + p] += dyc * xh;
        }
      }
      store_pack<W, kVector>(dx + p * W, pdx);
    }
  }
  if (shared_gain) {
    shared_acc = warp_sum(shared_acc);
    if (lane == 0) mine[0] = shared_acc;
  }
  __syncthreads();
  // This block's partial: its warps' sums in warp order.
  const int G = shared_gain ? 1 : C;
  for (int c = threadIdx.x; c < G; c += blockDim.x) {
    const int at = shared_gain ? 0 : (c % W) * packs + c / W;
    float s = 0.0f;
    for (int w = 0; w < warps; ++w) s += sums[(shared_gain ? w : w * C) + at];
    partial[blockIdx.x * static_cast<int64_t>(G) + c] = s;
  }
}

// dweight[j] += sum over row blocks b of partial[b, j]: thread (tx, ty) of a 32 x 32 block sums the
// contiguous range ty of the blocks, in b order, for channel j = 32 blockIdx.x + tx; then ty = 0 adds the
// 32 range sums in range order.
__global__ void __launch_bounds__(kSumColumns * kSumRanges)
    rmsnorm_dweight_sum_partials(float* dweight, const float* partial, int64_t nblocks, int G) {
  __shared__ float range_sums[kSumRanges][kSumColumns];
  const int tx = threadIdx.x % kSumColumns, ty = threadIdx.x / kSumColumns;
  const int j = blockIdx.x * kSumColumns + tx;
  const int64_t per_range = (nblocks + kSumRanges - 1) / kSumRanges;
  const int64_t b_begin = ty * per_range, b_end = b_begin + per_range < nblocks ? b_begin + per_range : nblocks;
  float s = 0.0f;
  if (j < G) {
    for (int64_t b = b_begin; b < b_end; ++b) s += partial[b * G + j];
  }
  range_sums[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && j < G) {
    float total = 0.0f;
    for (int r = 0; r < kSumRanges; ++r) total += range_sums[r][tx];
    dweight[j] += total;
  }
}

bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

int checked_channels(const char* op, int64_t C) {
  OM_CHECK(C < (int64_t{1} << 31), "%s (cuda): C=%ld channels exceed the kernel's int range", op,
           static_cast<long>(C));
  return static_cast<int>(C);
}

// The pack width W of a row of C channels of T, and whether the pointers allow 128-bit accesses (kVector).
struct Packing {
  bool packed, vector;
};
template <typename T>
Packing packing(int C, std::initializer_list<const void*> activations, const float* weight, NormKind kind) {
  constexpr int kW = kPackWidth<T>;
  const bool packed = C % kW == 0;
  bool vector = packed && (kind == NormKind::kRmsNormS || aligned_to(weight, sizeof(Pack<float, kW>)));
  for (const void* p : activations) vector = vector && aligned16(p);
  return {packed, vector};
}

template <typename T, int W, bool kVector>
void launch_forward(const RmsNormForwardArgs& a, int64_t N, int C, cudaStream_t s) {
  const int64_t blocks = ceil_div(N, kForwardThreads / kWarpSize);
  rmsnorm_forward_warp_per_row<T, W, kVector><<<static_cast<unsigned>(blocks), kForwardThreads, 0, s>>>(
      a.out.data_as<T>(), a.rstd.data_as<float>(), a.inp.data_as<const T>(), a.weight.data_as<const float>(), N, C,
      a.kind, a.eps);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void forward_impl(const RmsNormForwardArgs& a, Stream stream) {
  const int64_t N = a.inp.dim(0);
  const int C = checked_channels("rmsnorm_forward", a.inp.dim(1));
  if (N == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  constexpr int kW = kPackWidth<T>;
  const Packing pk = packing<T>(C, {a.out.data, a.inp.data}, a.weight.data_as<const float>(), a.kind);
  if (!pk.packed) return launch_forward<T, 1, false>(a, N, C, s);
  if (pk.vector) return launch_forward<T, kW, true>(a, N, C, s);
  launch_forward<T, kW, false>(a, N, C, s);
}

// The backward's block: warps (<= 8) and their shared memory, C floats each (kRmsNorm) or one (kRmsNormS).
struct BackwardBlock {
  int warps;
  int64_t shared_bytes;
};
BackwardBlock backward_block(int C, NormKind kind) {
  const int64_t row_bytes = kind == NormKind::kRmsNormS ? int64_t{sizeof(float)} : int64_t{C} * int64_t{sizeof(float)};
  const int warps = static_cast<int>(std::clamp<int64_t>(kDefaultSharedBytes / row_bytes, 1, kMaxBackwardWarps));
  return {warps, warps * row_bytes};
}

template <typename T, int W, bool kVector>
void launch_backward(const RmsNormBackwardArgs& a, float* partial, int64_t N, int C, cudaStream_t s) {
  const BackwardBlock blk = backward_block(C, a.kind);
  const auto kernel = rmsnorm_backward_warp_per_row<T, W, kVector>;
  if (blk.shared_bytes > kDefaultSharedBytes) {  // C > 12288 channels: one warp, more than the default
    OM_CHECK(blk.shared_bytes <= kMaxSharedBytes,
             "rmsnorm_backward (cuda): C = %d channels need %ld bytes of shared memory for their weight-gradient "
             "sums; the kernel allows %ld (C <= %ld)",
             C, static_cast<long>(blk.shared_bytes), static_cast<long>(kMaxSharedBytes),
             static_cast<long>(kMaxSharedBytes / sizeof(float)));
    static std::atomic<uint64_t> done{0};  // per kernel instance: opted in to the most it may take
    opt_in_dynamic_smem(done, static_cast<int>(kMaxSharedBytes), {kernel});
  }
  const int64_t nblocks = ceil_div(N, kRowsPerWarp * blk.warps);
  kernel<<<static_cast<unsigned>(nblocks), blk.warps * kWarpSize, static_cast<size_t>(blk.shared_bytes), s>>>(
      a.dinp.data_as<T>(), partial, a.dout.data_as<const T>(), a.inp.data_as<const T>(),
      a.weight.data_as<const float>(), a.rstd.data_as<const float>(), N, C, a.kind,
      a.dinp_mode == WriteMode::kAccumulate);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void backward_impl(const RmsNormBackwardArgs& a, Stream stream) {
  const int64_t N = a.inp.dim(0);
  const int C = checked_channels("rmsnorm_backward", a.inp.dim(1));
  if (N == 0 || C == 0) return;  // no rows (or no channels): dinp is empty and dweight += 0
  const cudaStream_t s = to_cuda_stream(stream);
  const int G = a.kind == NormKind::kRmsNormS ? 1 : C;
  const int64_t nblocks = ceil_div(N, kRowsPerWarp * backward_block(C, a.kind).warps);
  // Per-call scratch for the partials: stream-ordered (Buffer::AllocateScratch), so it is freed
  // after the kernels below on `s` without the host waiting for them.
  Buffer partial = Buffer::AllocateScratch(a.inp.device, stream, static_cast<size_t>(nblocks * G) * sizeof(float),
                                           "rmsnorm_backward.dweight_partials");
  float* pg = static_cast<float*>(partial.data());
  constexpr int kW = kPackWidth<T>;
  const Packing pk =
      packing<T>(C, {a.dinp.data, a.dout.data, a.inp.data}, a.weight.data_as<const float>(), a.kind);
  if (!pk.packed) {
    launch_backward<T, 1, false>(a, pg, N, C, s);
  } else if (pk.vector) {
    launch_backward<T, kW, true>(a, pg, N, C, s);
  } else {
    launch_backward<T, kW, false>(a, pg, N, C, s);
  }
  rmsnorm_dweight_sum_partials<<<static_cast<unsigned>(ceil_div(G, kSumColumns)), kSumColumns * kSumRanges, 0, s>>>(
      a.dweight.data_as<float>(), pg, nblocks, G);
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void rmsnorm_forward(const RmsNormForwardArgs& a, Stream stream) {
  switch (a.inp.dtype) {
    case DType::kF32: return forward_impl<float>(a, stream);
    case DType::kBF16: return forward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("rmsnorm_forward", a.inp);
  }
}

void rmsnorm_backward(const RmsNormBackwardArgs& a, Stream stream) {
  switch (a.inp.dtype) {
    case DType::kF32: return backward_impl<float>(a, stream);
    case DType::kBF16: return backward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("rmsnorm_backward", a.inp);
  }
}

}  // namespace om::cuda
