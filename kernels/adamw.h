// AdamW with decoupled weight decay (Loshchilov & Hutter; PAPER.md "OrthoAdam" with Q = I), one
// element-wise step over a flat shard of fp32 master weights and their moments:
//   g  = grad_scale * grad                  (grad_scale: the clipping coefficient, 1 without clipping)
//   m  = b1 m + (1 - b1) g                   v  = b2 v + (1 - b2) g²
//   mh = m / (1 - b1^step)                   vh = v / (1 - b2^step)
//   param -= lr * (mh / (sqrt(vh) + eps) + weight_decay * param)
// Element-wise, so bit-identical for any thread count and any split of the shard.
// REQUIRES: param, m, v and grad share one shape and dtype (CPU: f32, or f64 for checks); step >= 1;
// beta1, beta2 in [0, 1).
#pragma once

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
};

void adamw_update(const ExecContext& ctx, const AdamWArgs& args);

// No CUDA kernel yet: on a CUDA context adamw_update is a clear fatal error.
namespace cpu {
void adamw_update(const AdamWArgs& args);
}  // namespace cpu

}  // namespace om
