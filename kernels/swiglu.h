// SwiGLU, the gated activation of the Llama MLP (DESIGN.md: MLP = down(silu(gate(x)) ⊙ up(x))).
// The gate and up projections are one fused GEMM per tensor-parallel rank, so the input holds both:
//   g = gate_up[n, f],  u = gate_up[n, F + f],  out[n, f] = silu(g) * u,  silu(g) = g * sigmoid(g)
// Elements are independent (no reduction); with tensor parallelism F is this rank's slice of the FFN.
// sigmoid is evaluated without overflow for any finite gate (exp is only taken of -|g|): gates of
// +-1000 give out = g * u and out = 0 (and finite gradients), never NaN.
// REQUIRES: all tensors of one call share one float dtype (CPU: f32 or f64; CUDA: bf16 or f32).
#pragma once

#include "kernels/common.h"

namespace om {

struct SwigluForwardArgs {
  TensorView out;            // (N, F)   written (=): silu(gate) * up
  ConstTensorView gate_up;   // (N, 2F)  gate in columns [0, F), up in [F, 2F)
};

struct SwigluBackwardArgs {
  TensorView dgate_up;       // (N, 2F)  written (=): dgate in [0, F), dup in [F, 2F)
  ConstTensorView dout;      // (N, F)
  ConstTensorView gate_up;   // (N, 2F)  the forward input
};

void swiglu_forward(const ExecContext& ctx, const SwigluForwardArgs& args);
void swiglu_backward(const ExecContext& ctx, const SwigluBackwardArgs& args);

namespace cpu {
void swiglu_forward(const SwigluForwardArgs& args);
void swiglu_backward(const SwigluBackwardArgs& args);
}  // namespace cpu

namespace cuda {
// bf16 or f32 tensors, f32 arithmetic (the reference's formulas and order; CUDA's expf), one
// rounding to the dtype per output.
void swiglu_forward(const SwigluForwardArgs& args, Stream stream);
void swiglu_backward(const SwigluBackwardArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
