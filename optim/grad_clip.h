// Global gradient norm and clipping (Megatron --clip-grad).
//   norm  = sqrt(sum over every gradient element of g²), summed in double in a fixed order
//   coef  = min(1, max_norm / (norm + 1e-6)) when max_norm > 0, else 1
// The coefficient is passed to the optimizer as its grad_scale (no extra pass over the gradients).
// A non-finite norm is reported, never clipped silently: the caller decides (skip the step, stop).
#pragma once

#include <span>

#include "core/parameter.h"

namespace om {

double global_grad_norm(std::span<const Parameter> params);
float clip_coefficient(double grad_norm, float max_norm);

}  // namespace om
