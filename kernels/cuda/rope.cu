// CUDA rotary position embedding (kernels/rope.h), rotate-half pairing, in place on bf16 or f32
// (B, T, Hx, D) tensors; heads >= n_rot_heads are never read or written.
//   rope_rotate_per_position: one block per (position t, group of kBatchRowsPerBlock batch rows).
//   Its threads first fill a shared table of cos(t freq_i), +-sin(t freq_i) for i in [0, D/2), then
//   rotate the (head, i) pairs of those rows, consecutive threads on consecutive i (coalesced).
// The arithmetic is the header's and the CPU reference's: freq_i = theta^(-2i/D), the angle, its
// cos and sin and the rotation all in double (CUDA's pow/sin/cos: <= 2 ulp of double), each
// output rounded once from double to the dtype. The rotation uses __dmul_rn/__dadd_rn so nvcc
// does not contract it into FMAs: the same roundings as the reference's x0 c - x1 s.
// Cost: the table (D/2 pow + sincos in double) is built once per block and shared by
// kBatchRowsPerBlock * n_rot_heads head rows; the pass itself is memory-bound (read and write the
// rotated heads once). Element-wise, so deterministic. Arguments were validated by kernels/rope.cc.
// The per-element arithmetic is rope.cuh's, which the tensor-core attention backward shares (it
// rotates dq and dk as it stores them, from rope_cos_sin_table's (T, D/2) table): the same bits.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/rope.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
// Batch rows per block that share one position's table: amortizes the table 4x while a training
// batch (B*T/4 blocks, thousands) still fills the GPU.
constexpr int64_t kBatchRowsPerBlock = 4;
constexpr int64_t kMaxGridY = 65535;
// The table is 2 * (D/2) doubles of dynamic shared memory; 48 KiB is the default per-block limit.
constexpr int64_t kMaxSharedBytes = 48 * 1024;

__device__ __forceinline__ double load_f64(const float* p) { return static_cast<double>(*p); }
__device__ __forceinline__ double load_f64(const __nv_bfloat16* p) {
  return static_cast<double>(__bfloat162float(*p));
}
// One rounding from double to the dtype (round to nearest even), as static_cast<float> on the CPU.
__device__ __forceinline__ void store_f64(float* p, double v) { *p = __double2float_rn(v); }
__device__ __forceinline__ void store_f64(__nv_bfloat16* p, double v) { *p = __double2bfloat16(v); }

// sign = +1 rotates by +t freq_i (forward), -1 by -t freq_i (backward: R(t)^T = R(-t)).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    rope_rotate_per_position(T* x, int64_t B, int64_t Tn, int64_t Hx, int D, int64_t n_rot_heads, double theta,
                             double sign) {
  extern __shared__ double table[];  // cos in [0, D/2), sign * sin in [D/2, D)
  const int half = D / 2;
  const int64_t t = blockIdx.x;
  double* cos_t = table;
  double* sin_t = table + half;
  for (int i = threadIdx.x; i < half; i += kThreads) {
    double c, s;
    rope_cos_sin(t, i, D, theta, c, s);
    cos_t[i] = c;
    sin_t[i] = sign * s;
  }
  __syncthreads();
  const int64_t b_begin = static_cast<int64_t>(blockIdx.y) * kBatchRowsPerBlock;
  const int64_t b_end = b_begin + kBatchRowsPerBlock < B ? b_begin + kBatchRowsPerBlock : B;
  const int64_t pairs = n_rot_heads * half;  // (head, i) pairs to rotate per row
  for (int64_t b = b_begin; b < b_end; ++b) {
    T* row = x + (b * Tn + t) * Hx * D;
    for (int64_t p = threadIdx.x; p < pairs; p += kThreads) {
      const int64_t h = p / half;
      const int i = static_cast<int>(p - h * half);
      T* xh = row + h * D;
      double y0, y1;
      rope_rotate(load_f64(xh + i), load_f64(xh + i + half), cos_t[i], sin_t[i], y0, y1);
      store_f64(xh + i, y0);
      store_f64(xh + i + half, y1);
    }
  }
}

__global__ void __launch_bounds__(kThreads) rope_cos_sin_table_kernel(double* cos_sin, int64_t n, int D, double theta) {
  const int half = D / 2;
  for (int64_t k = blockIdx.x * int64_t{kThreads} + threadIdx.x; k < n; k += int64_t{gridDim.x} * kThreads) {
    rope_cos_sin(k / half, static_cast<int>(k % half), D, theta, cos_sin[2 * k], cos_sin[2 * k + 1]);
  }
}

template <typename T>
void rotate_impl(const char* op, const RopeArgs& a, double sign, Stream stream) {
  const int64_t B = a.x.dim(0), Tn = a.x.dim(1), Hx = a.x.dim(2), D = a.x.dim(3);
  if (B == 0 || Tn == 0 || a.n_rot_heads == 0) return;  // nothing to rotate (and no zero-sized grid)
  const int64_t smem = D * static_cast<int64_t>(sizeof(double));
  OM_CHECK(smem <= kMaxSharedBytes, "%s (cuda): head dim D = %ld needs a %ld-byte table; the kernel allows %ld",
           op, static_cast<long>(D), static_cast<long>(smem), static_cast<long>(kMaxSharedBytes));
  const int64_t groups = ceil_div(B, kBatchRowsPerBlock);
  OM_CHECK(groups <= kMaxGridY && Tn < (int64_t{1} << 31), "%s (cuda): '%s' %s exceeds the launch grid", op,
           a.x.name, a.x.shape.ToString().c_str());
  const cudaStream_t s = to_cuda_stream(stream);
  const dim3 grid(static_cast<unsigned>(Tn), static_cast<unsigned>(groups));
  rope_rotate_per_position<T><<<grid, kThreads, static_cast<size_t>(smem), s>>>(
      a.x.data_as<T>(), B, Tn, Hx, static_cast<int>(D), a.n_rot_heads, static_cast<double>(a.theta), sign);
  OM_CUDA_CHECK_KERNEL(s);
}

void rotate(const char* op, const RopeArgs& a, double sign, Stream stream) {
  switch (a.x.dtype) {
    case DType::kF32: return rotate_impl<float>(op, a, sign, stream);
    case DType::kBF16: return rotate_impl<__nv_bfloat16>(op, a, sign, stream);
    default:
      fatal_error("dtype is bf16 or f32",
                  format_message("%s (cuda): '%s' is %s; the CUDA kernel takes bf16 or f32 activations", op,
                                 a.x.name, std::string(dtype_name(a.x.dtype)).c_str()),
                  __FILE__, __LINE__);
  }
}

}  // namespace

void rope_cos_sin_table(double* cos_sin, int64_t T, int D, double theta, cudaStream_t stream) {
  const int64_t n = T * (D / 2);
  OM_CHECK(D > 0 && D % 2 == 0 && n < (int64_t{1} << 31), "rope_cos_sin_table (cuda): T = %ld, D = %d",
           static_cast<long>(T), D);
  if (n == 0) return;
  rope_cos_sin_table_kernel<<<grid_blocks(n, kThreads, 1024), kThreads, 0, stream>>>(cos_sin, n, D, theta);
  OM_CUDA_CHECK_KERNEL(stream);
}

void rope_forward(const RopeArgs& a, Stream stream) { rotate("rope_forward", a, 1.0, stream); }
void rope_backward(const RopeArgs& a, Stream stream) { rotate("rope_backward", a, -1.0, stream); }

}  // namespace om::cuda
