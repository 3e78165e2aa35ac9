// CUDA sum of squares (kernels/sum_squares.h): out (1, f64) += sum_i x[i]^2 for bf16 or f32 x.
// Each square is formed in double, where it is exact (a 24-bit significand squared needs 48 bits),
// and every sum is a double sum in a fixed order, so the result is bit-identical from run to run,
// on any stream, wherever x lives:
//   1. sum_squares_block_partials: G blocks (G a function of numel only, at most kMaxBlocks) of
//      kThreads threads. Thread i of the grid takes packs p = i, i + G*kThreads, ... of W = 16 bytes /
//      sizeof(T) consecutive elements and adds their squares in element order; the numel % W tail
//      element j goes to thread j after its packs. A block sums its threads in a fixed tree (warp
//      butterflies, then the warp totals in warp order) into partial[block].
//   2. sum_squares_final: one block adds partial[0..G) (thread t: t, t + kThreads, ... in order, then
//      the same fixed tree) and adds the total into out[0].
// With G = 1 pass 1 adds its one block total into out[0] directly and pass 2 is skipped: the same
// bits (pass 2 would add the lone partial to exact zeros), and no scratch for small tensors.
// The pack layout decides the order of the additions; whether a pack is read with one 128-bit load
// (x 16-byte aligned) or W scalar loads does not change it.
// Scratch for G > 1: a per-call Buffer of G doubles, freed after a stream synchronization, as in
// kernels/cuda/rmsnorm.cu until ExecContext carries a workspace. Arguments were validated by
// kernels/sum_squares.cc.
#include <cstdint>

#include "core/buffer.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/sum_squares.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
// 1024 blocks x 256 threads = 262144 threads, about one full wave of an H100/H200 (132 SMs x 2048):
// enough loads in flight to stream x at memory bandwidth, and few enough partials for one block.
constexpr int64_t kMaxBlocks = 1024;

// block_reduce (cuda_common.cuh) in f64. REQUIRES: blockDim.x == kThreads; every thread calls it.
__device__ __forceinline__ double block_sum_f64(double v) {
  __shared__ double scratch[kThreads / kWarpSize];
  return block_reduce(v, scratch, 0.0, AddOp{});
}

// dst[blockIdx.x] = this block's sum; with `accumulate` (the one-block case) dst[0] += it instead.
template <typename T, bool kVectorLoads>
__global__ void __launch_bounds__(kThreads)
    sum_squares_block_partials(double* dst, bool accumulate, const T* x, int64_t n) {
  constexpr int W = kPackWidth<T>;
  using P = Pack<T, W>;
  const int64_t npacks = n / W;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  double s = 0.0;
  for (int64_t p = tid; p < npacks; p += stride) {
    if constexpr (kVectorLoads) {
      const P pk = reinterpret_cast<const P*>(x)[p];
#pragma unroll
      for (int j = 0; j < W; ++j) {
        const double v = load_f32(&pk.v[j]);
        s += v * v;
      }
    } else {
#pragma unroll
      for (int j = 0; j < W; ++j) {
        const double v = load_f32(x + p * W + j);
        s += v * v;
      }
    }
  }
  if (tid < n - npacks * W) {  // the < W tail elements
    const double v = load_f32(x + npacks * W + tid);
    s += v * v;
  }
  s = block_sum_f64(s);
  if (threadIdx.x == 0) {
    if (accumulate) {
      dst[0] += s;
    } else {
      dst[blockIdx.x] = s;
    }
  }
}

__global__ void __launch_bounds__(kThreads) sum_squares_final(double* out, const double* partial, int nblocks) {
  double s = 0.0;
  for (int b = threadIdx.x; b < nblocks; b += kThreads) s += partial[b];
  s = block_sum_f64(s);
  if (threadIdx.x == 0) out[0] += s;
}

template <typename T>
void launch_partials(double* dst, bool accumulate, const T* x, int64_t n, int64_t blocks, cudaStream_t s) {
  if (aligned16(x)) {
    sum_squares_block_partials<T, true><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(dst, accumulate, x, n);
  } else {
    sum_squares_block_partials<T, false><<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(dst, accumulate, x, n);
  }
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void sum_squares_impl(const SumSquaresArgs& a, Stream stream) {
  const int64_t n = a.x.numel();
  if (n == 0) return;  // adds 0
  const cudaStream_t s = to_cuda_stream(stream);
  const T* x = a.x.data_as<const T>();
  double* out = a.out.data_as<double>();
  // One thread per pack (or tail element) until the grid reaches kMaxBlocks; then threads loop.
  const int64_t work = n / kPackWidth<T> > 0 ? n / kPackWidth<T> : 1;
  const int64_t blocks = grid_blocks(work, kThreads, kMaxBlocks);
  if (blocks == 1) return launch_partials<T>(out, true, x, n, 1, s);
  // Stream-ordered scratch: freed after the kernels below on `s`, without the host waiting.
  Buffer partial = Buffer::AllocateScratch(a.x.device, stream, static_cast<size_t>(blocks) * sizeof(double),
                                           "sum_squares.block_partials");
  double* pd = static_cast<double*>(partial.data());
  launch_partials<T>(pd, false, x, n, blocks, s);
  sum_squares_final<<<1, kThreads, 0, s>>>(out, pd, static_cast<int>(blocks));
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void sum_squares(const SumSquaresArgs& a, Stream stream) {
  switch (a.x.dtype) {
    case DType::kF32: return sum_squares_impl<float>(a, stream);
    case DType::kBF16: return sum_squares_impl<__nv_bfloat16>(a, stream);
    default:
      fatal_error("dtype is bf16 or f32",
                  format_message("sum_squares (cuda): '%s' is %s; the CUDA kernel takes bf16 or f32", a.x.name,
                                 std::string(dtype_name(a.x.dtype)).c_str()),
                  __FILE__, __LINE__);
  }
}

}  // namespace om::cuda
