// LlamaConfig: the architecture of one Llama model (DESIGN.md "Model") and its presets.
//   paper presets: llama-60m, llama-130m, llama-350m, llama-1b (vocab 32000, seq 256)
//   CPU presets:   tiny  (trains visibly in <= 3 minutes on 2 cores), small
// Vocabulary: vocab_size is the tokenizer's V; in memory the embedding and LM head have
// padded_vocab() = V rounded up to a multiple of 128 rows (Megatron; padding is masked from the loss).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/attention.h"
#include "kernels/rmsnorm.h"

namespace om {

struct LlamaConfig {
  std::string name = "custom";
  int64_t vocab_size = 32000;  // V: tokenizer vocabulary
  int64_t hidden = 512;        // C
  int64_t ffn = 1376;          // F
  int64_t n_heads = 8;         // H (D = C / H)
  int64_t n_layers = 8;        // L
  int64_t seq_length = 256;    // T
  AttentionKind attention = AttentionKind::kSoftmax;
  NormKind norm = NormKind::kRmsNorm;
  float norm_eps = 1e-6f;
  float rope_theta = 10000.0f;

  static StatusOr<LlamaConfig> Preset(std::string_view name);  // NotFound lists the presets
  static std::vector<std::string> PresetNames();
  // InvalidArgument naming the field: C divisible by H, D even (RoPE), everything positive.
  Status Validate() const;

  int64_t head_dim() const { return hidden / n_heads; }
  int64_t padded_vocab() const { return (vocab_size + 127) / 128 * 128; }
  // Parameters with the logical (unpadded) vocabulary; the number people quote.
  int64_t num_parameters() const;
  // Parameters that take part in matmuls per token (every linear layer incl. the LM head, not the
  // embedding lookup or the norms): N_matmul in the FLOPs formula.
  int64_t num_matmul_parameters() const;
  // Training FLOPs per token (forward + backward): 6·N_matmul + 12·L·C·T (the attention score and
  // value products, causal masking not discounted, as in Megatron/PaLM MFU accounting).
  double flops_per_token() const;
  std::string ToString() const;  // "tiny: V=8192 C=256 F=688 H=4 L=4 T=256 softmax1 rmsnorm, 7.4M params"
};

const char* attention_kind_name(AttentionKind k);  // "softmax" | "softmax1"
const char* norm_kind_name(NormKind k);            // "rmsnorm" | "rmsnorm-s"
StatusOr<AttentionKind> parse_attention_kind(std::string_view s);
StatusOr<NormKind> parse_norm_kind(std::string_view s);

}  // namespace om
