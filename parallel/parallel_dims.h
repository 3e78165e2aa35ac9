// ParallelDims: the tensor-parallel (tp) and data-parallel (dp) degrees of a run and the rank layout,
// validated once and then passed around as a plain value (DESIGN.md invariant 7; no global getters).
// Rank order is tp fastest (Megatron): rank = dp_rank · tp + tp_rank, so the tp ranks of one model
// replica are neighbours (on one node when tp ≤ GPUs per node) and the dp group of a tp rank strides by tp.
// Errors are Status values whose text names every factor and the flag to change (STYLE.md §12).
// Thread safety: a value; copy freely.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace om {

struct ParallelDims {
  int64_t tp = 1;          // tensor-parallel degree (--tp): ranks that split each layer
  int64_t dp = 1;          // data-parallel degree (--dp): model replicas, each on a slice of the batch
  int64_t world_size = 1;  // processes in the job; tp · dp == world_size

  // Validates the layout. dp = -1 means "infer": dp = world_size / tp (which must divide evenly).
  // Errors name every factor, e.g. "tp(2) * dp(3) = 6 != world_size(8): ...".
  static StatusOr<ParallelDims> Make(int64_t tp, int64_t dp, int64_t world_size);

  // Checks that the model splits over tp: whole attention heads and whole FFN columns per tp rank
  // (the vocabulary is padded instead, see padded_vocab). Errors name the flag and the degree:
  // "--num-attention-heads 6 is not divisible by --tp 4: ...".
  Status ValidateModel(int64_t n_heads, int64_t ffn, int64_t vocab_size) const;

  // V rounded up to a multiple of 128·tp (Megatron's make-vocab-size-divisible-by · tp): every tp
  // rank owns padded_vocab / tp rows, itself a multiple of 128. The padding rows are masked out of
  // the loss. For tp = 1 this equals LlamaConfig::padded_vocab().
  int64_t padded_vocab(int64_t vocab_size) const;

  // Rank mapping, tp fastest. REQUIRES: 0 ≤ rank < world_size, 0 ≤ tp_rank < tp, 0 ≤ dp_rank < dp.
  int tp_rank(int rank) const;
  int dp_rank(int rank) const;
  int rank(int tp_rank, int dp_rank) const;
};

}  // namespace om
