// Warp-level tensor-core products in registers: PTX mma.sync m16n8k16, bf16 inputs, f32 accumulators
// (sm_80 and later), and the fragment loads (PTX ldmatrix) from row-major bf16 tiles in shared memory that
// feed it. Used by kernels/cuda/attention_mma.cu. Under the CPU emulator (cuda_emu/device.h defines
// OM_CUDA_EMULATOR) the two instructions are om_emu::mma_m16n8k16_bf16 and om_emu::ldmatrix_x4, which
// implement the same lane layouts.
//
// Fragments, with g = lane / 4 and t = lane % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"; a 32-bit register holds two bf16, the lower index in the lower 16 bits):
//   A (16 × 16, MmaA): [0] = A[g][2t, 2t+1]  [1] = A[g+8][2t, 2t+1]  [2] = A[g][2t+8, 2t+9]  [3] = A[g+8][2t+8, 2t+9]
//   B (16 × 8, MmaB):  [0] = B[2t, 2t+1][g]  [1] = B[2t+8, 2t+9][g]
//   C, D (16 × 8 f32): [0], [1] = C[g][2t], C[g][2t+1]      [2], [3] = C[g+8][2t], C[g+8][2t+1]
// So the accumulators of two adjacent 16 × 8 tiles, rounded to bf16 and packed pairwise, are the A
// fragment of the 16 × 16 block they form (mma_a_from_acc): a product's result feeds the next product
// without leaving registers (FlashAttention-2's P·V).
// REQUIRES: included only from .cu files; every lane of the warp calls mma_bf16 and the loaders together
// (warp-uniform control flow around them).
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

// PTX ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: four 8 × 8 bf16 matrices from shared memory in
// one instruction. Lane l passes `row`, the address of row l % 8 of matrix l / 8 (16-byte aligned), and
// receives in r[i], from matrix i (g = l / 4, t = l % 4): row g's elements 2t, 2t + 1 (plain), or
// element g of rows 2t, 2t + 1 (trans). Those are exactly an mma fragment register's two elements: plain
// for A and for a B stored n-major, trans for a B stored k-major.
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* row) {
#ifdef OM_CUDA_EMULATOR
  om_emu::ldmatrix_x4(r, row, kTrans);
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  if constexpr (kTrans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  }
#endif
}

// The loaders below read row-major bf16 tiles in shared memory with row stride ld elements; ld and the
// column offsets are multiples of 8 and the tile 16-byte aligned (ldmatrix's row addresses).
// a = A with A[i][k] = tile[r0 + i][k0 + k] (16 rows of a tile, 16 columns from k0). Matrices 0..3:
// rows +0 / +8 × columns +0 / +8, in a's register order.
__device__ __forceinline__ void mma_load_a(MmaA& a, const __nv_bfloat16* tile, int ld, int r0, int k0, int lane) {
  ldmatrix_x4<false>(a, tile + (r0 + lane % 8 + 8 * (lane / 8 % 2)) * ld + k0 + 8 * (lane / 16));
}
// b0, b1 = B with B[k][n] = tile[n0 + n][kc + k] for kc = k0 and k0 + 16: the transpose of 8 rows of a tile
// (Q·Kᵀ's Kᵀ), two 16-deep chunks of it. Matrices 0..3: columns k0 + 0, 8, 16, 24.
__device__ __forceinline__ void mma_load_b_t2(MmaB& b0, MmaB& b1, const __nv_bfloat16* tile, int ld, int n0, int k0,
                                              int lane) {
  uint32_t r[4];
  ldmatrix_x4<false>(r, tile + (n0 + lane % 8) * ld + k0 + 8 * (lane / 8));
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}
// b0, b1 = B with B[k][n] = tile[k0 + k][nc + n] for nc = n0 and n0 + 8: 16 rows, 16 columns of a tile
// (P·V's V), as two 8-column B fragments. Matrices 0..3: rows +0 / +8 × columns +0 / +8, transposed.
__device__ __forceinline__ void mma_load_b2(MmaB& b0, MmaB& b1, const __nv_bfloat16* tile, int ld, int k0, int n0,
                                            int lane) {
  uint32_t r[4];
  ldmatrix_x4<true>(r, tile + (k0 + lane % 8 + 8 * (lane / 8 % 2)) * ld + n0 + 8 * (lane / 16));
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}
// a = the 16 × 16 block [left | right] of two 16 × 8 accumulators, rounded to bf16.
__device__ __forceinline__ void mma_a_from_acc(MmaA& a, const MmaC& left, const MmaC& right) {
  a[0] = pack_bf16(left[0], left[1]);
  a[1] = pack_bf16(left[2], left[3]);
  a[2] = pack_bf16(right[0], right[1]);
  a[3] = pack_bf16(right[2], right[3]);
}

}  // namespace om::cuda
