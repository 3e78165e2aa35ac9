// Llama: parameters, gradients and activations of one (single-process) Llama model, with a
// hand-written forward and backward over the kernels/ ops. Parallelism-agnostic (STYLE.md §14).
//
// Memory: three arenas sized once at construction — parameters (f32), gradients (same layout),
// activations (for max_micro_batch sequences of T tokens). In memory q/k/v are fused per layer as
// `layers.{i}.attn.qkv.weight` (3·C, C) with rows [q; k; v], gate/up as `layers.{i}.mlp.gate_up.weight`
// (2·F, C) with rows [gate; up]; the embedding and LM head have padded_vocab() rows.
//
// Initialisation is a pure function of (seed, LOGICAL parameter name, logical element index):
// each logical tensor of DESIGN.md "Conventions" (embed.weight, layers.{i}.attn.q.weight, ...) draws
// from Rng(seed, "init/" + logical name) at its row-major element index; N(0, 0.02) for matrices,
// times 1/sqrt(2·L) for the output projections (attn.o, mlp.down); norm gains 1; padding rows 0.
// Thread safety: one thread drives a Llama; the ops inside use OpenMP.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/arena.h"
#include "core/parameter.h"
#include "model/llama_config.h"

namespace om {

class Llama {
 public:
  // REQUIRES: config.Validate().ok(), max_micro_batch >= 1.
  Llama(const LlamaConfig& config, int64_t max_micro_batch, Device device = Device::Cpu());

  void Initialize(uint64_t seed);

  // Runs the forward pass on `tokens` (B, T) i32 and the cross-entropy against `targets` (B, T) i32
  // (kIgnoreTarget = masked), keeping what backward needs. Returns the mean loss over non-ignored
  // targets (0 if all are ignored). B <= max_micro_batch; T = config.seq_length.
  double Forward(ConstTensorView tokens, ConstTensorView targets);

  // Backward of the last Forward: parameter gradients accumulate (+=) the gradient of
  // loss_scale · (mean loss), so gradient accumulation over k micro-batches passes 1/k.
  void Backward(float loss_scale);

  void ZeroGrad();  // all gradients to 0

  std::span<Parameter> parameters() { return params_; }
  std::span<const Parameter> parameters() const { return params_; }
  const LlamaConfig& config() const { return config_; }
  int64_t max_micro_batch() const { return max_micro_batch_; }
  // Bytes held by the parameter, gradient and activation arenas.
  size_t memory_bytes() const;

 private:
  // ... implementation-defined layer views and activation views ...
  LlamaConfig config_;
  int64_t max_micro_batch_;
  Device device_;
  std::vector<Parameter> params_;
};

}  // namespace om
