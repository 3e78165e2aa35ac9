// Rotary position embedding, "rotate-half" pairing as in Hugging Face Llama (DESIGN.md Conventions):
// channel i is paired with i + D/2 and rotated by the angle t * freq_i, freq_i = theta^(-2i/D),
// i in [0, D/2), t in [0, T) the position within the training window:
//   x'[i]       = x[i] cos - x[i + D/2] sin
//   x'[i + D/2] = x[i + D/2] cos + x[i] sin
// Works in place on the fused qkv activation (B, T, 3H, D): heads [0, n_rot_heads) are rotated (2H: q
// and k), the rest (v) are left untouched bit for bit. The backward applies the transpose R(t)^T =
// R(-t) to the gradient, again in place. Angles and the rotation are computed in double.
// REQUIRES: D even; 0 <= n_rot_heads <= Hx; x f32 or f64 on the CPU, bf16 or f32 on CUDA.
#pragma once

#include "kernels/common.h"

namespace om {

struct RopeArgs {
  TensorView x;              // (B, T, Hx, D)  rotated in place (=) for heads [0, n_rot_heads)
  int64_t n_rot_heads = 0;   // heads to rotate, e.g. 2H of the fused qkv (B, T, 3H, D): q and k, not v
  float theta = 10000.0f;    // base of the frequencies
};

void rope_forward(const ExecContext& ctx, const RopeArgs& args);   // x <- R(t) x
void rope_backward(const ExecContext& ctx, const RopeArgs& args);  // dx <- R(t)^T dx (x holds the gradient)

namespace cpu {
void rope_forward(const RopeArgs& args);
void rope_backward(const RopeArgs& args);
}  // namespace cpu

namespace cuda {
// bf16 or f32 x; the same double arithmetic as the reference, one rounding to the dtype per
// element. REQUIRES (checked): under 2^31 packs of pairs (B·T·n_rot_heads·D/2 pairs, up to 8 per pack:
// kernels/cuda/rope.cu), the kernel's 32-bit index.
void rope_forward(const RopeArgs& args, Stream stream);
void rope_backward(const RopeArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
