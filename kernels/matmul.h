// Matrix multiply: c (=|+=) op(a) · op(b), op(x) = x or xᵀ. Every linear layer runs through it.
// All tensors are row-major, contiguous and 2-D; one dtype per call (CPU: f32 or f64; CUDA: f32 or
// bf16), with one mixed case on CUDA only: bf16 a and b with an f32 c (the weight gradient into an
// f32 main gradient of the mixed-precision model, usually kAccumulate; kOverwrite is allowed too).
//
// A Linear layer with weight W [out, in] computes y = x·Wᵀ. With N = B·T rows, C = in, O = out:
//   forward   y  (N, O) =  x (N, C) · W (O, C)ᵀ       {c=y,  a=x,  b=W,  trans_b=kYes, kOverwrite}
//   backward  dx (N, C) =  dy (N, O) · W (O, C)       {c=dx, a=dy, b=W,                kOverwrite}
//             dW (O, C) += dy (N, O)ᵀ · x (N, C)      {c=dW, a=dy, b=x,  trans_a=kYes, kAccumulate}
// (activation gradients overwrite, parameter gradients accumulate: kernels/README.md).
//
// CPU: f32 through oneDNN's dnnl_sgemm on fixed tiles of c (deterministic for any OpenMP thread
// count; kernels/cpu/matmul.cc says why), f64 through a plain loop (the gradient-check path).
// CUDA: cuBLASLt, f32 (no TF32), or bf16 inputs with f32 accumulation and a bf16 or f32 output
// (kernels/cuda/matmul.cu). The CPU refuses bf16: the mixed case with "bf16 matmul runs on CUDA
// only", all-bf16 through check_cpu_float.
// Fused residual add (`residual` set, kOverwrite): c = op(a)·op(b) + residual, the skip connection of a
// Linear layer whose output joins the residual stream (Llama's o and down projections at tp = 1).
//   CPU   the GEMM into c, then c = c + residual in c's dtype: bit for bit matmul then residual_forward.
//   CUDA  the cuBLASLt epilogue: C = residual, beta = 1, D = c, so one pass over c instead of a GEMM and a
//         residual pass (2·M·N fewer elements moved, one launch fewer). The f32 accumulator plus the
//         residual is rounded once to c's dtype, where the unfused ops round twice: bf16 results may
//         differ from them by one rounding (tests/cuda/matmul_test.cc bounds both against f64).
// REQUIRES: c does not alias a or b, nor overlap residual (for c += ..., use kAccumulate). K = 0 is
// allowed (c = 0, or c unchanged when accumulating, or c = residual).
#pragma once

#include "kernels/common.h"

namespace om {

enum class Transpose : uint8_t {
  kNo,   // use the tensor as stored
  kYes,  // use its transpose
};

struct MatmulArgs {
  TensorView c;                            // (M, N)   written (=), or accumulated (+=) with kAccumulate
  ConstTensorView a;                       // (M, K), or (K, M) with trans_a = kYes
  ConstTensorView b;                       // (K, N), or (N, K) with trans_b = kYes
  Transpose trans_a = Transpose::kNo;
  Transpose trans_b = Transpose::kNo;
  WriteMode mode = WriteMode::kOverwrite;  // kAccumulate: c += op(a)·op(b)
  ConstTensorView residual = {};           // (M, N)   c's dtype; optional: c = op(a)·op(b) + residual
};

void matmul(const ExecContext& ctx, const MatmulArgs& args);

namespace cpu {
void matmul(const MatmulArgs& args);
}  // namespace cpu

namespace cuda {
// cuBLASLt (kernels/cuda/matmul.cu), f32 accumulation:
//   a, b, c f32          true fp32 (no TF32)
//   a, b, c bf16         bf16 inputs, bf16 output
//   a, b bf16, c f32     bf16 inputs, f32 output (c += op(a)·op(b) adds the f32 sum to the f32 c)
void matmul(const MatmulArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
