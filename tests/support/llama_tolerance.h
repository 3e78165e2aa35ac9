// The tolerance for comparing two f-dtype computations of the same Llama that differ only in the
// summation order of their reductions (tests/parallel/llama_tp_test.cc: tp partial sums added by the
// all-reduce; tests/model/llama_test.cc: a GEMM library whose order depends on the call's row count).
//
// Rule 2 (kernels/check/tolerance.h) bounds each reduction's error by len·eps·Σ|terms|; along the
// forward and backward chain the reductions are, per layer, the qkv (C), attention (T), O (C), gate_up
// (C) and down (F) products, plus the LM head (C) and the cross-entropy (Vp: the padded vocabulary of
// the compared model), each met in both passes. Bounding every reduction by the total length
// R = 2·(L·(3C + T + F) + C + Vp) and Σ|terms| by 1 + max|want| (RMSNorm keeps activations O(1); the
// compared quantities are O(max|want|)) gives atol = R·eps·(1 + max|want|), rtol = 8 eps: a loose bound
// on re-association (observed errors are far below it) that any wrong slice, wrong row, missing
// all-reduce or double count (errors of order |want|) exceeds.
#pragma once

#include <cstdint>

#include "kernels/check/tolerance.h"
#include "model/llama_config.h"

namespace om {

inline Tolerance llama_reassociation(const LlamaConfig& c, int64_t padded_vocab, DType dtype, double max_want) {
  const int64_t R = 2 * (c.n_layers * (3 * c.hidden + c.seq_length + c.ffn) + c.hidden + padded_vocab);
  Tolerance t = for_reduction(dtype, R, 1.0 + max_want);
  t.rule = "re-association: " + t.rule;
  return t;
}

}  // namespace om
