// The device side of the CUDA emulator (cuda_emu/README.md): force-included (g++ -include) into every
// kernels/cuda/*.cu after transform_cu.py has rewritten its launches, so the kernels' own source runs on
// the CPU. Provides what nvcc would: the execution-space keywords, threadIdx/blockIdx/blockDim/gridDim,
// __syncthreads/__syncwarp and warp shuffles (barriers of the emulated block, cuda_emu/emu.h), the
// rounding intrinsics the kernels use, __trap, nvcuda::wmma's bf16/f32 m16n16k16 fragments, and PTX's
// mma.sync m16n8k16 bf16 → f32 and ldmatrix x4 (om_emu::mma_m16n8k16_bf16, om_emu::ldmatrix_x4, for
// kernels/cuda/mma.cuh).
// Semantics are CUDA's where a test can observe them; see the README for what is not emulated.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "cuda_emu/emu.h"

// ---- Keywords: host C++ for device code ------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// transform_cu.py rewrites `__shared__ T name[N];` and `__shared__ T name;` to per-block slots
// (om_emu::static_shared). Any other form falls back to a static object: shared by the block's threads
// (blocks run one at a time), but not refilled between blocks.
#define __shared__ static

// ---- Math as device code sees it: float overloads, the rounding intrinsics ---------------------------
using std::ceil;
using std::cos;
using std::exp;
using std::fabs;
using std::floor;
using std::log;
using std::pow;
using std::sin;
using std::sqrt;

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
// Round-to-nearest operations: host IEEE arithmetic (the build uses -ffp-contract=off).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float __double2float_rn(double a) { return static_cast<float>(a); }
inline float __uint_as_float(unsigned int u) { return std::bit_cast<float>(u); }
inline unsigned int __float_as_uint(float f) { return std::bit_cast<unsigned int>(f); }

// ---- Threads, barriers, shuffles ---------------------------------------------------------------------
inline void __syncthreads() { om_emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { om_emu::sync_warp(mask); }

namespace om_emu {
// A shuffle of any value up to 8 bytes: its bits through om_emu::shuffle from lane `src` of the warp.
template <typename T>
T shuffle_value(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "emulated shuffles move up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(mask, bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
}  // namespace om_emu

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  return om_emu::shuffle_value(mask, v, lane - lane % width + ((lane % width) ^ lane_mask) % width);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  return om_emu::shuffle_value(mask, v, lane - lane % width + src_lane % width);
}

[[noreturn]] inline void __trap() { om_emu::trap(); }

// cuda_runtime.h's C++ overload for a kernel (nvcc only): the C call with the function's address.
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- nvcuda::wmma: m16n16k16, bf16 inputs, f32 accumulators -------------------------------------------
// A fragment here holds its whole 16×16 tile in every lane (row-major, whatever the layout it was loaded
// with), so each lane computes the whole product: the same values as the warp's distributed fragment,
// without its (opaque) element-to-lane map. Only lane 0 of the warp stores, so a read of a stored tile by
// another lane before __syncwarp sees stale memory here as it may on the GPU. The alignment rules of
// load/store_matrix_sync (32-byte pointers; ldm a multiple of 16 bytes) are checked.
namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has m16n16k16 only");
  static constexpr int num_elements = 256;
  T x[num_elements];
};

namespace detail {
inline float as_float(float v) { return v; }
inline float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
void check(const T* p, unsigned ldm, const char* what) {
  om_emu::check_wmma_pointer(p, static_cast<size_t>(ldm) * sizeof(T), what);
}
}  // namespace detail

template <typename Use, typename T, typename Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, T v) {
  for (T& e : f.x) e = v;
}

// matrix_a / matrix_b from memory: element (r, c) at p[r·ldm + c] (row_major) or p[c·ldm + r] (col_major).
template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  detail::check(p, ldm, "load_matrix_sync");
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      f.x[r * 16 + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, void>& f, const float* p, unsigned ldm,
                             layout_t layout) {
  detail::check(p, ldm, "load_matrix_sync");
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
  }
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float, void>& f, unsigned ldm,
                              layout_t layout) {
  detail::check(p, ldm, "store_matrix_sync");
  if (threadIdx.x % 32 != 0) return;
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
  }
}
// d = a·b + c, products and sums in f32 (bf16 products are exact in f32; the order of the sum over k is
// the tensor core's business, here k ascending).
template <typename TA, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float, void>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
              const fragment<matrix_b, 16, 16, 16, TA, LB>& b, const fragment<accumulator, 16, 16, 16, float, void>& c) {
  float out[256];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      float s = c.x[i * 16 + j];
      for (int k = 0; k < 16; ++k) s += detail::as_float(a.x[i * 16 + k]) * detail::as_float(b.x[k * 16 + j]);
      out[i * 16 + j] = s;
    }
  }
  std::memcpy(d.x, out, sizeof out);
}

}  // namespace nvcuda::wmma

// ---- PTX mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (kernels/cuda/mma.cuh) -------------------
// OM_CUDA_EMULATOR tells kernels/cuda/mma.cuh and async_copy.cuh to call the emulator (this file, and
// om_emu::cp_async* in emu.h) instead of their inline PTX.
#define OM_CUDA_EMULATOR 1
namespace om_emu {
// The running thread's warp and lane in its block (threads numbered x fastest, as CUDA does).
inline void warp_and_lane(unsigned& warp, unsigned& lane) {
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  warp = linear / 32;
  lane = linear % 32;
}

// d = a·b + c for one warp: A 16×16, B 16×8, C and D 16×8, each spread over the lanes as the PTX ISA's
// "Matrix Fragments for mma.m16n8k16 with floating point type" lays it out, with g = lane / 4 and
// t = lane % 4, and the lower 16 bits of a register holding the lower index:
//   a[0] = A[g][2t, 2t+1]     a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   b[0] = B[2t, 2t+1][g]     b[1] = B[2t+8, 2t+9][g]
//   c, d: [0], [1] = C[g][2t], C[g][2t+1]               [2], [3] = C[g+8][2t], C[g+8][2t+1]
// Every lane of the warp must call it (a warp collective, like the instruction's .sync.aligned): each lane
// publishes its a and b, the warp meets, each lane computes its own four outputs (f32 products, exact for
// bf16 inputs, summed in f32 with k ascending: the tensor core's order is its own business), and the warp
// meets again before the slots are reused. d may alias c.
inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
  struct Slot {
    uint32_t a[4], b[2];
  };
  thread_local Slot slots[32][32];  // [warp][lane]; blocks run one at a time on a host thread
  unsigned warp, lane;
  warp_and_lane(warp, lane);
  Slot& mine = slots[warp][lane];
  for (int i = 0; i < 4; ++i) mine.a[i] = a[i];
  for (int i = 0; i < 2; ++i) mine.b[i] = b[i];
  __syncwarp();
  const Slot* w = slots[warp];
  // A[r][k] and B[k][n] from the published registers.
  auto half = [](uint32_t reg, int hi) { return __ushort_as_bfloat16(static_cast<unsigned short>(reg >> (16 * hi))); };
  auto A = [&](int r, int k) {
    const int reg = (r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return __bfloat162float(half(w[4 * (r % 8) + (k % 8) / 2].a[reg], k % 2));
  };
  auto B = [&](int k, int n) { return __bfloat162float(half(w[4 * n + (k % 8) / 2].b[k >= 8 ? 1 : 0], k % 2)); };
  const int g = static_cast<int>(lane / 4), t = static_cast<int>(lane % 4);
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int r = g + 8 * (e / 2), n = 2 * t + e % 2;
    float s = c[e];
    for (int k = 0; k < 16; ++k) s += A(r, k) * B(k, n);
    out[e] = s;
  }
  __syncwarp();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

// PTX ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: four 8 × 8 matrices of 16-bit elements from shared
// memory, lane l giving the address of row l % 8 of matrix l / 8 (16-byte aligned: 8 elements). Lane l
// receives in r[i], from matrix i, with g = l / 4 and t = l % 4 (lower index in the lower 16 bits):
//   plain:  row g, elements 2t and 2t + 1          .trans: elements g of rows 2t and 2t + 1
// A warp collective like mma_m16n8k16_bf16: the lanes publish their row addresses, meet, read, meet.
inline void ldmatrix_x4(uint32_t r[4], const void* row, bool trans) {
  if (reinterpret_cast<uintptr_t>(row) % 16 != 0) {
    fail("ldmatrix: row address %p is not 16-byte aligned (thread %u)", row, threadIdx.x);
  }
  if (is_device(row)) fail("ldmatrix: row address %p is global memory; ldmatrix .shared reads shared memory", row);
  thread_local const uint16_t* rows[32][32];  // [warp][lane]
  unsigned warp, lane;
  warp_and_lane(warp, lane);
  rows[warp][lane] = static_cast<const uint16_t*>(row);
  __syncwarp();
  const unsigned g = lane / 4, t = lane % 4;
  for (unsigned i = 0; i < 4; ++i) {
    const uint16_t* const* m = rows[warp] + 8 * i;  // the 8 row addresses of matrix i
    const uint16_t lo = trans ? m[2 * t][g] : m[g][2 * t];
    const uint16_t hi = trans ? m[2 * t + 1][g] : m[g][2 * t + 1];
    r[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  __syncwarp();
}
}  // namespace om_emu
