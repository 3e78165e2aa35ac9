// Llama backward (model/llama.h): the forward of llama.cc in reverse, op by op. Parameter gradients
// accumulate (+=) into the gradient arena; activation gradients overwrite (=) the scratch below.
//
// Scratch (activation arena, sized for max_micro_batch) and why sharing it is safe:
//   dx       (B·T, C)            gradient of the residual stream, running from the loss down to the
//                                embedding; each block's norm backward adds its branch's input gradient
//                                to it in place (rmsnorm_backward with WriteMode::kAccumulate: the same
//                                bits as writing it out and adding it with residual_forward, one pass).
//   dwide    (B·T, max(3C, 2F))  dqkv in the attention block, dgate_up in the MLP block.
//   dnarrow  (B·T, max(C, F))    dattn / dswiglu (consumed by attention / swiglu backward), then the
//                                norm's output gradient (written by the matmul that reads dwide).
//   dlogits  (B·T, Vl)           the logits themselves: the cross-entropy backward writes each
//                                element's gradient over it after reading it (kernels/cross_entropy.h
//                                allows dlogits == logits), and nothing reads the logits afterwards.
//                                This saves a (Bm, T, Vl) buffer: 1 GiB for llama-130m at Bm = 64, bf16.
// Every op below reads and writes distinct buffers, except the norm backwards that add into dx (dinp += ...,
// which rmsnorm_backward's kAccumulate is) and the cross-entropy backward (above).
// Tensor parallel (tp Comm set): each norm's output gradient is a partial sum over the ranks' column
// shards (LM head, qkv, gate_up), so copy_to_tp_region_backward all-reduces it before the norm's
// backward, beside the same layer's weight-gradient GEMM (Megatron's asynchronous tp all-reduce: on NCCL
// the two overlap; reduce_input_grad_beside below); the row-parallel O / down backward and the
// vocab-parallel cross-entropy and embedding backward are local. Everything after the all-reduce is
// replicated, so the norm gains' gradients are identical on every tp rank.
#include <functional>

#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"
#include "model/llama.h"
#include "parallel/tensor_parallel.h"

namespace om {
namespace {

// The input gradient dx of a column-parallel layer all-reduced over tp beside `weight_grad`, that layer's
// weight-gradient GEMM, which reads neither dx nor writes it (parallel/tensor_parallel.h); without tp,
// just the GEMM. The same bits as all-reducing first.
void reduce_input_grad_beside(Comm* tp, TensorView dx, const std::function<void()>& weight_grad) {
  if (tp == nullptr) return weight_grad();
  copy_to_tp_region_backward_overlapped(*tp, dx, weight_grad);
}

}  // namespace

void Llama::Backward(float loss_scale) {
  OM_CHECK(batch_ > 0, "Llama::Backward: no Forward has run yet");
  BackwardCompute(batch_, LossGradient(loss_scale));
}

float Llama::LossGradient(float loss_scale) const {
  // d(mean loss)/d(loss of row n) = 1 / (non-ignored targets); ignored rows get no gradient anyway.
  return target_count_ > 0 ? loss_scale / static_cast<float>(target_count_) : 0.0f;
}

void Llama::ForwardBackwardCompute(int64_t B, float dloss) {
  const bool logits_are_gradient = ForwardCompute(B, &dloss);
  BackwardCompute(B, dloss, logits_are_gradient);
}

void Llama::BackwardCompute(int64_t B, float dloss, bool logits_are_gradient) {
  const int64_t N = B * config_.seq_length, C = config_.hidden;
  const TensorView logits = Rows(act_.logits, B), dlogits = logits;  // in place (see the header)
  const TensorView final_norm = Rows(act_.final_norm, B), dx = Rows(act_.dx, B);
  const TensorView dnorm = Scratch(act_.dnarrow, {N, C}, "dfinal_norm");
  if (logits_are_gradient) {
    // ForwardCompute ran the cross-entropy's backward already (cross_entropy_forward_backward).
  } else if (tp_ != nullptr) {
    vocab_parallel_cross_entropy_backward(ctx_, *tp_, {dlogits, logits, Rows(act_.targets, B), Rows(act_.row_max, B),
                                                       Rows(act_.sum_exp, B), config_.vocab_size, dloss});
  } else {
    cross_entropy_backward(ctx_, {dlogits, logits, Rows(act_.targets, B), Rows(act_.row_max, B),
                                  Rows(act_.sum_exp, B), VocabShard{0, config_.vocab_size}, dloss});
  }
  matmul(ctx_, {dnorm, dlogits, w_.lm_head});
  reduce_input_grad_beside(tp_, dnorm, [&] {
    matmul(ctx_, {g_.lm_head, dlogits, final_norm, Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  });
  rmsnorm_backward(ctx_, {dx, g_.final_norm, dnorm, Rows(act_.x_out, B), w_.final_norm, Rows(act_.final_rstd, B),
                          config_.norm});
  // Parameters in memory order (llama.cc): the embedding, kParamsPerLayer per layer, the final norm, the LM head.
  constexpr size_t per_layer = kParamsPerLayer;
  if (grad_ready_) grad_ready_(params_.size() - 2, 2);  // final norm, LM head
  for (int64_t i = config_.n_layers - 1; i >= 0; --i) {
    BackwardLayer(i, B);
    if (grad_ready_) grad_ready_(1 + per_layer * static_cast<size_t>(i), per_layer);
  }
  if (tp_ != nullptr) {
    vocab_parallel_embedding_backward(ctx_, *tp_, {g_.embed, dx, Rows(act_.tokens, B)});
  } else {
    embedding_backward(ctx_, {g_.embed, dx, Rows(act_.tokens, B), 0});
  }
  if (grad_ready_) grad_ready_(0, 1);
}

// On entry dx = dL/dx_next (the layer's output); on exit dx = dL/dx (its input).
void Llama::BackwardLayer(int64_t i, int64_t B) {
  // Local extents of this tp rank (tp = 1: the full ones); C stays the full hidden size.
  const int64_t T = config_.seq_length, N = B * T, C = config_.hidden, Cl = C / tp_size_, F = config_.ffn / tp_size_,
                H = config_.n_heads / tp_size_;
  const LayerActivations& a = act_.layers[i];
  const LayerTensors& w = w_.layers[i];
  const LayerTensors& g = g_.layers[i];
  const TensorView dx = Rows(act_.dx, B);
  const TensorView dnorm = Scratch(act_.dnarrow, {N, C}, "dnorm");

  // MLP block: x_next = x_mid + swiglu(mlp_norm · Wguᵀ) · Wdownᵀ.
  const TensorView dswiglu = Scratch(act_.dnarrow, {N, F}, "dswiglu");
  const TensorView dgate_up = Scratch(act_.dwide, {N, 2 * F}, "dgate_up");
  matmul(ctx_, {dswiglu, dx, w.down});
  matmul(ctx_, {g.down, dx, Rows(a.swiglu, B), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  swiglu_backward(ctx_, {dgate_up, dswiglu, Rows(a.gate_up, B)});
  matmul(ctx_, {dnorm, dgate_up, w.gate_up});
  reduce_input_grad_beside(tp_, dnorm, [&] {
    matmul(ctx_, {g.gate_up, dgate_up, Rows(a.mlp_norm, B), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  });
  // dx = dL/dx_mid: the skip path plus the MLP branch (the norm's input gradient, added in place).
  rmsnorm_backward(ctx_, {dx, g.mlp_norm, dnorm, Rows(a.x_mid, B), w.mlp_norm, Rows(a.mlp_rstd, B), config_.norm,
                          WriteMode::kAccumulate});

  // Attention block: x_mid = x + attention(RoPE(attn_norm · Wqkvᵀ)) · Woᵀ.
  const TensorView dattn = Scratch(act_.dnarrow, {B, T, Cl}, "dattn_out");
  const TensorView dqkv = Scratch(act_.dwide, {B, T, 3 * Cl}, "dqkv");
  matmul(ctx_, {reshape(dattn, Shape{N, Cl}), dx, w.o});
  matmul(ctx_, {g.o, dx, Rows(a.attn_out, B), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  // RoPE is a rotation: attention_backward rotates dq and dk back too (its rope_theta; rope_backward's bits,
  // fused into the stores of the CUDA tensor-core kernels); dv is untouched.
  attention_backward(ctx_, {dqkv, dattn, First(a.qkv, B), First(a.attn_out, B), First(a.lse, B), H, config_.attention,
                            config_.rope_theta});
  const TensorView dqkv_rows = reshape(dqkv, Shape{N, 3 * Cl});
  matmul(ctx_, {dnorm, dqkv_rows, w.qkv});
  reduce_input_grad_beside(tp_, dnorm, [&] {
    matmul(ctx_, {g.qkv, dqkv_rows, Rows(a.attn_norm, B), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  });
  // dx = dL/dx: the skip path plus the attention branch.
  rmsnorm_backward(ctx_, {dx, g.attn_norm, dnorm, Rows(a.x, B), w.attn_norm, Rows(a.attn_rstd, B), config_.norm,
                          WriteMode::kAccumulate});
}

}  // namespace om
