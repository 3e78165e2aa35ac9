// The paper's metrics over a held-out set (PAPER.md "Metrics"), accumulated batch by batch from a
// model's forward pass (model/llama.h ForwardProbe): first-token attention and each block's hidden
// states. All sums in double.
//   first-token attention, per layer and head, query 0 excluded:
//     mass   = mean over queries i ≥ 1 of p[i][0]
//     argmax = share of queries i ≥ 1 whose largest p[i][j] is at j = 0 (ties: the lowest j)
//   chance for sequence length T (uniform causal attention): (H_T − 1) / (T − 1), H_T = Σ_{k=1..T} 1/k,
//     the mean over i = 1..T−1 of 1/(i + 1) — the same for mass and argmax
//   kurtosis of token l's hidden state x (C channels): E[(x − μ)⁴] / E[(x − μ)²]², population moments
//     (Gaussian 3); max activation max_c |x_c|; both averaged over sequences for l = 0 (the first
//     token) and over sequences and l ≥ 1 (the rest), per layer, then over layers
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "eval/report.h"
#include "parallel/comm.h"

namespace om {

double first_token_chance(int64_t seq_length);
// Pearson kurtosis of n values (population moments, in double); 0 when all values are equal.
double kurtosis(const float* x, int64_t n);

class MetricsAccumulator {
 public:
  MetricsAccumulator(int64_t n_layers, int64_t n_heads, int64_t seq_length);
  // probs (B, Hl, T, T) f32 or f64: heads [head0, head0 + Hl) of the layer (a tensor-parallel rank's).
  void AddAttention(int64_t layer, ConstTensorView probs, int64_t head0 = 0);
  void AddHidden(int64_t layer, ConstTensorView x);         // (B, T, C) f32
  // Sums every accumulator over `comm` (tensor-parallel ranks hold other heads; data-parallel ranks
  // other sequences). A rank whose hidden states duplicate another's must not AddHidden.
  void Reduce(Comm& comm);
  // Fills the attention and hidden-state fields of `r` (seq_length, chance, first_*, key_share,
  // kurtosis_*, maxabs_*).
  void Fill(EvalReport& r) const;

 private:
  int64_t L_, H_, T_;
  std::vector<double> mass_, argmax_, queries_;  // [l·H + h]
  std::vector<double> key_sum_, key_count_;      // [(l·H + h)·T + j]
  std::vector<double> kf_, kr_, mf_, mr_, nf_, nr_;  // [l] sums and counts, first / rest
};

}  // namespace om
