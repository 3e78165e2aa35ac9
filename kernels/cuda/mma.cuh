// Warp-level tensor-core products in registers: PTX mma.sync m16n8k16, bf16 inputs, f32 accumulators
// (sm_80 and later), and the per-lane fragment loads from row-major bf16 tiles in shared memory that feed
// it. Used by kernels/cuda/attention_mma.cu. Under the CPU emulator (cuda_emu/device.h defines
// OM_CUDA_EMULATOR) the product is om_emu::mma_m16n8k16_bf16, which implements the same lane layout.
//
// Fragments, with g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"; a 32-bit register holds two bf16, the lower index in the lower 16 bits):
//   A (16 × 16, MmaA):  [0] = A[g][2t, 2t+1]   [1] = A[g+8][2t, 2t+1]   [2] = A[g][2t+8, 2t+9]   [3] = A[g+8][2t+8, 2t+9]
//   B (16 × 8,  MmaB):  [0] = B[2t, 2t+1][g]   [1] = B[2t+8, 2t+9][g]
//   C, D (16 × 8 f32):  [0], [1] = C[g][2t], C[g][2t+1]        [2], [3] = C[g+8][2t], C[g+8][2t+1]
// So the accumulators of two adjacent 16 × 8 tiles, rounded to bf16 and packed pairwise, are the A
// fragment of the 16 × 16 block they form (mma_a_from_acc): a product's result feeds the next product
// without leaving registers (FlashAttention-2's P·V).
// REQUIRES: included only from .cu files; every lane of the warp calls mma_bf16 together (warp-uniform
// control flow around it).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace om::cuda {

using MmaA = uint32_t[4];
using MmaB = uint32_t[2];
using MmaC = float[4];

// d += a · b (16 × 8 f32 += 16 × 16 bf16 · 16 × 8 bf16).
__device__ __forceinline__ void mma_bf16(MmaC& d, const MmaA& a, const MmaB& b) {
#ifdef OM_CUDA_EMULATOR
  om_emu::mma_m16n8k16_bf16(d, a, b, d);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Two f32 rounded to bf16 (round to nearest even) in one register, lo in the lower half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// The two bf16 at tile[r][c], tile[r][c + 1] (row stride ld elements; c and ld even, tile 4-byte aligned).
__device__ __forceinline__ uint32_t row_pair(const __nv_bfloat16* tile, int ld, int r, int c) {
  return *reinterpret_cast<const uint32_t*>(tile + r * ld + c);
}
// The two bf16 at tile[r][c] (lower half) and tile[r + 1][c].
__device__ __forceinline__ uint32_t column_pair(const __nv_bfloat16* tile, int ld, int r, int c) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(tile[r * ld + c])) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(tile[(r + 1) * ld + c])) << 16);
}

// a = A with A[i][k] = tile[r0 + i][k0 + k] (16 rows of a row-major tile, 16 columns from k0).
__device__ __forceinline__ void mma_load_a(MmaA& a, const __nv_bfloat16* tile, int ld, int r0, int k0, int lane) {
  const int g = lane / 4, t = lane % 4;
  a[0] = row_pair(tile, ld, r0 + g, k0 + 2 * t);
  a[1] = row_pair(tile, ld, r0 + g + 8, k0 + 2 * t);
  a[2] = row_pair(tile, ld, r0 + g, k0 + 2 * t + 8);
  a[3] = row_pair(tile, ld, r0 + g + 8, k0 + 2 * t + 8);
}
// b = B with B[k][n] = tile[n0 + n][k0 + k]: the transpose of 8 rows of a row-major tile (Q·Kᵀ's Kᵀ).
__device__ __forceinline__ void mma_load_b_t(MmaB& b, const __nv_bfloat16* tile, int ld, int n0, int k0, int lane) {
  const int g = lane / 4, t = lane % 4;
  b[0] = row_pair(tile, ld, n0 + g, k0 + 2 * t);
  b[1] = row_pair(tile, ld, n0 + g, k0 + 2 * t + 8);
}
// b = B with B[k][n] = tile[k0 + k][n0 + n]: 16 rows, 8 columns of a row-major tile (P·V's V).
__device__ __forceinline__ void mma_load_b(MmaB& b, const __nv_bfloat16* tile, int ld, int k0, int n0, int lane) {
  const int g = lane / 4, t = lane % 4;
  b[0] = column_pair(tile, ld, k0 + 2 * t, n0 + g);
  b[1] = column_pair(tile, ld, k0 + 2 * t + 8, n0 + g);
}
// a = the 16 × 16 block [left | right] of two 16 × 8 accumulators, rounded to bf16.
__device__ __forceinline__ void mma_a_from_acc(MmaA& a, const MmaC& left, const MmaC& right) {
  a[0] = pack_bf16(left[0], left[1]);
  a[1] = pack_bf16(left[2], left[3]);
  a[2] = pack_bf16(right[0], right[1]);
  a[3] = pack_bf16(right[2], right[3]);
}

}  // namespace om::cuda
