// A LlamaConfig of arbitrary small shape for model tests (tests/model, tests/parallel, tests/cuda): the
// named sizes, every other field at its default (softmax attention, RMSNorm, ...); callers set the rest.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "model/llama_config.h"

namespace om {

inline LlamaConfig test_llama_config(int64_t V, int64_t C, int64_t F, int64_t H, int64_t L, int64_t T,
                                     std::string name = "test") {
  LlamaConfig c;
  c.name = std::move(name);
  c.vocab_size = V;
  c.hidden = C;
  c.ffn = F;
  c.n_heads = H;
  c.n_layers = L;
  c.seq_length = T;
  return c;
}

}  // namespace om
