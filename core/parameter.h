// Parameter: one named trainable tensor and its gradient, as the model hands them to the optimizer
// and to checkpoints. Non-owning: the model's parameter and gradient arenas own the memory, with the
// same layout, so `grad` has value's shape and dtype.
//
// Logical blocks. In memory a parameter may fuse several logical tensors (q|k|v, gate|up), hold only
// this tensor-parallel rank's slice of them, and carry padding rows (the vocabulary). `blocks` says
// which memory rows are which logical rows (DESIGN.md "Conventions"): weight initialisation, the
// OrthoAdam units and checkpoints all work in logical coordinates through it, which is what makes
// them independent of the layout (DESIGN.md invariant 3).
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace om {

// Memory rows [row0, row0 + rows) of a parameter hold rows [logical_row0, logical_row0 + rows) and
// columns [col0, col0 + cols) of the logical tensor `name` of shape `shape`, where cols is the
// parameter's own column count. A 1-D parameter (a norm gain) counts as a column: one element per row,
// cols = 1, and its logical shape is 1-D. Memory rows in no block are padding (always zero).
struct LogicalBlock {
  std::string name;          // e.g. "layers.0.attn.q.weight"
  Shape shape;               // the whole logical tensor, e.g. (H·D, C)
  int64_t row0 = 0;          // first memory row
  int64_t rows = 0;          // ≥ 1
  int64_t logical_row0 = 0;  // logical row of memory row row0
  int64_t col0 = 0;          // logical column of memory column 0
};

// The block of a parameter that is one whole logical tensor of its own name and shape.
inline LogicalBlock whole_tensor_block(const std::string& name, const Shape& shape) {
  return {name, shape, 0, shape.ndim == 0 ? 1 : shape[0], 0, 0};
}

struct Parameter {
  std::string name;  // name in memory, e.g. "layers.3.attn.qkv.weight" (fused q|k|v rows)
  TensorView value;  // f32 on CPU (master weights)
  TensorView grad;   // same shape; accumulated (+=) by backward, zeroed by the owner each step
  bool weight_decay = true;  // false for norm gains (1-D), as in Megatron
  std::vector<LogicalBlock> blocks;  // ascending row0, disjoint; see LogicalBlock

  int64_t rows() const { return value.ndim() == 0 ? 1 : value.dim(0); }
  int64_t cols() const { return value.ndim() <= 1 ? 1 : value.numel() / value.dim(0); }
};

}  // namespace om
