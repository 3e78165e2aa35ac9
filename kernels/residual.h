// Residual add, the skip connection of every transformer block: out = a + b, element-wise.
// The backward needs no op of its own (d a = d b = d out, unchanged); where two gradient streams
// meet (the residual stream and the gradient coming back through a block's norm), the model sums
// them with residual_forward as well.
// out may alias a or b exactly (x += y in place: each element is read before it is written); any
// other overlap is a programmer error the op does not detect.
// REQUIRES: out, a and b share one float dtype (CPU: f32 or f64; CUDA: bf16 or f32) and one shape (any
// rank), contiguous.
#pragma once

#include "kernels/common.h"

namespace om {

struct ResidualArgs {
  TensorView out;     // (...)  written (=): a + b; may be a or b itself
  ConstTensorView a;  // (...)
  ConstTensorView b;  // (...)  a's shape
};

void residual_forward(const ExecContext& ctx, const ResidualArgs& args);

namespace cpu {
// Element-wise, so bit-identical for any thread count.
void residual_forward(const ResidualArgs& args);
}  // namespace cpu

namespace cuda {
// bf16 or f32: one f32 add per element, rounded once to the dtype (bit-identical to the f32
// reference on the same values).
void residual_forward(const ResidualArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
