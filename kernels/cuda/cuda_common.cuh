// Small helpers shared by the CUDA kernels in kernels/cuda/: the stream handle, f32 loads and
// stores of bf16/f32 elements, deterministic warp and block sums, and the launch check.
// Kernels compute in f32 whatever the element type (kernels/README.md, "Precision").
// REQUIRES: included only from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "core/cuda_check.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/check.h"
#include "core/tensor.h"

namespace om {

// Lets TensorView::data_as<__nv_bfloat16>() check the dtype like any other element type.
template <>
struct DTypeOf<__nv_bfloat16> {
  static constexpr DType value = DType::kBF16;
};

namespace cuda {

inline constexpr int kWarpSize = 32;
inline constexpr unsigned kFullWarpMask = 0xffffffffu;

inline cudaStream_t to_cuda_stream(Stream stream) { return static_cast<cudaStream_t>(stream.handle); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride launch: one thread per unit of `work` until the grid reaches max_blocks, after which
// threads loop. work >= 1 (a zero-sized grid is a launch error; callers return early on empty inputs).
inline unsigned grid_blocks(int64_t work, int64_t threads, int64_t max_blocks) {
  const int64_t blocks = ceil_div(work, threads);
  return static_cast<unsigned>(blocks < max_blocks ? blocks : max_blocks);
}

// Grouped calls ("multi-tensor apply": kernels/adamw.h, kernels/cast.h) pass their entries in the kernel's
// arguments with end[k] = the entries' element counts summed through k (inclusive), so the group is one
// flat index space [0, end[count - 1]) that a grid-stride loop walks.
// Host: sets slot k's end from the slots before it.
inline void group_add_end(int64_t* end, int k, int64_t n) { end[k] = (k == 0 ? 0 : end[k - 1]) + n; }
// Device: advances the thread's entry cursor e to the entry holding flat index i (i never decreases between
// calls, so e moves at most count times over the loop) and returns i's index inside that entry.
__device__ __forceinline__ int64_t group_index(const int64_t* end, int64_t i, int& e) {
  while (i >= end[e]) ++e;
  return e == 0 ? i : i - end[e - 1];
}

// OM_SYNC_DEBUG=1 (STYLE.md §5): synchronize after every launch (core/device.h cuda_sync_debug).
inline bool sync_debug() { return cuda_sync_debug(); }

__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
// Round to nearest even, the same rounding as the host's float_to_bf16_bits (core/dtype.h).
__device__ __forceinline__ void store_f32(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
// kernels/cast.h's f32 -> bf16 on raw bits, equal to the host's float_to_bf16_bits (core/dtype.h) for every
// input: round to nearest even, and a NaN keeps its sign and top payload bits with the quiet bit set.
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) {
  const uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// W consecutive elements moved as one aligned access (W = kPackWidth<T>: 16 bytes, one 128-bit load or store).
template <typename T, int W>
struct alignas(sizeof(T) * W) Pack {
  T v[W];
};
template <typename T>
inline constexpr int kPackWidth = 16 / static_cast<int>(sizeof(T));
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The W elements at p as a Pack: one vector access (kVector; REQUIRES: p aligned to sizeof(Pack<T, W>)) or W
// element accesses. Both move the same values, so a kernel's results do not depend on which it took.
template <int W, bool kVector, typename T>
__device__ __forceinline__ Pack<T, W> load_pack(const T* p) {
  if constexpr (kVector) {
    return *reinterpret_cast<const Pack<T, W>*>(p);
  } else {
    Pack<T, W> r;
#pragma unroll
    for (int j = 0; j < W; ++j) r.v[j] = p[j];
    return r;
  }
}
template <int W, bool kVector, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, W>& v) {
  if constexpr (kVector) {
    *reinterpret_cast<Pack<T, W>*>(p) = v;
  } else {
#pragma unroll
    for (int j = 0; j < W; ++j) p[j] = v.v[j];
  }
}

// Opts `kernels` in to `bytes` of dynamic shared memory (required above the default 48 KiB) on the current
// device, once per device for each `done` (the caller's static: bit d is set once device d has opted in;
// devices past 63 opt in at every call) rather than before every launch: the runtime call may wait for the
// device's copies in flight (oneapi-src/unified-runtime#2678 reports cuFuncSetAttribute doing so).
template <typename Kernel>
void opt_in_dynamic_smem(std::atomic<uint64_t>& done, int bytes, std::initializer_list<Kernel> kernels) {
  int device = 0;
  OM_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if ((done.load(std::memory_order_acquire) & bit) != 0) return;
  for (Kernel kernel : kernels) {
    OM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  }
  done.fetch_or(bit, std::memory_order_release);
}

// Reduction with a commutative operation over the 32 lanes of a warp; every lane returns the same
// bits (a butterfly: at each step a lane and its partner combine the same two values, and IEEE
// addition and fmax are commutative). REQUIRES: all 32 lanes active.
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(kFullWarpMask, v, offset));
  return v;
}

// The same over the whole block in a fixed order (warp results, then the warp results in warp
// order), so the result is bit-identical from run to run; every thread returns it. `identity` pads
// the missing warps (0 for sums, −inf for maxima).
// REQUIRES: blockDim.x a multiple of 32 and <= 1024; every thread of the block calls it;
// `scratch` is __shared__ T[32] and may be reused by the next call.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T* scratch, T identity, Op op) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int nwarps = blockDim.x / kWarpSize;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call's readers are done with scratch
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  // Every warp reduces the same warp results in the same order, so no broadcast is needed.
  return warp_reduce(lane < nwarps ? scratch[lane] : identity, op);
}

struct AddOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
// fmaxf skips NaN, as the CPU references' std::max(m, x) does.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, AddOp{}); }
__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce(v, scratch, 0.0f, AddOp{}); }
__device__ __forceinline__ float block_max(float v, float* scratch) {
  return block_reduce(v, scratch, -INFINITY, MaxOp{});
}

// Fatal: `op`'s CUDA kernel got a tensor of a dtype it has no instantiation for; `what` names the
// tensor's role ("activations", "logits").
[[noreturn]] inline void unsupported_dtype(const char* op, const ConstTensorView& t, const char* what = "activations") {
  fatal_error("dtype is bf16 or f32",
              format_message("%s (cuda): '%s' is %s; the CUDA kernel takes bf16 or f32 %s", op, t.name,
                             std::string(dtype_name(t.dtype)).c_str(), what),
              __FILE__, __LINE__);
}

}  // namespace cuda
}  // namespace om

// After every kernel launch (STYLE.md §5): OM_CUDA_CHECK(cudaGetLastError()) catches a bad launch
// configuration at once; with OM_SYNC_DEBUG=1 the stream is also synchronized so a fault inside the
// kernel is reported here, at the statement that launched it.
#define OM_CUDA_CHECK_KERNEL(stream)                                       \
  do {                                                                     \
    OM_CUDA_CHECK(cudaGetLastError());                                     \
    if (::om::cuda::sync_debug()) OM_CUDA_CHECK(cudaStreamSynchronize(stream)); \
  } while (0)
