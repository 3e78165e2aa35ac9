// Llama: parameters, gradients and activations of one (single-process) Llama model, with a
// hand-written forward and backward over the kernels/ ops.
//
// Tensor parallelism (DESIGN.md "Tensor parallel"): given a tp Comm of size tp > 1, this object is one
// tp rank's part of the model, with r = tp rank, Cl = C/tp, Fl = F/tp, Hl = H/tp local heads and
// Vp = V padded to a multiple of 128·tp (ParallelDims::padded_vocab), Vl = Vp/tp:
//   qkv (3·Cl, C) rows [q_r; k_r; v_r] (whole heads)   o    (C, Cl)  columns [r·Cl, (r+1)·Cl)
//   gate_up (2·Fl, C) rows [gate_r; up_r]              down (C, Fl)  columns [r·Fl, (r+1)·Fl)
//   embed, lm_head (Vl, C) logical rows [r·Vl, (r+1)·Vl)           norms replicated
// Forward and backward call parallel/tensor_parallel.h: copy_to_tp_region before qkv, gate_up and the
// LM head (backward: all-reduce of the norm's output gradient), reduce_from_tp_region after o and
// down, the vocab-parallel embedding and cross-entropy. Norm gains' gradients are identical on every
// tp rank by construction. Without a tp Comm (nullptr) the model is the single-process one and runs
// only kernels/ ops. Every Forward/Backward is then collective over tp.
//
// Precision (the constructor's dtype; DESIGN.md "Mixed precision"): f32 (training on the CPU or GPU),
// f64 (the whole-model gradient check), or bf16 (CUDA only): then the matrices (embedding, linear
// weights, LM head) and the activations are bf16, while the norm gains, every statistic (rstd, lse,
// the cross-entropy's row max / sum / target logit / losses) and EVERY parameter gradient are f32
// (WideDType): the weight-gradient GEMMs read bf16 and accumulate into the f32 gradients, so gradient
// accumulation over micro-batches is f32, as Megatron's fp32 main grads. The optimizer's f32 master
// weights are the truth; the bf16 matrices are its rounded copies (optim/distributed_optimizer.h).
//
// Memory: three arenas sized once at construction — parameters (each at its dtype above),
// gradients (same shapes, WideDType), activations (for max_micro_batch sequences of T tokens). The constructor
// sizes them with PlanMemory, which runs the same layout code without allocating, so a plan is the
// arenas' exact size (launch/memory_plan.h builds the --dry-run report on it). In memory q/k/v
// are fused per layer as `layers.{i}.attn.qkv.weight` (3·C, C) with rows [q; k; v], gate/up as
// `layers.{i}.mlp.gate_up.weight` (2·F, C) with rows [gate; up]; the embedding and LM head have
// padded_vocab() rows.
//
// Every Parameter carries its logical blocks (core/parameter.h): which memory rows hold which rows
// and columns of which logical tensor (q/k/v of the fused qkv, this tp rank's slice, no block for
// vocabulary padding rows). Initialisation, the optimizer units (optim/optimizer_units.h) and
// checkpoints work in those logical coordinates.
//
// Initialisation is a pure function of (seed, LOGICAL parameter name, logical element index):
// each logical tensor of DESIGN.md "Conventions" (embed.weight, layers.{i}.attn.q.weight, ...) draws
// from the stream of Rng(seed, "init/" + logical name) at its row-major element index; N(0, 0.02) for
// matrices, times 1/sqrt(2·L) for the output projections (attn.o, mlp.down); norm gains 1; padding
// rows 0. Precisely, for element (r, c) of a logical tensor with C_in columns and standard deviation s,
// with N(i) = portable::normal_portable(seed, stream, i) (core/portable_normal.h):
//   f32: value = float(s) * float(N(r·C_in + c))        (in float; bf16: that value rounded to nearest even)
//   f64: value = s * N(r·C_in + c)
// with s = 0.02, or 0.02 / sqrt(2·L) computed in double. The draws run on the parameter's device
// (kernels/normal_init.h), with the same bits on the CPU and a GPU. Fused tensors hold logical rows at an
// offset: row r of q / k / v is memory row r / C + r / 2C + r of qkv; row r of gate / up is memory
// row r / F + r of gate_up; embed / lm_head rows [0, V) are the logical rows, rows [V, Vp) are zero.
// A tensor-parallel rank draws exactly the indices of the logical elements it holds (rows of q_r at
// logical row r·Cl + i; element (i, j) of its o / down slice at logical (i, r·Cl + j) resp.
// (i, r·Fl + j)), without generating the full tensor, and so holds the same bits as the
// single-process model.
// Thread safety: one thread drives a Llama; the ops inside use OpenMP.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/arena.h"
#include "core/buffer.h"
#include "core/parameter.h"
#include "model/llama_config.h"
#include "parallel/comm.h"

namespace om {

// Observes a forward pass and may edit the inputs of the linear layers (the evaluator's hook, eval/:
// paper metrics and fake-quantised activations). Per layer, in this order: OnLinearInput (the qkv
// input), OnAttention, OnLinearInput (o), OnLinearInput (gate_up), OnLinearInput (down), OnBlockOutput;
// after the last layer OnLinearInput (the LM head input). A forward with a probe must not be followed
// by Backward when the probe edits activations.
class ForwardProbe {
 public:
  virtual ~ForwardProbe() = default;
  virtual bool wants_attention() const { return false; }  // OnAttention is called only when true
  virtual void OnAttention(int64_t layer, ConstTensorView probs) {}  // (B, Hl, T, T) probabilities
  virtual void OnBlockOutput(int64_t layer, ConstTensorView x) {}    // (B, T, C) residual stream after it
  virtual void OnLinearInput(TensorView x) {}                         // (B·T, K) in place
};

class Llama {
 public:
  // Bytes of the three arenas (each view rounded up to Arena::BytesFor's 256-byte alignment).
  struct MemoryBytes {
    size_t parameters = 0;   // Σ over parameters() of BytesFor(value dtype, shape)
    size_t gradients = 0;    // Σ over parameters() of BytesFor(WideDType(dtype), shape)
    size_t activations = 0;  // Σ over the activation views (Activations below)
    size_t total() const { return parameters + gradients + activations; }
  };

  // The arenas that Llama(config, max_micro_batch, any device, dtype, a tp Comm of size tp_size)
  // allocates, computed without allocating: the constructor sizes its arenas with this. The same on
  // every tp rank (shapes do not depend on the rank). REQUIRES: as the constructor, tp_size >= 1.
  static MemoryBytes PlanMemory(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size);
  // The parameters() of tp rank `tp_rank` of `tp_size` — names, shapes, dtype, logical blocks,
  // weight_decay flags — with null value and grad data (device CPU): what optimizer units are planned
  // from (optim/optimizer_units.h). The constructor carves exactly this list. REQUIRES: as PlanMemory,
  // 0 <= tp_rank < tp_size.
  static std::vector<Parameter> ParameterLayout(const LlamaConfig& config, DType dtype, int tp_size, int tp_rank);
  // Bytes of the (max_micro_batch, Hl, T, T) attention-probability Buffer that a probe wanting attention
  // makes on the first Forward after set_probe (besides the arenas).
  static size_t ProbeBytes(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size);

  // The dtype of norm gains, statistics and all gradients in a `dtype` model: f64 for f64, else f32.
  static DType WideDType(DType dtype) { return dtype == DType::kF64 ? DType::kF64 : DType::kF32; }

  // REQUIRES: config.Validate().ok(), max_micro_batch >= 1. `dtype`: kF32 for training, kF64 for the
  // whole-model gradient check, kBF16 for mixed-precision training on CUDA (see Precision above).
  // `tp`: the tensor-parallel group (not owned, must outlive the model), or nullptr for one process.
  // With tp: REQUIRES n_heads and ffn divisible by tp->size() (ParallelDims::ValidateModel).
  Llama(const LlamaConfig& config, int64_t max_micro_batch, Device device = Device::Cpu(),
        DType dtype = DType::kF32, Comm* tp = nullptr);
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;

  void Initialize(uint64_t seed);

  // Runs the forward pass on `tokens` (B, T) i32 and the cross-entropy against `targets` (B, T) i32
  // (kIgnoreTarget = masked), keeping what backward needs. Returns the mean loss over non-ignored
  // targets (0 if all are ignored). B <= max_micro_batch; T = config.seq_length.
  double Forward(ConstTensorView tokens, ConstTensorView targets);
  // The same forward without reading anything back to the host (the training step's form, so a GPU
  // never waits for the host inside a step): the per-token losses (B, T) at WideDType (0 where the
  // target is ignored) are copied into `losses` with copy_async, on the model's device or in host
  // memory (page-locked on CUDA, and not to be read before the device has passed the copy: the
  // caller's next copy_bytes). The mean loss is then Σ losses / target_count(), summed in element order
  // in double, which is what Forward(tokens, targets) returns. Host `tokens` and `targets` are copied
  // to the device with copy_async too: page-locked ones must stay unchanged until the device has
  // passed the copies. Host `targets` are counted where they are; device ones are read back (a wait).
  void Forward(ConstTensorView tokens, ConstTensorView targets, TensorView losses);
  // Non-ignored targets of the last Forward (what the mean loss divides by).
  int64_t target_count() const { return target_count_; }
  // The per-token losses (B, T) of the last Forward on the model's device, WideDType; valid until the next
  // Forward (the training step checks them for finiteness on the device: DistributedOptimizer::CheckFinite).
  ConstTensorView last_losses() const;
  // The mean loss from per-token `losses` (f32 or f64) and the count of non-ignored targets: their sum in
  // element order in double over target_count (0 when it is 0), what Forward(tokens, targets) returns.
  // Host memory is read in place; device memory is read back (a wait).
  static double MeanLoss(ConstTensorView losses, int64_t target_count);

  // Backward of the last Forward: parameter gradients accumulate (+=) the gradient of
  // loss_scale · (mean loss), so gradient accumulation over k micro-batches passes 1/k.
  void Backward(float loss_scale);

  void ZeroGrad();  // all gradients to 0 (stream-ordered: one zero_async over the gradient arena)

  // The training step's micro-batch: Forward(tokens, targets, losses) then Backward(loss_scale), the same work in the
  // same order, so the same bits, except that without tp the cross-entropy's backward runs with its forward
  // (cross_entropy_forward_backward: the same bits in one pass over the logits instead of two, so the logits are
  // their gradient once the forward is done). With CUDA graphs on (set_cuda_graphs), the device work between the
  // input copies and the loss copy (embedding .. cross-entropy, its backward .. the embedding's) is one CUDA graph,
  // launched on a stream of the model's own that is joined to the default stream before and after (so it is ordered
  // with everything else exactly as the eager work): one launch instead of ~24 op calls per layer. Graphs are kept
  // per (B, loss gradient 1/target_count·loss_scale), the values baked into them: the first micro-batch of a kind
  // runs eagerly (it warms up what a capture may not do: cuBLASLt plans and workspace, lazy kernel loading, the
  // memory pool), the second is captured, later ones replay it; at most kMaxCudaGraphs kinds are kept (the least
  // recently used goes). Eager instead, whatever the setting: under the op profiler (per-op times), with a probe or a
  // grad-ready hook, with OM_SYNC_DEBUG=1 (it synchronizes after every launch, which a capture cannot hold).
  void ForwardBackward(ConstTensorView tokens, ConstTensorView targets, TensorView losses, float loss_scale);
  // REQUIRES for on: a CUDA model (any tp: the tp collectives are captured too, llama_graph.cc). Off
  // drops the graphs.
  void set_cuda_graphs(bool on);
  bool cuda_graphs() const { return graphs_ != nullptr; }
  static constexpr int kMaxCudaGraphs = 4;
  struct GraphCounts {
    int64_t eager = 0;      // micro-batches run eagerly by ForwardBackward with graphs on
    int64_t captures = 0;   // graphs captured
    int64_t launches = 0;   // micro-batches replayed from a graph (the captured one included)
  };
  GraphCounts graph_counts() const;

  // Every following Forward reports to `probe` (not owned; nullptr: none). With attention requested,
  // a (max_micro_batch, Hl, T, T) probability buffer is allocated on first use.
  void set_probe(ForwardProbe* probe) { probe_ = probe; }

  // Told by each following backward as parameter gradients become final for its micro-batch:
  // fn(first, count) names parameters() [first, first + count), in the order the backward finishes
  // them: the LM head and the final norm, each layer's six from the last layer down, the embedding;
  // every op that adds to them has been issued (on the model's stream) when fn runs. The trainer sets
  // it for a step's last micro-batch with --overlap-grad-reduce (DistributedOptimizer::GradientsReady),
  // then clears it (an empty function). While it is set, ForwardBackward runs eagerly (a graph replay
  // could not call it part-way).
  using GradReadyFn = std::function<void(size_t first, size_t count)>;
  static constexpr int64_t kParamsPerLayer = 6;  // parameters() = embedding, 6 per layer, final norm, LM head
  void set_grad_ready(GradReadyFn fn) { grad_ready_ = std::move(fn); }

  std::span<Parameter> parameters() { return params_; }
  std::span<const Parameter> parameters() const { return params_; }
  const LlamaConfig& config() const { return config_; }
  int64_t max_micro_batch() const { return max_micro_batch_; }
  DType dtype() const { return dtype_; }
  int tp_size() const { return tp_size_; }
  int tp_rank() const { return tp_rank_; }
  int64_t padded_vocab() const { return padded_vocab_; }  // Vp (all tp ranks together)
  int64_t local_vocab() const { return padded_vocab_ / tp_size_; }  // Vl: rows of embed / lm_head here
  // Per parameters() entry: true when the tensor is replicated on every tp rank (the norm gains), so
  // a global gradient norm counts it on one tp rank only.
  std::vector<bool> tp_replicated() const;
  // Bytes held by the parameter, gradient and activation arenas (== PlanMemory of this model's shape).
  MemoryBytes arena_bytes() const;
  size_t memory_bytes() const { return arena_bytes().total(); }

  // The logits (B, T, Vl) of the last Forward (this tp rank's vocabulary columns, padding included);
  // Backward overwrites them with their gradient (ForwardBackward without tp already in its forward).
  ConstTensorView logits() const;

 private:
  // One layer's weights, or their gradients (same shapes): views into param_arena_ / grad_arena_.
  struct LayerTensors {
    TensorView attn_norm;  // (C) or (1)
    TensorView qkv;        // (3Cl, C)  rows [q; k; v] (tp = 1: Cl = C, Fl = F, Hl = H)
    TensorView o;          // (C, Cl)
    TensorView mlp_norm;   // (C) or (1)
    TensorView gate_up;    // (2Fl, C)  rows [gate; up]
    TensorView down;       // (C, Fl)
  };
  struct Tensors {
    TensorView embed;       // (Vl, C)
    std::vector<LayerTensors> layers;
    TensorView final_norm;  // (C) or (1)
    TensorView lm_head;     // (Vl, C)
  };
  // What backward needs from one layer's forward; every view has max_micro_batch rows in dim 0.
  struct LayerActivations {
    TensorView x;          // (Bm, T, C)    the layer's input (residual stream)
    TensorView attn_norm;  // (Bm, T, C)    RMSNorm(x)
    TensorView attn_rstd;  // (Bm, T)
    TensorView qkv;        // (Bm, T, 3Cl)  after RoPE on q and k
    TensorView attn_out;   // (Bm, T, Cl)   attention output, before the O projection
    TensorView lse;        // (Bm, Hl, T)
    TensorView x_mid;      // (Bm, T, C)    x + O(attention): the MLP block's input
    TensorView mlp_norm;   // (Bm, T, C)
    TensorView mlp_rstd;   // (Bm, T)
    TensorView gate_up;    // (Bm, T, 2Fl)
    TensorView swiglu;     // (Bm, T, Fl)
  };
  struct Activations {
    TensorView tokens;        // (Bm, T)      i32 copy of the last Forward's tokens
    TensorView targets;       // (Bm, T)      i32 copy of its targets
    std::vector<LayerActivations> layers;
    TensorView x_out;         // (Bm, T, C)   output of the last layer
    TensorView final_norm;    // (Bm, T, C)
    TensorView final_rstd;    // (Bm, T)
    TensorView logits;        // (Bm, T, Vl)   Backward overwrites them with their gradient
    TensorView row_max, sum_exp, target_logit, losses;  // (Bm, T) cross-entropy statistics
    // Backward scratch (llama_backward.cc says which gradient lives where, and why sharing is safe).
    TensorView dx;            // (Bm, T, C)            gradient of the residual stream
    TensorView dwide;         // (Bm·T·max(3Cl, 2Fl))  dqkv | dgate_up
    TensorView dnarrow;       // (Bm·T·max(C, Fl))     dattn | dswiglu | a norm's dout
  };

  // Carves every activation view of a (config, max_micro_batch, dtype, tp_size) model through
  // `carve(name, dtype, shape) -> TensorView` into `act`: PlanMemory sums the sizes, the constructor
  // then carves the arena with the same calls.
  template <typename CarveFn>
  static void LayoutActivations(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size,
                                Activations& act, CarveFn&& carve);
  // Views of an activation carve (Bm, T, ...) restricted to its first B sequences: First keeps the
  // shape, Rows flattens to (B·T, rest) for the row-wise ops; Scratch views a flat carve as `shape`.
  static TensorView First(const TensorView& v, int64_t B);
  static TensorView Rows(const TensorView& v, int64_t B);
  static TensorView Scratch(const TensorView& flat, Shape shape, const char* name);
  // OM_CHECKs the constructor's REQUIRES for a tp_size split (config valid, batch >= 1, f32/f64/bf16, the
  // heads and FFN divisible by tp_size).
  static void CheckLayout(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size);
  // Layer i on the first B sequences: x -> x_next (forward), dx_next -> dx (backward, in act_.dx).
  void ForwardLayer(int64_t i, int64_t B);
  // out (N, C) = skip + in (N, K) · wᵀ for the o and down projections (w (C, K) row-parallel over tp):
  // at tp = 1 one GEMM with the add fused in its epilogue, else GEMM, all-reduce over tp, add.
  void residual_linear(const TensorView& out, const TensorView& in, const TensorView& w, const TensorView& skip);
  void BackwardLayer(int64_t i, int64_t B);  // llama_backward.cc
  // Forward = Upload (checks; tokens and targets to the device; batch_, target_count_) + ForwardCompute
  // (device work only, from the uploaded ids) + CopyLosses (per-token losses to `losses_out`);
  // Backward = BackwardCompute(batch_, LossGradient(loss_scale)): device work only. The compute parts
  // read nothing from the host but their arguments, so a CUDA graph can hold them (llama_graph.cc).
  // ForwardCompute with a `dloss` (ForwardBackward's): without tp the cross-entropy's backward with that
  // loss gradient runs with its forward, and it returns true, which the BackwardCompute after it is told
  // (logits_are_gradient) so that it does not run it again; otherwise it returns false.
  void Upload(ConstTensorView tokens, ConstTensorView targets, ConstTensorView losses_out);
  bool ForwardCompute(int64_t B, const float* dloss = nullptr);
  void CopyLosses(TensorView losses_out);
  float LossGradient(float loss_scale) const;
  void BackwardCompute(int64_t B, float dloss, bool logits_are_gradient = false);
  // ForwardBackward's device work: ForwardCompute(B, &dloss), then BackwardCompute told what it did.
  void ForwardBackwardCompute(int64_t B, float dloss);

  LlamaConfig config_;
  int64_t max_micro_batch_;
  Device device_;
  DType dtype_;                // the matrices' and activations' dtype
  DType wide_;                 // WideDType(dtype_): gains, statistics, gradients
  ExecContext ctx_;
  Comm* tp_ = nullptr;         // tensor-parallel group, or nullptr
  int tp_size_ = 1, tp_rank_ = 0;
  int64_t padded_vocab_ = 0;   // Vp
  Arena param_arena_, grad_arena_, act_arena_;
  std::vector<Parameter> params_;
  Tensors w_, g_;            // weights and their gradients
  Activations act_;
  ForwardProbe* probe_ = nullptr;
  GradReadyFn grad_ready_;
  struct CudaGraphs;  // llama_graph.cc
  struct CudaGraphsDelete {
    void operator()(CudaGraphs* g) const;  // llama_graph.cc, where CudaGraphs is complete
  };
  std::unique_ptr<CudaGraphs, CudaGraphsDelete> graphs_;  // with set_cuda_graphs(true)
  Buffer probs_;             // (Bm, Hl, T, T) attention probabilities for a probe that wants them
  int64_t batch_ = 0;        // B of the last Forward; 0 before the first
  int64_t target_count_ = 0; // non-ignored targets of the last Forward
};

}  // namespace om
