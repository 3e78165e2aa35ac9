// Llama: parameters, gradients and activations of one (single-process) Llama model, with a
// hand-written forward and backward over the kernels/ ops. Parallelism-agnostic (STYLE.md §14).
//
// Memory: three arenas sized once at construction — parameters (f32, or the constructor's dtype),
// gradients (same layout), activations (for max_micro_batch sequences of T tokens). In memory q/k/v
// are fused per layer as `layers.{i}.attn.qkv.weight` (3·C, C) with rows [q; k; v], gate/up as
// `layers.{i}.mlp.gate_up.weight` (2·F, C) with rows [gate; up]; the embedding and LM head have
// padded_vocab() rows.
//
// Initialisation is a pure function of (seed, LOGICAL parameter name, logical element index):
// each logical tensor of DESIGN.md "Conventions" (embed.weight, layers.{i}.attn.q.weight, ...) draws
// from Rng(seed, "init/" + logical name) at its row-major element index; N(0, 0.02) for matrices,
// times 1/sqrt(2·L) for the output projections (attn.o, mlp.down); norm gains 1; padding rows 0.
// Precisely, for element (r, c) of a logical tensor with C_in columns and standard deviation s:
//   f32: value = float(s) * Rng(seed, "init/<logical name>").Normal(r·C_in + c)        (in float)
//   f64: value = s * Rng(seed, "init/<logical name>").NormalDouble(r·C_in + c)
// with s = 0.02, or 0.02 / sqrt(2·L) computed in double. Fused tensors hold logical rows at an
// offset: row r of q / k / v is memory row r / C + r / 2C + r of qkv; row r of gate / up is memory
// row r / F + r of gate_up; embed / lm_head rows [0, V) are the logical rows, rows [V, Vp) are zero.
// A tensor-parallel rank that owns logical rows [r0, r1) draws exactly those indices and so holds the
// same bits as the single-process model.
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
  // REQUIRES: config.Validate().ok(), max_micro_batch >= 1. `dtype` is the dtype of every arena
  // (parameters, gradients, activations): kF32 for training, kF64 for the whole-model gradient check.
  Llama(const LlamaConfig& config, int64_t max_micro_batch, Device device = Device::Cpu(),
        DType dtype = DType::kF32);

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
  DType dtype() const { return dtype_; }
  // Bytes held by the parameter, gradient and activation arenas.
  size_t memory_bytes() const;

  // The logits (B, T, Vp) of the last Forward (padding columns included): for tests and probes.
  ConstTensorView logits() const;

 private:
  // One layer's weights, or their gradients (same shapes): views into param_arena_ / grad_arena_.
  struct LayerTensors {
    TensorView attn_norm;  // (C) or (1)
    TensorView qkv;        // (3C, C)   rows [q; k; v]
    TensorView o;          // (C, C)
    TensorView mlp_norm;   // (C) or (1)
    TensorView gate_up;    // (2F, C)   rows [gate; up]
    TensorView down;       // (C, F)
  };
  struct Tensors {
    TensorView embed;       // (Vp, C)
    std::vector<LayerTensors> layers;
    TensorView final_norm;  // (C) or (1)
    TensorView lm_head;     // (Vp, C)
  };
  // What backward needs from one layer's forward; every view has max_micro_batch rows in dim 0.
  struct LayerActivations {
    TensorView x;          // (Bm, T, C)    the layer's input (residual stream)
    TensorView attn_norm;  // (Bm, T, C)    RMSNorm(x)
    TensorView attn_rstd;  // (Bm, T)
    TensorView qkv;        // (Bm, T, 3C)   after RoPE on q and k
    TensorView attn_out;   // (Bm, T, C)    attention output, before the O projection
    TensorView lse;        // (Bm, H, T)
    TensorView x_mid;      // (Bm, T, C)    x + O(attention): the MLP block's input
    TensorView mlp_norm;   // (Bm, T, C)
    TensorView mlp_rstd;   // (Bm, T)
    TensorView gate_up;    // (Bm, T, 2F)
    TensorView swiglu;     // (Bm, T, F)
  };
  struct Activations {
    TensorView tokens;        // (Bm, T)      i32 copy of the last Forward's tokens
    TensorView targets;       // (Bm, T)      i32 copy of its targets
    std::vector<LayerActivations> layers;
    TensorView x_out;         // (Bm, T, C)   output of the last layer
    TensorView final_norm;    // (Bm, T, C)
    TensorView final_rstd;    // (Bm, T)
    TensorView logits;        // (Bm, T, Vp)
    TensorView row_max, sum_exp, target_logit, losses;  // (Bm, T) cross-entropy statistics
    // Backward scratch (llama_backward.cc says which gradient lives where, and why sharing is safe).
    TensorView dx;            // (Bm, T, C)            gradient of the residual stream
    TensorView dwide;         // (Bm·T·max(3C, 2F))    dqkv | dgate_up | a norm's dinp
    TensorView dnarrow;       // (Bm·T·max(C, F))      dattn | dswiglu | a norm's dout
    TensorView dlogits;       // (Bm, T, Vp)
  };

  // Carves every activation view through `carve`: once to size the arena, once to fill act_.
  template <typename CarveFn>
  void LayoutActivations(CarveFn&& carve);
  // Views of an activation carve (Bm, T, ...) restricted to its first B sequences: First keeps the
  // shape, Rows flattens to (B·T, rest) for the row-wise ops; Scratch views a flat carve as `shape`.
  static TensorView First(const TensorView& v, int64_t B);
  static TensorView Rows(const TensorView& v, int64_t B);
  static TensorView Scratch(const TensorView& flat, Shape shape, const char* name);
  // Layer i on the first B sequences: x -> x_next (forward), dx_next -> dx (backward, in act_.dx).
  void ForwardLayer(int64_t i, int64_t B);
  void BackwardLayer(int64_t i, int64_t B);  // llama_backward.cc

  LlamaConfig config_;
  int64_t max_micro_batch_;
  Device device_;
  DType dtype_;
  ExecContext ctx_;
  Arena param_arena_, grad_arena_, act_arena_;
  std::vector<Parameter> params_;
  Tensors w_, g_;            // weights and their gradients
  Activations act_;
  int64_t batch_ = 0;        // B of the last Forward; 0 before the first
  int64_t target_count_ = 0; // non-ignored targets of the last Forward
};

}  // namespace om
