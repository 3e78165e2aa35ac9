// LlamaConfig presets, validation and the parameter / FLOP counts (model/llama_config.h).
// Validation messages name the training flag (Megatron's long names) that sets each field, so a bad
// command line reads "--hidden-size 100 is not divisible by --num-attention-heads 3".
#include "model/llama_config.h"

#include <cmath>
#include <limits>

namespace om {
namespace {

struct PresetRow {
  const char* name;
  int64_t vocab_size, hidden, ffn, n_heads, n_layers, seq_length;
};

// Paper presets (DESIGN.md "Model"), then the CPU presets. tiny is the 7.4M-parameter model that the
// PyTorch comparison uses; small (16.9M) has ~2.6x its matmul work, for longer CPU runs.
constexpr PresetRow kPresets[] = {
    {"llama-60m", 32000, 512, 1376, 8, 8, 256},     {"llama-130m", 32000, 768, 2048, 12, 12, 256},
    {"llama-350m", 32000, 1024, 2736, 16, 24, 256}, {"llama-1b", 32000, 2048, 5461, 32, 24, 256},
    {"tiny", 8192, 256, 688, 4, 4, 256},            {"small", 8192, 384, 1024, 6, 6, 256},
};

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Norm gain elements per norm: C for RMSNorm, 1 for RMSNorm-S.
int64_t norm_size(const LlamaConfig& c) { return c.norm == NormKind::kRmsNormS ? 1 : c.hidden; }

}  // namespace

StatusOr<LlamaConfig> LlamaConfig::Preset(std::string_view name) {
  for (const PresetRow& p : kPresets) {
    if (name != p.name) continue;
    LlamaConfig c;
    c.name = p.name;
    c.vocab_size = p.vocab_size;
    c.hidden = p.hidden;
    c.ffn = p.ffn;
    c.n_heads = p.n_heads;
    c.n_layers = p.n_layers;
    c.seq_length = p.seq_length;
    return c;
  }
  return Status::NotFound(format_message("--model '%.*s' is not a known preset; valid presets: %s",
                                         static_cast<int>(name.size()), name.data(), join(PresetNames()).c_str()));
}

std::vector<std::string> LlamaConfig::PresetNames() {
  std::vector<std::string> names;
  for (const PresetRow& p : kPresets) names.emplace_back(p.name);
  return names;
}

Status LlamaConfig::Validate() const {
  const struct {
    const char* flag;
    int64_t value;
  } sizes[] = {{"--vocab-size", vocab_size},   {"--hidden-size", hidden}, {"--ffn-hidden-size", ffn},
               {"--num-attention-heads", n_heads}, {"--num-layers", n_layers}, {"--seq-length", seq_length}};
  for (const auto& s : sizes) {
    if (s.value <= 0) {
      return Status::InvalidArgument(
          format_message("%s %ld must be positive (model '%s')", s.flag, static_cast<long>(s.value), name.c_str()));
    }
  }
  // Token ids are i32 throughout (data, embedding, cross-entropy).
  if (vocab_size > std::numeric_limits<int32_t>::max()) {
    return Status::InvalidArgument(format_message("--vocab-size %ld does not fit the i32 token ids (max %d)",
                                                  static_cast<long>(vocab_size),
                                                  std::numeric_limits<int32_t>::max()));
  }
  if (hidden % n_heads != 0) {
    return Status::InvalidArgument(format_message("--hidden-size %ld is not divisible by --num-attention-heads %ld",
                                                  static_cast<long>(hidden), static_cast<long>(n_heads)));
  }
  if (head_dim() % 2 != 0) {
    return Status::InvalidArgument(format_message(
        "the head dimension --hidden-size / --num-attention-heads = %ld / %ld = %ld must be even (RoPE rotates "
        "channel pairs); choose another --num-attention-heads",
        static_cast<long>(hidden), static_cast<long>(n_heads), static_cast<long>(head_dim())));
  }
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) {
    return Status::InvalidArgument(format_message("--norm-epsilon %g must be positive and finite", norm_eps));
  }
  if (!(rope_theta > 0.0f) || !std::isfinite(rope_theta)) {
    return Status::InvalidArgument(format_message("--rotary-base %g must be positive and finite", rope_theta));
  }
  return Status::Ok();
}

int64_t LlamaConfig::num_parameters() const {
  // embed + lm_head (V, C) each, per layer two norms and the linear layers, and the final norm.
  const int64_t per_layer = 2 * norm_size(*this) + 4 * hidden * hidden + 3 * hidden * ffn;
  return 2 * vocab_size * hidden + n_layers * per_layer + norm_size(*this);
}

int64_t LlamaConfig::num_matmul_parameters() const {
  // Per layer q, k, v, o (C x C each) and gate, up, down (F x C each); plus the LM head (V x C),
  // counted with the logical V (the padding columns are wasted work, not model FLOPs).
  return n_layers * (4 * hidden * hidden + 3 * hidden * ffn) + vocab_size * hidden;
}

double LlamaConfig::flops_per_token() const {
  // 6 = 2 (multiply-add) x 3 (forward, input gradient, weight gradient) per matmul parameter; the
  // attention products q·kᵀ and p·v are 2 matmuls of 2·T·C FLOPs per token and layer forward, x3
  // for forward + backward: 12·L·C·T (Megatron / PaLM accounting, causal mask not discounted).
  return 6.0 * static_cast<double>(num_matmul_parameters()) +
         12.0 * static_cast<double>(n_layers) * static_cast<double>(hidden) * static_cast<double>(seq_length);
}

std::string LlamaConfig::ToString() const {
  const double n = static_cast<double>(num_parameters());
  const std::string count = n >= 1e9 ? format_message("%.2fB", n / 1e9) : format_message("%.1fM", n / 1e6);
  return format_message("%s: V=%ld C=%ld F=%ld H=%ld L=%ld T=%ld %s %s, %s params", name.c_str(),
                        static_cast<long>(vocab_size), static_cast<long>(hidden), static_cast<long>(ffn),
                        static_cast<long>(n_heads), static_cast<long>(n_layers), static_cast<long>(seq_length),
                        attention_kind_name(attention), norm_kind_name(norm), count.c_str());
}

const char* attention_kind_name(AttentionKind k) { return k == AttentionKind::kSoftmax1 ? "softmax1" : "softmax"; }

const char* norm_kind_name(NormKind k) { return k == NormKind::kRmsNormS ? "rmsnorm-s" : "rmsnorm"; }

StatusOr<AttentionKind> parse_attention_kind(std::string_view s) {
  if (s == "softmax") return AttentionKind::kSoftmax;
  if (s == "softmax1" || s == "softmax-1") return AttentionKind::kSoftmax1;
  return Status::InvalidArgument(format_message("--attention '%.*s' is not valid; valid values: softmax, softmax1 "
                                                "(also spelled softmax-1)",
                                                static_cast<int>(s.size()), s.data()));
}

StatusOr<NormKind> parse_norm_kind(std::string_view s) {
  if (s == "rmsnorm") return NormKind::kRmsNorm;
  if (s == "rmsnorm-s") return NormKind::kRmsNormS;
  return Status::InvalidArgument(format_message("--norm '%.*s' is not valid; valid values: rmsnorm, rmsnorm-s",
                                                static_cast<int>(s.size()), s.data()));
}

}  // namespace om
