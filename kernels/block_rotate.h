// Two-sided block rotation of OrthoAdam's optimizer units (DESIGN.md "OrthoAdam", optim/orthoadam.h),
// in place, for a batch of units:
//   kForward   x ← Q_r · x · Q_cᵀ        (the gradient into the rotated basis: G̃ = Q_r G Q_cᵀ)
//   kInverse   x ← Q_rᵀ · x · Q_c        (the Adam step back: U = Q_rᵀ Ũ Q_c)
// where, per unit, x (R, K) is row-major and contiguous, Q_r (R, R), and Q_c = blockdiag(q_c[0],
// q_c[1], …) with q_c[b] (K_b, K_b) covering the columns in order (Σ K_b = K). With orthogonal Q's,
// kInverse undoes kForward up to rounding.
//
// Cost: 2·R²·K + 2·R·Σ K_b² FLOPs per unit and direction; with R = K_b = B that is 4·B per element,
// so 8·B per parameter element per OrthoAdam step (both directions).
//
// CPU: f32 through one single-threaded dnnl_sgemm per GEMM, units spread over OpenMP threads (one
// thread rotates a whole unit): bit-identical for any thread count and any batching of the units.
// f64 through plain loops (the reference for checks).
// CUDA: f32 only (the units are fp32 optimizer state; kernels/cuda/block_rotate.cu): units grouped by
// shape, each pass one pointer-array batched cuBLAS GEMM per group (true fp32 by default). Bit-identical
// from run to run for the same batch on the same GPU and library; not bit-identical to the CPU, nor
// promised across batchings (cuBLAS may choose another kernel for another batch count). The scratch and
// pointer tables of a set of units are built on its first call and kept (a small cache keyed by the
// units' pointers and shapes), so later calls on the same units allocate, upload and wait for nothing.
// Precision (CUDA only; the CPU takes kF32 and says so otherwise):
//   kF32   true fp32 products and sums (CUBLAS_COMPUTE_32F): the CPU reference's rule-2 bound.
//   kTF32  tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32): each operand rounded to TF32 (10 fraction bits,
//          relative error ≤ 2^-10 if truncated, 2^-11 if rounded to nearest), products summed in fp32.
//          An H200 has ~7× the fp32 rate in TF32 (495 vs 67 TFLOP/s dense), and the rotations are
//          ≤ 8·B FLOPs per parameter per step (0.93 TFLOP for llama-130m at B = 1024): fp32 makes them
//          tens of percent of a step at small batches. Each pass adds ≤ ~2·2^-10 relative (per element, of
//          |Q|·|x|·|Q|ᵀ) to the gradient or the step; the moments stay fp32 (--ortho-precision tf32).
// REQUIRES: per unit, x, q_r and every q_c[b] share one dtype; units do not overlap one another and
// no x overlaps a Q.
#pragma once

#include <span>
#include <vector>

#include "kernels/common.h"

namespace om {

enum class RotateDirection : uint8_t { kForward, kInverse };
enum class RotatePrecision : uint8_t { kF32, kTF32 };

struct RotationUnit {
  TensorView x;                       // (R, K) rotated in place
  ConstTensorView q_r;                // (R, R)
  std::vector<ConstTensorView> q_c;   // (K_b, K_b) each, Σ K_b = K, in column order
};

void block_rotate(const ExecContext& ctx, std::span<const RotationUnit> units, RotateDirection direction,
                  RotatePrecision precision = RotatePrecision::kF32);

namespace cpu {
void block_rotate(std::span<const RotationUnit> units, RotateDirection direction);
}  // namespace cpu

namespace cuda {
// f32 units only, f32 accumulation (CUBLAS_COMPUTE_32F, or _FAST_TF32 for kTF32); stream-ordered.
void block_rotate(std::span<const RotationUnit> units, RotateDirection direction, RotatePrecision precision,
                  Stream stream);
}  // namespace cuda

}  // namespace om
