// Parameter: one named trainable tensor and its gradient, as the model hands them to the optimizer
// and (later) to checkpoints. Non-owning: the model's parameter and gradient arenas own the memory,
// with the same layout, so `grad` has value's shape and dtype.
#pragma once

#include <string>

#include "core/tensor.h"

namespace om {

struct Parameter {
  std::string name;  // logical name in memory, e.g. "layers.3.attn.qkv.weight" (fused q|k|v rows)
  TensorView value;  // f32 on CPU (master weights)
  TensorView grad;   // same shape; accumulated (+=) by backward, zeroed by the owner each step
  bool weight_decay = true;  // false for norm gains (1-D), as in Megatron
};

}  // namespace om
