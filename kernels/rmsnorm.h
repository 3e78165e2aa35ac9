// RMSNorm and RMSNorm-S (one shared scalar gain; PAPER.md "Normalisation matters").
//   rstd[n]  = 1 / sqrt(mean_c inp[n, c]^2 + eps)
//   out[n,c] = inp[n, c] * rstd[n] * g        g = weight[c] (kRmsNorm) or weight[0] (kRmsNormS)
// Rows are independent; callers flatten (B, T, C) to (N, C) with N = B*T.
// REQUIRES: all float tensors of one call share one dtype (CPU: f32 or f64; CUDA: see the .cu).
#pragma once

#include "kernels/common.h"

namespace om {

enum class NormKind : uint8_t {
  kRmsNorm,   // per-channel gain, weight (C)
  kRmsNormS,  // one shared scalar gain, weight (1)
};

struct RmsNormForwardArgs {
  TensorView out;          // (N, C)   written
  TensorView rstd;         // (N)      written; saved for backward
  ConstTensorView inp;     // (N, C)
  ConstTensorView weight;  // (C) for kRmsNorm, (1) for kRmsNormS
  NormKind kind = NormKind::kRmsNorm;
  float eps = 1e-6f;
};

struct RmsNormBackwardArgs {
  TensorView dinp;         // (N, C)   written (=), or with kAccumulate added to (+=)
  TensorView dweight;      // (C) or (1): accumulated (+=)
  ConstTensorView dout;    // (N, C)
  ConstTensorView inp;     // (N, C)   the forward input
  ConstTensorView weight;  // (C) or (1)
  ConstTensorView rstd;    // (N)      from the forward
  NormKind kind = NormKind::kRmsNorm;
  // kAccumulate: dinp[n, c] = dinp + v where v, the input gradient, is first rounded to dinp's dtype:
  // the same bits as writing v to a buffer and adding it with residual_forward, in one pass (the
  // backward's residual add of the norm's branch: model/llama_backward.cc). dinp must not alias dout
  // or inp in either mode.
  WriteMode dinp_mode = WriteMode::kOverwrite;
};

void rmsnorm_forward(const ExecContext& ctx, const RmsNormForwardArgs& args);
void rmsnorm_backward(const ExecContext& ctx, const RmsNormBackwardArgs& args);

namespace cpu {
void rmsnorm_forward(const RmsNormForwardArgs& args);
void rmsnorm_backward(const RmsNormBackwardArgs& args);
}  // namespace cpu

namespace cuda {
// bf16 or f32 activations, f32 rstd and weight, f32 accumulation.
void rmsnorm_forward(const RmsNormForwardArgs& args, Stream stream);
void rmsnorm_backward(const RmsNormBackwardArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
