// Llama: construction (arena layout), initialisation and the forward pass (model/llama.h).
// The backward is in llama_backward.cc.
//
// Forward, per layer i with x = the residual stream (B·T, C):
//   attn_norm = RMSNorm(x)                 qkv = attn_norm · Wqkvᵀ          RoPE(q, k) in place
//   attn_out  = attention(qkv)             x_mid = x + attn_out · Woᵀ
//   mlp_norm  = RMSNorm(x_mid)             gate_up = mlp_norm · Wguᵀ        swiglu = silu(gate) ⊙ up
//   x_next    = x_mid + swiglu · Wdownᵀ
// then final RMSNorm, logits = final_norm · Wlmᵀ (B·T, Vp) and the cross-entropy over the first V
// columns. The output projections write straight into the next residual buffer and the residual
// add runs in place (out aliasing a), so no (B·T, C) temporary is needed.
// With a tp Comm (model/llama.h): the embedding is vocab-parallel, the O and down outputs are
// all-reduced (reduce_from_tp_region) before their residual add, attention runs on the Hl local heads,
// and the loss is the vocab-parallel cross-entropy over this rank's Vl logit columns.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/normal_init.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/llama.h"
#include "parallel/parallel_dims.h"
#include "parallel/tensor_parallel.h"

namespace om {
namespace {

// Parameters in memory, in the order of Llama::parameters(): the embedding, six per layer, the
// final norm and the LM head. Llama builds w_ and g_ from these indices.
constexpr int64_t kPerLayer = Llama::kParamsPerLayer;

// The tp-only ParallelDims of a model split over tp_size ranks: its ValidateModel and padded_vocab
// (which for tp_size 1 equals LlamaConfig::padded_vocab()).
ParallelDims tp_dims(int tp_size) {
  ParallelDims dims;
  dims.tp = tp_size;
  dims.world_size = tp_size;
  return dims;
}

// Every parameter is filled by normal_init on its own device (kernels/normal_init.h: the same bits on
// the CPU and a GPU). Norm gains (`gain`): 1 everywhere (mean 1, stddev 0). Every other parameter: 0
// everywhere (padding rows stay 0), then each logical block's draws with standard deviation
// stddev(block). Element (r, c) of a logical tensor with Cl columns is draw r·Cl + c of its own stream
// Rng(seed, "init/" + name), so a rank draws only the indices it holds.
template <typename StddevFn>
void init_tensor(const ExecContext& ctx, const Parameter& p, uint64_t seed, bool gain, StddevFn&& stddev) {
  const TensorView& dst = p.value;
  if (gain) {  // exactly 1: mean + 0 · N with N always finite (core/portable_normal.h)
    normal_init(ctx, {.out = reshape(dst, Shape{dst.numel(), 1}), .seed = seed,
                      .stream = rng_stream_id("init/" + std::string(dst.name)), .row_stride = 1, .mean = 1.0,
                      .stddev = 0.0});
    return;
  }
  zero_async(ctx, dst.data, dst.nbytes());
  const int64_t cols = p.cols();
  const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(dst.dtype);
  for (const LogicalBlock& b : p.blocks) {
    const int64_t lcols = b.shape.ndim == 2 ? b.shape[1] : 1;
    const TensorView rows = make_view(static_cast<char*>(dst.data) + static_cast<size_t>(b.row0) * row_bytes,
                                      dst.dtype, Shape{b.rows, cols}, dst.device, dst.name);
    normal_init(ctx, {.out = rows, .seed = seed, .stream = rng_stream_id("init/" + b.name),
                      .first = static_cast<uint64_t>(b.logical_row0 * lcols + b.col0), .row_stride = lcols,
                      .mean = 0.0, .stddev = stddev(b)});
  }
}

// Sum of a float tensor in double, in element order (deterministic): host memory read in place,
// device memory read back first.
template <typename T>
double host_sum(const ConstTensorView& v) {
  const T* x = v.data_as<const T>();
  std::vector<T> host;
  if (v.device.kind != DeviceKind::kCpu) {
    host.resize(static_cast<size_t>(v.numel()));
    copy_bytes(host.data(), Device::Cpu(), v.data, v.device, v.nbytes());
    x = host.data();
  }
  double s = 0.0;
  for (int64_t i = 0; i < v.numel(); ++i) s += static_cast<double>(x[i]);
  return s;
}

}  // namespace

TensorView Llama::First(const TensorView& v, int64_t B) {
  OM_CHECK(B >= 0 && B <= v.dim(0), "'%s' %s has no first %ld rows", v.name, v.shape.ToString().c_str(),
           static_cast<long>(B));
  TensorView out = v;  // dim 0 is outermost, so the first B rows are a contiguous prefix
  out.shape.dims[0] = B;
  return out;
}

TensorView Llama::Rows(const TensorView& v, int64_t B) {
  TensorView f = First(v, B);
  const int64_t rows = B * v.dim(1);
  return v.ndim() == 2 ? reshape(f, Shape{rows}) : reshape(f, Shape{rows, f.numel() / std::max<int64_t>(rows, 1)});
}

TensorView Llama::Scratch(const TensorView& flat, Shape shape, const char* name) {
  OM_CHECK(shape.numel() <= flat.numel(), "scratch '%s' %s does not fit '%s' %s", name, shape.ToString().c_str(),
           flat.name, flat.shape.ToString().c_str());
  return make_view(flat.data, flat.dtype, shape, flat.device, name);
}

// The checks shared by the constructor and the static planners (model/llama.h REQUIRES).
void Llama::CheckLayout(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size) {
  const Status valid = config.Validate();
  OM_CHECK(valid.ok(), "Llama: %s", valid.ToString().c_str());
  OM_CHECK(max_micro_batch >= 1, "Llama: max_micro_batch %ld must be >= 1", static_cast<long>(max_micro_batch));
  OM_CHECK(dtype == DType::kF32 || dtype == DType::kF64 || dtype == DType::kBF16,
           "Llama: dtype %s; the model runs in f32, bf16 (CUDA) or f64 (checks)", std::string(dtype_name(dtype)).c_str());
  OM_CHECK(tp_size >= 1, "Llama: tp size %d must be >= 1", tp_size);
  const Status split = tp_dims(tp_size).ValidateModel(config.n_heads, config.ffn, config.vocab_size);
  OM_CHECK(split.ok(), "Llama: %s", split.ToString().c_str());
}

std::vector<Parameter> Llama::ParameterLayout(const LlamaConfig& config, DType dtype, int tp_size, int tp_rank) {
  CheckLayout(config, 1, dtype, tp_size);
  OM_CHECK(tp_rank >= 0 && tp_rank < tp_size, "Llama: tp rank %d outside tp size %d", tp_rank, tp_size);
  const int64_t C = config.hidden, L = config.n_layers, tp_n = tp_size;
  const int64_t Cl = C / tp_n, Fl = config.ffn / tp_n, Vl = tp_dims(tp_size).padded_vocab(config.vocab_size) / tp_n;
  const Shape norm = config.norm == NormKind::kRmsNormS ? Shape{1} : Shape{C};

  // The logical blocks (core/parameter.h) of each memory tensor on tp rank r: q_r, k_r, v_r are
  // logical rows [r·Cl, (r+1)·Cl) of q, k, v; o and down hold columns r·Cl and r·Fl onwards; this
  // rank's vocabulary rows [r·Vl, (r+1)·Vl) hold logical rows below V, the rest is padding.
  const int64_t F = config.ffn, V = config.vocab_size, r = tp_rank;
  const int64_t vocab_rows = std::clamp<int64_t>(V - r * Vl, 0, Vl);
  auto vocab_blocks = [&](const std::string& name) {
    return vocab_rows > 0 ? std::vector<LogicalBlock>{{name, {V, C}, 0, vocab_rows, r * Vl, 0}}
                          : std::vector<LogicalBlock>{};
  };
  auto norm_blocks = [&](const std::string& name) {
    return std::vector<LogicalBlock>{{name, norm, 0, norm[0], 0, 0}};
  };
  std::vector<Parameter> params;
  // Null views: the constructor replaces value and grad by arena carves of the same dtype and shape.
  // Matrices at `dtype`, the 1-D norm gains and every gradient at WideDType (header: Precision).
  const DType wide = WideDType(dtype);
  auto add = [&](const std::string& name, Shape shape, bool weight_decay, std::vector<LogicalBlock> blocks) {
    const DType value_dtype = shape.ndim == 1 ? wide : dtype;
    const TensorView value = make_view(static_cast<void*>(nullptr), value_dtype, shape, Device::Cpu(), "(unallocated)");
    const TensorView grad = make_view(static_cast<void*>(nullptr), wide, shape, Device::Cpu(), "(unallocated)");
    params.push_back({name, value, grad, weight_decay, std::move(blocks)});
  };
  add("embed.weight", {Vl, C}, true, vocab_blocks("embed.weight"));
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", norm, false, norm_blocks(p + "attn_norm.weight"));
    add(p + "attn.qkv.weight", {3 * Cl, C}, true,
        {{p + "attn.q.weight", {C, C}, 0, Cl, r * Cl, 0},
         {p + "attn.k.weight", {C, C}, Cl, Cl, r * Cl, 0},
         {p + "attn.v.weight", {C, C}, 2 * Cl, Cl, r * Cl, 0}});
    add(p + "attn.o.weight", {C, Cl}, true, {{p + "attn.o.weight", {C, C}, 0, C, 0, r * Cl}});
    add(p + "mlp_norm.weight", norm, false, norm_blocks(p + "mlp_norm.weight"));
    add(p + "mlp.gate_up.weight", {2 * Fl, C}, true,
        {{p + "mlp.gate.weight", {F, C}, 0, Fl, r * Fl, 0}, {p + "mlp.up.weight", {F, C}, Fl, Fl, r * Fl, 0}});
    add(p + "mlp.down.weight", {C, Fl}, true, {{p + "mlp.down.weight", {C, F}, 0, C, 0, r * Fl}});
  }
  add("final_norm.weight", norm, false, norm_blocks("final_norm.weight"));
  add("lm_head.weight", {Vl, C}, true, vocab_blocks("lm_head.weight"));
  return params;
}

Llama::MemoryBytes Llama::PlanMemory(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size) {
  CheckLayout(config, max_micro_batch, dtype, tp_size);
  MemoryBytes bytes;
  // Shapes are the same on every tp rank (only the logical blocks differ), so rank 0 stands for all.
  for (const Parameter& p : ParameterLayout(config, dtype, tp_size, 0)) {
    bytes.parameters += Arena::BytesFor(p.value.dtype, p.value.shape);
    bytes.gradients += Arena::BytesFor(p.grad.dtype, p.grad.shape);
  }
  Activations sizing;
  LayoutActivations(config, max_micro_batch, dtype, tp_size, sizing, [&](std::string_view, DType dt, Shape s) {
    bytes.activations += Arena::BytesFor(dt, s);
    return TensorView{};
  });
  return bytes;
}

size_t Llama::ProbeBytes(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size) {
  const int64_t H = config.n_heads / tp_size, T = config.seq_length;
  return static_cast<size_t>(max_micro_batch * H * T * T) * dtype_size(WideDType(dtype));
}

Llama::Llama(const LlamaConfig& config, int64_t max_micro_batch, Device device, DType dtype, Comm* tp)
    : config_(config),
      max_micro_batch_(max_micro_batch),
      device_(device),
      dtype_(dtype),
      wide_(WideDType(dtype)),
      ctx_{device},
      tp_(tp) {
  OM_CHECK(dtype != DType::kBF16 || device.kind == DeviceKind::kCuda,
           "Llama: bf16 runs on CUDA only (the CPU reference is f32 or f64); use f32 on %s", device_name(device).c_str());
  if (tp_ != nullptr) {
    tp_size_ = tp_->size();
    tp_rank_ = tp_->rank();
  }
  // PlanMemory checks the layout (CheckLayout) and sizes the arenas; the carves below consume them
  // exactly (checked at the end), since they run the same layout code.
  const MemoryBytes plan = PlanMemory(config, max_micro_batch, dtype, tp_size_);
  padded_vocab_ = tp_dims(tp_size_).padded_vocab(config.vocab_size);
  const int64_t L = config.n_layers;

  param_arena_ = Arena(device, plan.parameters, "parameters");
  grad_arena_ = Arena(device, plan.gradients, "gradients");
  params_ = ParameterLayout(config, dtype, tp_size_, tp_rank_);
  for (Parameter& p : params_) {
    p.value = param_arena_.Carve(p.name, p.value.dtype, p.value.shape);
    p.grad = grad_arena_.Carve(p.name + ".grad", p.grad.dtype, p.grad.shape);
  }

  for (Tensors* t : {&w_, &g_}) {
    auto view = [&](int64_t k) { return t == &w_ ? params_[k].value : params_[k].grad; };
    t->embed = view(0);
    for (int64_t i = 0; i < L; ++i) {
      const int64_t k = 1 + kPerLayer * i;
      t->layers.push_back({view(k), view(k + 1), view(k + 2), view(k + 3), view(k + 4), view(k + 5)});
    }
    t->final_norm = view(1 + kPerLayer * L);
    t->lm_head = view(2 + kPerLayer * L);
  }

  act_arena_ = Arena(device, plan.activations, "activations");
  LayoutActivations(config, max_micro_batch, dtype, tp_size_, act_,
                    [&](std::string_view name, DType dt, Shape s) { return act_arena_.Carve(name, dt, s); });
  OM_CHECK(param_arena_.used() == plan.parameters && grad_arena_.used() == plan.gradients &&
               act_arena_.used() == plan.activations,
           "Llama: the arenas' layout used %zu/%zu/%zu bytes of the planned %zu/%zu/%zu", param_arena_.used(),
           grad_arena_.used(), act_arena_.used(), plan.parameters, plan.gradients, plan.activations);
}

template <typename CarveFn>
void Llama::LayoutActivations(const LlamaConfig& config, int64_t max_micro_batch, DType dtype, int tp_size,
                              Activations& act, CarveFn&& carve) {
  // Local extents of a tp rank (tp = 1: the full ones).
  const int64_t Bm = max_micro_batch, T = config.seq_length, C = config.hidden, tp_n = tp_size;
  const int64_t Cl = C / tp_n, F = config.ffn / tp_n, H = config.n_heads / tp_n;
  const int64_t Vp = tp_dims(tp_size).padded_vocab(config.vocab_size) / tp_n;
  const DType dt = dtype, st = WideDType(dtype);  // activations; statistics (header: Precision)
  act.tokens = carve("tokens", DType::kI32, Shape{Bm, T});
  act.targets = carve("targets", DType::kI32, Shape{Bm, T});
  act.layers.assign(static_cast<size_t>(config.n_layers), LayerActivations{});
  for (int64_t i = 0; i < config.n_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    LayerActivations& a = act.layers[i];
    a.x = carve(p + "x", dt, Shape{Bm, T, C});
    a.attn_norm = carve(p + "attn_norm", dt, Shape{Bm, T, C});
    a.attn_rstd = carve(p + "attn_rstd", st, Shape{Bm, T});
    a.qkv = carve(p + "qkv", dt, Shape{Bm, T, 3 * Cl});
    a.attn_out = carve(p + "attn_out", dt, Shape{Bm, T, Cl});
    a.lse = carve(p + "lse", st, Shape{Bm, H, T});
    a.x_mid = carve(p + "x_mid", dt, Shape{Bm, T, C});
    a.mlp_norm = carve(p + "mlp_norm", dt, Shape{Bm, T, C});
    a.mlp_rstd = carve(p + "mlp_rstd", st, Shape{Bm, T});
    a.gate_up = carve(p + "gate_up", dt, Shape{Bm, T, 2 * F});
    a.swiglu = carve(p + "swiglu", dt, Shape{Bm, T, F});
  }
  act.x_out = carve("x_out", dt, Shape{Bm, T, C});
  act.final_norm = carve("final_norm", dt, Shape{Bm, T, C});
  act.final_rstd = carve("final_rstd", st, Shape{Bm, T});
  act.logits = carve("logits", dt, Shape{Bm, T, Vp});
  act.row_max = carve("row_max", st, Shape{Bm, T});
  act.sum_exp = carve("sum_exp", st, Shape{Bm, T});
  act.target_logit = carve("target_logit", st, Shape{Bm, T});
  act.losses = carve("losses", st, Shape{Bm, T});
  act.dx = carve("dx", dt, Shape{Bm, T, C});
  // dqkv | dgate_up (the norms' input gradients are added into dx in place: llama_backward.cc).
  act.dwide = carve("dwide", dt, Shape{Bm * T * std::max(3 * Cl, 2 * F)});
  act.dnarrow = carve("dnarrow", dt, Shape{Bm * T * std::max(C, F)});
}

void Llama::Initialize(uint64_t seed) {
  // N(0, 0.02) for matrices, times 1/sqrt(2·L) for the output projections (attn.o, mlp.down); norm
  // gains 1; padding 0. The standard deviations are computed in double.
  const double s = 0.02, s_out = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layers));
  auto stddev = [&](const LogicalBlock& b) {
    const bool out = b.name.ends_with(".attn.o.weight") || b.name.ends_with(".mlp.down.weight");
    return out ? s_out : s;
  };
  for (const Parameter& p : params_) init_tensor(ctx_, p, seed, !p.weight_decay, stddev);  // !decay: norm gains
}

double Llama::Forward(ConstTensorView tokens, ConstTensorView targets) {
  // A bad shape is reported by the Forward below, with the losses view of any B in range.
  const int64_t B = tokens.ndim() == 2 ? std::clamp<int64_t>(tokens.dim(0), 0, max_micro_batch_) : 0;
  const TensorView losses = Rows(act_.losses, B);
  Forward(tokens, targets, losses);
  return MeanLoss(losses, target_count_);
}

ConstTensorView Llama::last_losses() const {
  OM_CHECK(batch_ > 0, "Llama::last_losses: no Forward yet");
  return Rows(act_.losses, batch_);
}

double Llama::MeanLoss(ConstTensorView losses, int64_t target_count) {
  if (target_count == 0) return 0.0;
  const double sum = losses.dtype == DType::kF64 ? host_sum<double>(losses) : host_sum<float>(losses);
  return sum / static_cast<double>(target_count);
}

void Llama::Forward(ConstTensorView tokens, ConstTensorView targets, TensorView losses_out) {
  Upload(tokens, targets, losses_out);
  ForwardCompute(batch_);
  CopyLosses(losses_out);
}

void Llama::Upload(ConstTensorView tokens, ConstTensorView targets, ConstTensorView losses_out) {
  constexpr const char* op = "Llama::Forward";
  const int64_t T = config_.seq_length;
  OM_CHECK(tokens.ndim() == 2 && tokens.dim(0) >= 1 && tokens.dim(0) <= max_micro_batch_ && tokens.dim(1) == T,
           "%s: tokens %s must be (B, T) with 1 <= B <= max_micro_batch %ld and T = seq_length %ld", op,
           tokens.ToString().c_str(), static_cast<long>(max_micro_batch_), static_cast<long>(T));
  const int64_t B = tokens.dim(0), N = B * T;
  check_tensor(op, tokens, DType::kI32, {B, T});
  check_tensor(op, targets, DType::kI32, {B, T});
  OM_CHECK(losses_out.dtype == wide_ && losses_out.numel() == N && losses_out.is_contiguous() &&
               (losses_out.device.kind == DeviceKind::kCpu || losses_out.device == device_),
           "%s: losses %s must be %ld contiguous %s elements on %s or the host", op, losses_out.ToString().c_str(),
           static_cast<long>(N), std::string(dtype_name(wide_)).c_str(), device_name(device_).c_str());

  // Own copies: backward needs them after the caller's batch buffers have moved on.
  TensorView ids = First(act_.tokens, B), tgt = First(act_.targets, B);
  copy_async(ctx_, ids.data, device_, tokens.data, tokens.device, tokens.nbytes());
  copy_async(ctx_, tgt.data, device_, targets.data, targets.device, targets.nbytes());
  const int32_t* counted = targets.data_as<const int32_t>();
  std::vector<int32_t> host_targets;
  if (targets.device.kind != DeviceKind::kCpu) {
    host_targets.resize(static_cast<size_t>(N));
    copy_bytes(host_targets.data(), Device::Cpu(), targets.data, targets.device, targets.nbytes());
    counted = host_targets.data();
  }
  target_count_ = 0;
  for (int64_t n = 0; n < N; ++n) target_count_ += counted[n] != kIgnoreTarget;
  batch_ = B;
}

bool Llama::ForwardCompute(int64_t B, const float* dloss) {
  const int64_t N = B * config_.seq_length;
  const TensorView ids = First(act_.tokens, B), tgt = First(act_.targets, B);
  if (tp_ != nullptr) {
    vocab_parallel_embedding_forward(ctx_, *tp_, {Rows(act_.layers[0].x, B), reshape(ids, Shape{N}), w_.embed});
  } else {
    embedding_forward(ctx_, {Rows(act_.layers[0].x, B), reshape(ids, Shape{N}), w_.embed, 0});
  }
  for (int64_t i = 0; i < config_.n_layers; ++i) ForwardLayer(i, B);

  const TensorView x_out = Rows(act_.x_out, B), final_norm = Rows(act_.final_norm, B);
  const TensorView logits = Rows(act_.logits, B), losses = Rows(act_.losses, B);
  rmsnorm_forward(ctx_, {final_norm, Rows(act_.final_rstd, B), x_out, w_.final_norm, config_.norm, config_.norm_eps});
  if (tp_ != nullptr) copy_to_tp_region_forward(*tp_, final_norm);
  if (probe_ != nullptr) probe_->OnLinearInput(final_norm);
  matmul(ctx_, {logits, final_norm, w_.lm_head, Transpose::kNo, Transpose::kYes});
  // The padding columns [V, Vp) of the logits are excluded from the max, the sum and the gradient.
  if (tp_ != nullptr) {
    vocab_parallel_cross_entropy_forward(ctx_, *tp_, {losses, Rows(act_.row_max, B), Rows(act_.sum_exp, B),
                                                      Rows(act_.target_logit, B), logits, reshape(tgt, Shape{N}),
                                                      config_.vocab_size});
    return false;
  }
  const CrossEntropyForwardArgs ce{losses, Rows(act_.row_max, B), Rows(act_.sum_exp, B), Rows(act_.target_logit, B),
                                   logits, reshape(tgt, Shape{N}), VocabShard{0, config_.vocab_size}};
  if (dloss == nullptr) {
    cross_entropy_forward(ctx_, ce);
    return false;
  }
  cross_entropy_forward_backward(ctx_, {ce, logits, *dloss});  // dlogits over the logits, as BackwardCompute
  return true;
}

void Llama::CopyLosses(TensorView losses_out) {
  const TensorView losses = Rows(act_.losses, batch_);
  if (losses_out.data != losses.data) {
    copy_async(ctx_, losses_out.data, losses_out.device, losses.data, device_, losses.nbytes());
  }
}

void Llama::ForwardLayer(int64_t i, int64_t B) {
  const int64_t T = config_.seq_length, H = config_.n_heads / tp_size_, D = config_.head_dim();
  const LayerActivations& a = act_.layers[i];
  const LayerTensors& w = w_.layers[i];
  const TensorView x = Rows(a.x, B), x_mid = Rows(a.x_mid, B), attn_norm = Rows(a.attn_norm, B),
                   mlp_norm = Rows(a.mlp_norm, B), attn_out = Rows(a.attn_out, B), swiglu = Rows(a.swiglu, B),
                   gate_up = Rows(a.gate_up, B), qkv = First(a.qkv, B);
  // The next layer's input, or the final norm's.
  const TensorView x_next = Rows(i + 1 < config_.n_layers ? act_.layers[i + 1].x : act_.x_out, B);

  rmsnorm_forward(ctx_, {attn_norm, Rows(a.attn_rstd, B), x, w.attn_norm, config_.norm, config_.norm_eps});
  if (tp_ != nullptr) copy_to_tp_region_forward(*tp_, attn_norm);
  if (probe_ != nullptr) probe_->OnLinearInput(attn_norm);
  matmul(ctx_, {Rows(a.qkv, B), attn_norm, w.qkv, Transpose::kNo, Transpose::kYes});
  // qkv as (B, T, 3H, D): heads [0, H) are q, [H, 2H) k, [2H, 3H) v; RoPE rotates the first 2H.
  rope_forward(ctx_, {reshape(qkv, Shape{B, T, 3 * H, D}), 2 * H, config_.rope_theta});
  TensorView probs;
  if (probe_ != nullptr && probe_->wants_attention()) {
    const size_t bytes = ProbeBytes(config_, max_micro_batch_, dtype_, tp_size_);
    if (probs_.size() < bytes) probs_ = Buffer::Allocate(device_, bytes, "attention probabilities (probe)");
    probs = make_view(probs_.data(), wide_, Shape{B, H, T, T}, device_, "attention_probs");
  }
  attention_forward(ctx_, {First(a.attn_out, B), First(a.lse, B), probs, qkv, H, config_.attention});
  if (probs.data != nullptr) probe_->OnAttention(i, probs);
  if (probe_ != nullptr) probe_->OnLinearInput(attn_out);
  residual_linear(x_mid, attn_out, w.o, x);  // x_mid = x + O(attention)

  rmsnorm_forward(ctx_, {mlp_norm, Rows(a.mlp_rstd, B), x_mid, w.mlp_norm, config_.norm, config_.norm_eps});
  if (tp_ != nullptr) copy_to_tp_region_forward(*tp_, mlp_norm);
  if (probe_ != nullptr) probe_->OnLinearInput(mlp_norm);
  matmul(ctx_, {gate_up, mlp_norm, w.gate_up, Transpose::kNo, Transpose::kYes});
  swiglu_forward(ctx_, {swiglu, gate_up});
  if (probe_ != nullptr) probe_->OnLinearInput(swiglu);
  residual_linear(x_next, swiglu, w.down, x_mid);  // x_next = x_mid + down(swiglu)
  if (probe_ != nullptr) {
    probe_->OnBlockOutput(i, First(i + 1 < config_.n_layers ? act_.layers[i + 1].x : act_.x_out, B));
  }
}

void Llama::residual_linear(const TensorView& out, const TensorView& in, const TensorView& w,
                            const TensorView& skip) {
  if (tp_ == nullptr) {
    // One GEMM with the residual add in its epilogue (kernels/matmul.h; the CPU's bits are the unfused ops').
    matmul(ctx_, {.c = out, .a = in, .b = w, .trans_b = Transpose::kYes, .residual = skip});
    return;
  }
  // Row parallel: the ranks' partial products are summed first, then the skip is added once.
  matmul(ctx_, {out, in, w, Transpose::kNo, Transpose::kYes});
  reduce_from_tp_region_forward(*tp_, out);
  residual_forward(ctx_, {out, out, skip});
}

void Llama::ZeroGrad() {
  // Every gradient is a view of the gradient arena: one stream-ordered memset of what is carved.
  zero_async(ctx_, grad_arena_.buffer().data(), grad_arena_.used());
}

std::vector<bool> Llama::tp_replicated() const {
  std::vector<bool> out;
  for (const Parameter& p : params_) out.push_back(p.value.ndim() == 1);  // exactly the norm gains
  return out;
}

ConstTensorView Llama::logits() const {
  OM_CHECK(batch_ > 0, "Llama::logits: no Forward has run yet");
  return First(act_.logits, batch_);
}

Llama::MemoryBytes Llama::arena_bytes() const {
  return {param_arena_.capacity(), grad_arena_.capacity(), act_arena_.capacity()};
}

}  // namespace om
