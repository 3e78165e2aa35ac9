// Token embedding, vocab-parallel aware (DESIGN.md "Tensor parallel"; Megatron VocabParallelEmbedding).
// A tp rank holds rows [vocab_start, vocab_start + Vl) of the full (V, C) table. The forward writes
// weight[id - vocab_start] for ids in that range and a zero row for every other id, so summing the
// outputs over the tp ranks (reduce_from_tp_region) reproduces the unsharded embedding exactly: each
// row has exactly one nonzero term. With tp = 1, vocab_start = 0 and Vl = V.
// Ids are validated by the data pipeline (data/). Here an id outside the shard, negative ids and
// ids >= V included, is not an error: it gives a zero row and no gradient, never an out-of-bounds access.
// REQUIRES: ids are i32. CPU: out, weight, dweight and dout share one float dtype (f32 or f64).
// CUDA: out and weight share bf16 or f32 (the compute copy of the parameter); dout is bf16 or f32 and
// dweight is f32 whatever dout is (DESIGN.md "Precision": f32 gradient buffers).
#pragma once

#include "kernels/common.h"

namespace om {

struct EmbeddingForwardArgs {
  TensorView out;            // (N, C)   written (=); zero rows for ids outside this shard
  ConstTensorView ids;       // (N)      i32 token ids in the full vocabulary
  ConstTensorView weight;    // (Vl, C)  rows for ids [vocab_start, vocab_start + Vl)
  int64_t vocab_start = 0;   // first id of this shard (tp_rank * Vl)
};

struct EmbeddingBackwardArgs {
  TensorView dweight;        // (Vl, C)  accumulated (+=); ids outside the shard contribute nothing
                             //          (f32 on CUDA)
  ConstTensorView dout;      // (N, C)
  ConstTensorView ids;       // (N)      i32, as in the forward
  int64_t vocab_start = 0;   // as in the forward
};

void embedding_forward(const ExecContext& ctx, const EmbeddingForwardArgs& args);
void embedding_backward(const ExecContext& ctx, const EmbeddingBackwardArgs& args);

namespace cpu {
void embedding_forward(const EmbeddingForwardArgs& args);
// Deterministic for any thread count: each dweight row sums its ids' dout rows in row order.
void embedding_backward(const EmbeddingBackwardArgs& args);
}  // namespace cpu

namespace cuda {
// Forward: a row copy (bit-identical to the reference). Backward: a stable radix sort of the ids
// (CUB), then each dweight row sums its dout rows in increasing n in double and rounds once: the
// reference's arithmetic, so bit-identical to cpu::embedding_backward in f32 on the same values.
// REQUIRES (checked): N, Vl < 2^31.
void embedding_forward(const EmbeddingForwardArgs& args, Stream stream);
void embedding_backward(const EmbeddingBackwardArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
