// CUDA rotary position embedding (kernels/rope.h), rotate-half pairing, in place on bf16 or f32
// (B, T, Hx, D) tensors; heads >= n_rot_heads are never read or written.
//   1. rope_cos_sin_table: cos(t freq_i), sin(t freq_i) for every position t < T and i < D/2, made once per
//      process (rope_cos_sin_table_cached; T D doubles: 128 KiB for T = 256, D = 64).
//   2. rope_rotate_packed: one thread per pack of W consecutive pairs (i in [i0, i0 + W), the channels
//      [i0, i0 + W) and [D/2 + i0, D/2 + i0 + W)) of one rotated head of one (b, t) row, W = kPackWidth<T>
//      (16 bytes) when W divides D/2, else 1; 128-bit accesses when x is 16-byte aligned (kVector). Every
//      element's arithmetic is the same whatever W and kVector: the same bits.
// The arithmetic is the header's and the CPU reference's: freq_i = theta^(-2i/D), the angle, its
// cos and sin and the rotation all in double (CUDA's pow/sin/cos: <= 2 ulp of double), each
// output rounded once from double to the dtype. The rotation uses __dmul_rn/__dadd_rn so nvcc
// does not contract it into FMAs: the same roundings as the reference's x0 c - x1 s.
// Cost: the pass is memory-bound (read and write the rotated heads once, 16 bytes per access); the table's
// T D/2 pow + sincos in double are one small launch per process, its reads hit L1/L2. Element-wise, so
// deterministic.
// The per-element arithmetic is rope.cuh's, which the tensor-core attention backward shares (it rotates dq
// and dk as it stores them, from the same table): the same bits. Arguments were validated by kernels/rope.cc.
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "core/buffer.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/rope.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // 1M threads: several waves of an H100/H200; larger inputs loop

__device__ __forceinline__ double load_f64(const float* p) { return static_cast<double>(*p); }
__device__ __forceinline__ double load_f64(const __nv_bfloat16* p) {
  return static_cast<double>(__bfloat162float(*p));
}
// One rounding from double to the dtype (round to nearest even), as static_cast<float> on the CPU.
__device__ __forceinline__ void store_f64(float* p, double v) { *p = __double2float_rn(v); }
__device__ __forceinline__ void store_f64(__nv_bfloat16* p, double v) { *p = __double2bfloat16(v); }

// Pack p of the npacks = B T n_rot_heads (D/2)/W packs, in (row = b T + t, head, i0) order; cos_sin is
// rope_cos_sin_table's (T, D/2) pairs. sign = +1 rotates by +t freq_i (forward), -1 by -t freq_i
// (backward: R(t)^T = R(-t)). REQUIRES: npacks < 2^31 (checked by the caller), so the index
// arithmetic below is 32-bit.
template <typename T, int W, bool kVector>
__global__ void __launch_bounds__(kThreads)
    rope_rotate_packed(T* x, const double* cos_sin, uint32_t npacks, uint32_t Tn, int64_t Hx, int D,
                       uint32_t n_rot_heads, double sign) {
  const uint32_t half = static_cast<uint32_t>(D) / 2, per_head = half / W, per_row = n_rot_heads * per_head;
  const uint32_t stride = gridDim.x * kThreads;
  for (uint32_t p = blockIdx.x * kThreads + threadIdx.x; p < npacks; p += stride) {
    const uint32_t row = p / per_row, rem = p - row * per_row;
    const uint32_t h = rem / per_head, i0 = (rem - h * per_head) * W;
    const uint32_t t = row % Tn;
    T* xh = x + (static_cast<int64_t>(row) * Hx + h) * D;
    Pack<T, W> lo = load_pack<W, kVector>(xh + i0), hi = load_pack<W, kVector>(xh + half + i0);
    // (cos, sin) of pair i0 + j: 16-byte aligned (the table is, and every entry is 16 bytes).
    const double2* cs = reinterpret_cast<const double2*>(cos_sin) + static_cast<int64_t>(t) * half + i0;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const double2 c = cs[j];
      double y0, y1;
      rope_rotate(load_f64(&lo.v[j]), load_f64(&hi.v[j]), c.x, sign * c.y, y0, y1);
      store_f64(&lo.v[j], y0);
      store_f64(&hi.v[j], y1);
    }
    store_pack<W, kVector>(xh + i0, lo);
    store_pack<W, kVector>(xh + half + i0, hi);
  }
}

__global__ void __launch_bounds__(kThreads) rope_cos_sin_table_kernel(double* cos_sin, int64_t n, int D, double theta) {
  const int half = D / 2;
  for (int64_t k = blockIdx.x * int64_t{kThreads} + threadIdx.x; k < n; k += int64_t{gridDim.x} * kThreads) {
    rope_cos_sin(k / half, static_cast<int>(k % half), D, theta, cos_sin[2 * k], cos_sin[2 * k + 1]);
  }
}

template <typename T, int W, bool kVector>
void launch_rotate(const RopeArgs& a, const double* table, int64_t npacks, double sign, cudaStream_t s) {
  rope_rotate_packed<T, W, kVector><<<grid_blocks(npacks, kThreads, kMaxBlocks), kThreads, 0, s>>>(
      a.x.data_as<T>(), table, static_cast<uint32_t>(npacks), static_cast<uint32_t>(a.x.dim(1)), a.x.dim(2),
      static_cast<int>(a.x.dim(3)), static_cast<uint32_t>(a.n_rot_heads), sign);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void rotate_impl(const char* op, const RopeArgs& a, double sign, Stream stream) {
  const int64_t B = a.x.dim(0), Tn = a.x.dim(1), D = a.x.dim(3);
  if (B == 0 || Tn == 0 || a.n_rot_heads == 0) return;  // nothing to rotate (and no zero-sized grid)
  constexpr int kW = kPackWidth<T>;
  const int64_t half = D / 2;
  const bool packed = half % kW == 0;
  const int64_t npacks = B * Tn * a.n_rot_heads * (packed ? half / kW : half);
  OM_CHECK(npacks < (int64_t{1} << 31), "%s (cuda): '%s' %s has %ld rotated packs; the kernel indexes < 2^31", op,
           a.x.name, a.x.shape.ToString().c_str(), static_cast<long>(npacks));
  const cudaStream_t s = to_cuda_stream(stream);
  Buffer scratch;  // only inside a CUDA graph capture that finds no table made yet
  const double* cs =
      rope_cos_sin_table_cached(Tn, static_cast<int>(D), static_cast<double>(a.theta), a.x.device, stream, &scratch);
  if (!packed) return launch_rotate<T, 1, false>(a, cs, npacks, sign, s);
  if (aligned16(a.x.data)) return launch_rotate<T, kW, true>(a, cs, npacks, sign, s);
  launch_rotate<T, kW, false>(a, cs, npacks, sign, s);
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

const double* rope_cos_sin_table_cached(int64_t T, int D, double theta, Device device, Stream stream,
                                        Buffer* scratch) {
  const cudaStream_t s = to_cuda_stream(stream);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  OM_CUDA_CHECK(cudaStreamIsCapturing(s, &capture));
  int current_device = 0;
  OM_CUDA_CHECK(cudaGetDevice(&current_device));
  using Key = std::tuple<int, int64_t, int, double>;
  static std::mutex mu;
  static auto* tables = new std::map<Key, double*>();  // never freed (rope.cuh)
  std::lock_guard<std::mutex> lock(mu);
  const Key key{current_device, T, D, theta};
  if (const auto it = tables->find(key); it != tables->end()) return it->second;
  const size_t bytes = static_cast<size_t>(T * D) * sizeof(double);
  if (capture != cudaStreamCaptureStatusNone) {
    *scratch = Buffer::AllocateScratch(device, stream, bytes, "rope.cos_sin (in a graph capture)");
    rope_cos_sin_table(static_cast<double*>(scratch->data()), T, D, theta, s);
    return static_cast<const double*>(scratch->data());
  }
  double* table = nullptr;
  OM_CUDA_CHECK(cudaMalloc(&table, bytes));
  rope_cos_sin_table(table, T, D, theta, s);
  OM_CUDA_CHECK(cudaStreamSynchronize(s));  // readable from any stream from now on
  tables->emplace(key, table);
  return table;
}

void rope_forward(const RopeArgs& a, Stream stream) { rotate("rope_forward", a, 1.0, stream); }
void rope_backward(const RopeArgs& a, Stream stream) { rotate("rope_backward", a, -1.0, stream); }

}  // namespace om::cuda
