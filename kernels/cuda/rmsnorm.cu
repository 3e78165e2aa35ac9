// CUDA RMSNorm / RMSNorm-S (kernels/rmsnorm.h): bf16 or f32 activations, f32 weight and rstd,
// f32 arithmetic throughout.
//   forward   rmsnorm_forward_warp_per_row: one warp per row; the sum of squares is a warp sum.
//   backward  rmsnorm_backward_block_per_rows: one block per kBackwardRowsPerBlock consecutive rows
//             writes dinp (=, or += with WriteMode::kAccumulate: the input gradient rounded to the
//             activation dtype, then added as residual.cu adds) and this row block's dweight partial
//             into a scratch buffer; then
//             rmsnorm_dweight_sum_partials adds the partials, in row-block order, into dweight (+=).
// Both passes are deterministic: every sum has a fixed order (no float atomics), so two runs on
// the same inputs give the same bits. Arguments were validated by kernels/rmsnorm.cc.
#include "core/buffer.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/rmsnorm.h"

namespace om::cuda {
namespace {

constexpr int kForwardThreads = 256;  // 8 warps: 8 rows per block
constexpr int kBackwardThreads = 256;
// Rows per backward block: enough rows that the partial buffer stays small (N/32 rows of C floats),
// few enough that a training batch (N = B*T in the thousands) still fills the GPU with blocks.
constexpr int64_t kBackwardRowsPerBlock = 32;
constexpr int kSumThreads = 256;

// out[n, c] = inp[n, c] * rstd[n] * g, in the CPU reference's order ((x * r) * g).
template <typename T>
__global__ void __launch_bounds__(kForwardThreads)
    rmsnorm_forward_warp_per_row(T* out, float* rstd, const T* inp, const float* weight, int64_t N, int C,
                                 NormKind kind, float eps) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (kForwardThreads / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (n >= N) return;  // the whole warp leaves together, so warp_sum below sees 32 active lanes
  const T* x = inp + n * C;
  T* y = out + n * C;
  float ss = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float v = load_f32(x + c);
    ss += v * v;
  }
  ss = warp_sum(ss);
  // 1/sqrtf (correctly rounded without --use_fast_math) rather than rsqrtf (up to 2 ulp).
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if (lane == 0) rstd[n] = r;
  const bool shared_gain = kind == NormKind::kRmsNormS;
  for (int c = lane; c < C; c += kWarpSize) store_f32(y + c, load_f32(x + c) * r * weight[shared_gain ? 0 : c]);
}

// For one row, with xh = x * r and gd = g * dy (the CPU reference's formulas):
//   dx[c] = r * (gd[c] - xh[c] * mean_j(gd[j] * xh[j]))                        written (=)
//   partial[blk, c] = sum over this block's rows of dy * xh    (kRmsNorm: G = C partials per block)
//   partial[blk]    = sum over this block's rows and channels  (kRmsNormS: G = 1)
// Each thread owns the channels c = threadIdx.x + k * blockDim.x, so its partial[blk, c] entries
// are read and written by that thread only, in row order: no races and a fixed summation order.
template <typename T>
__global__ void __launch_bounds__(kBackwardThreads)
    rmsnorm_backward_block_per_rows(T* dinp, float* partial, const T* dout, const T* inp, const float* weight,
                                    const float* rstd, int64_t N, int C, NormKind kind, bool accumulate) {
  __shared__ float scratch[kWarpSize];
  const bool shared_gain = kind == NormKind::kRmsNormS;
  const int64_t blk = blockIdx.x;
  const int64_t row_begin = blk * kBackwardRowsPerBlock;
  const int64_t row_end = row_begin + kBackwardRowsPerBlock < N ? row_begin + kBackwardRowsPerBlock : N;
  float* pg = partial + (shared_gain ? blk : blk * C);  // this block's partials
  if (!shared_gain) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) pg[c] = 0.0f;
  }
  float shared_acc = 0.0f;  // kRmsNormS: this thread's share of the one gain's partial
  for (int64_t n = row_begin; n < row_end; ++n) {
    const T* x = inp + n * C;
    const T* dy = dout + n * C;
    T* dx = dinp + n * C;
    const float r = rstd[n];
    float dot = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float xh = load_f32(x + c) * r;
      const float gd = load_f32(dy + c) * weight[shared_gain ? 0 : c];
      dot += gd * xh;
    }
    // The loop bounds are uniform across the block, so every thread reaches this block_sum.
    const float mean_dot = block_sum(dot, scratch) / static_cast<float>(C);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float dyc = load_f32(dy + c);
      const float xh = load_f32(x + c) * r;
      const float gd = dyc * weight[shared_gain ? 0 : c];
      const float v = r * (gd - xh * mean_dot);
      if (accumulate) {
        T rounded;  // v in the activation dtype, as a separate pass would have stored it
        store_f32(&rounded, v);
        store_f32(dx + c, load_f32(dx + c) + load_f32(&rounded));
      } else {
        store_f32(dx + c, v);
      }
      if (shared_gain) {
        shared_acc += dyc * xh;
      } else {
        pg[c] += dyc * xh;
      }
    }
  }
  if (shared_gain) {
    const float total = block_sum(shared_acc, scratch);
    if (threadIdx.x == 0) pg[0] = total;
  }
}

// dweight[j] += sum over row blocks b = 0, 1, ... of partial[b, j], summed serially in b order.
__global__ void __launch_bounds__(kSumThreads)
    rmsnorm_dweight_sum_partials(float* dweight, const float* partial, int64_t nblocks, int G) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= G) return;
  float s = 0.0f;
  for (int64_t b = 0; b < nblocks; ++b) s += partial[b * G + j];
  dweight[j] += s;
}

int checked_channels(const char* op, int64_t C) {
  OM_CHECK(C < (int64_t{1} << 31), "%s (cuda): C=%ld channels exceed the kernel's int range", op,
           static_cast<long>(C));
  return static_cast<int>(C);
}

template <typename T>
void forward_impl(const RmsNormForwardArgs& a, Stream stream) {
  const int64_t N = a.inp.dim(0);
  const int C = checked_channels("rmsnorm_forward", a.inp.dim(1));
  if (N == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  const int64_t blocks = ceil_div(N, kForwardThreads / kWarpSize);
  rmsnorm_forward_warp_per_row<T><<<static_cast<unsigned>(blocks), kForwardThreads, 0, s>>>(
      a.out.data_as<T>(), a.rstd.data_as<float>(), a.inp.data_as<const T>(), a.weight.data_as<const float>(), N, C,
      a.kind, a.eps);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void backward_impl(const RmsNormBackwardArgs& a, Stream stream) {
  const int64_t N = a.inp.dim(0);
  const int C = checked_channels("rmsnorm_backward", a.inp.dim(1));
  if (N == 0 || C == 0) return;  // no rows (or no channels): dinp is empty and dweight += 0
  const cudaStream_t s = to_cuda_stream(stream);
  const int G = a.kind == NormKind::kRmsNormS ? 1 : C;
  const int64_t nblocks = ceil_div(N, kBackwardRowsPerBlock);
  // Per-call scratch for the partials: stream-ordered (Buffer::AllocateScratch), so it is freed
  // after the kernels below on `s` without the host waiting for them.
  Buffer partial = Buffer::AllocateScratch(a.inp.device, stream, static_cast<size_t>(nblocks * G) * sizeof(float),
                                           "rmsnorm_backward.dweight_partials");
  float* pg = static_cast<float*>(partial.data());
  rmsnorm_backward_block_per_rows<T><<<static_cast<unsigned>(nblocks), kBackwardThreads, 0, s>>>(
      a.dinp.data_as<T>(), pg, a.dout.data_as<const T>(), a.inp.data_as<const T>(), a.weight.data_as<const float>(),
      a.rstd.data_as<const float>(), N, C, a.kind, a.dinp_mode == WriteMode::kAccumulate);
  OM_CUDA_CHECK_KERNEL(s);
  rmsnorm_dweight_sum_partials<<<static_cast<unsigned>(ceil_div(G, kSumThreads)), kSumThreads, 0, s>>>(
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
