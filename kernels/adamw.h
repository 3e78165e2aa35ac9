// AdamW with decoupled weight decay (Loshchilov & Hutter; PAPER.md "OrthoAdam" with Q = I), one
// element-wise step over a flat shard of fp32 master weights and their moments:
//   g  = grad_scale * grad                  (grad_scale: the clipping coefficient, 1 without clipping)
//   m  = b1 m + (1 - b1) g                   v  = b2 v + (1 - b2) g²
//   mh = m / (1 - b1^step)                   vh = v / (1 - b2^step)
//   u  = mh / (sqrt(vh) + eps)                (rounded to the param dtype once)
//   param -= lr * (u + weight_decay * param)
// Element-wise, so bit-identical for any thread count and any split of the shard.
//
// OrthoAdam (optim/orthoadam.h) runs the same step in two halves around its rotations:
//   adam_direction  m, v from the (rotated) gradient; writes u, rounded to the dtype
//   adam_apply      param -= lr * (u + weight_decay * param), u the direction rotated back
// with the same arithmetic as adamw_update, so adam_direction then adam_apply on the same u equals
// adamw_update bit for bit (the identity rotation test relies on it).
// REQUIRES: param, m, v and grad share one shape and dtype (CPU: f32, or f64 for checks; CUDA: f32
// only, the master weights and moments of mixed-precision training); step >= 1; beta1, beta2 in [0, 1).
// CUDA (kernels/cuda/adamw.cu) runs the same formulas as the CPU reference, each element in double,
// operation for operation (no fused multiply-adds) with the bias corrections computed on the host by
// the same libm calls, so the f32 results are bit-identical to cpu:: where the host compiler does not
// contract multiply-adds (the x86-64 baseline this project builds for); where it does, a few double
// intermediates differ in their last bits and results may differ by 1 ulp (tests/cuda/adamw_test.cc).
// Asynchronous on the given stream; no scratch memory.
//
// Publish, fused: adamw_update and adam_apply may also write the updated param into `value`, the
// model's copy of the weights in its own dtype (f32: the same bits; bf16: rounded to nearest even,
// the bits kernels/cast.h gives). That is the step's publish at dp = 1 (optim/distributed_optimizer.h)
// without its second pass, which re-read 4 bytes of master per parameter.
#pragma once

#include <span>

#include "kernels/common.h"

namespace om {

struct AdamWArgs {
  TensorView param;        // (n)  master weights, updated in place
  TensorView m;            // (n)  first moment, updated in place
  TensorView v;            // (n)  second moment, updated in place
  ConstTensorView grad;    // (n)
  float lr = 0.0f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;        // 1-based step for the bias corrections
  float grad_scale = 1.0f; // multiplies grad first (the gradient-clipping coefficient)
  TensorView value = {};   // (n)  optional (data == nullptr: none); f32 or bf16, param f32; written (=):
                           //      the updated param, cast; overlaps none of the other tensors
};

void adamw_update(const ExecContext& ctx, const AdamWArgs& args);

struct AdamDirectionArgs {
  TensorView direction;    // (n)  out: u; may alias grad (in place)
  TensorView m;            // (n)  first moment, updated in place
  TensorView v;            // (n)  second moment, updated in place
  ConstTensorView grad;    // (n)
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  int64_t step = 1;
  float grad_scale = 1.0f;
};
void adam_direction(const ExecContext& ctx, const AdamDirectionArgs& args);

struct AdamApplyArgs {
  TensorView param;          // (n)  updated in place
  ConstTensorView direction; // (n)  u
  float lr = 0.0f, weight_decay = 0.0f;
  TensorView value = {};     // (n)  optional, as AdamWArgs::value
};
void adam_apply(const ExecContext& ctx, const AdamApplyArgs& args);

// Grouped calls ("multi-tensor apply"): one step over many tensors, e.g. every parameter's slice of a
// ZeRO shard. Entry i gets exactly what adamw_update(ctx, list[i]) / adam_apply(ctx, list[i]) would
// do (element-wise arithmetic, so the same bits), but CUDA packs up to kAdamGroupMax entries into one
// launch (their pointers and sizes travel in the kernel's arguments): a step over P tensors costs
// ceil(P / 64) launches instead of P, which on a GPU is the difference between a launch-bound and a
// bandwidth-bound optimizer step when most tensors are small (norm gains, biases, tp shards).
// REQUIRES: every entry valid on its own (the checks of the single call); every entry has the first
// entry's lr, betas, eps, step and grad_scale (only weight_decay may differ); no tensor an entry writes
// (param, m, v, value) intersects a tensor of another entry. An empty list does nothing.
constexpr int kAdamGroupMax = 64;
void adamw_update_group(const ExecContext& ctx, std::span<const AdamWArgs> list);
void adam_apply_group(const ExecContext& ctx, std::span<const AdamApplyArgs> list);

namespace cpu {
void adamw_update(const AdamWArgs& args);
void adam_direction(const AdamDirectionArgs& args);
void adam_apply(const AdamApplyArgs& args);
}  // namespace cpu

namespace cuda {
// f32 tensors only, `value` f32 or bf16 (kernels/adamw.cc checks); element-wise, one thread per element.
void adamw_update(const AdamWArgs& args, Stream stream);
void adam_direction(const AdamDirectionArgs& args, Stream stream);
void adam_apply(const AdamApplyArgs& args, Stream stream);
// Validated lists (above); ceil(list.size() / kAdamGroupMax) launches, none for empty entries.
void adamw_update_group(std::span<const AdamWArgs> list, Stream stream);
void adam_apply_group(std::span<const AdamApplyArgs> list, Stream stream);
}  // namespace cuda

}  // namespace om
