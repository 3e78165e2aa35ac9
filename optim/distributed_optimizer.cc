// ZeRO-1 AdamW over the dp group (optim/distributed_optimizer.h).
#include "optim/distributed_optimizer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/adamw.h"
#include "kernels/sum_squares.h"

namespace om {
namespace {

constexpr size_t kF32 = sizeof(float);

float* f32_at(const Buffer& b, int64_t offset) { return static_cast<float*>(b.data()) + offset; }

TensorView f32_view(const Buffer& b, int64_t offset, int64_t n, const char* name) {
  return make_view(f32_at(b, offset), DType::kF32, Shape{n}, Device::Cpu(), name);
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(std::span<const Parameter> params, const AdamWConfig& config, Comm& dp,
                                           Comm* tp, std::vector<bool> tp_replicated)
    : params_(params.begin(), params.end()),
      config_(config),
      dp_(&dp),
      tp_(tp),
      tp_replicated_(std::move(tp_replicated)) {
  OM_CHECK(tp_ == nullptr || tp_replicated_.size() == params_.size(),
           "DistributedOptimizer: tp_replicated has %zu entries for %zu parameters", tp_replicated_.size(),
           params_.size());
  OM_CHECK(!params_.empty(), "DistributedOptimizer: no parameters to optimise");
  flat_offset_.reserve(params_.size());
  for (const Parameter& p : params_) {
    OM_CHECK(p.value.dtype == DType::kF32 && p.grad.dtype == DType::kF32,
             "DistributedOptimizer: parameter '%s' must be f32 with an f32 gradient (got %s, %s)", p.name.c_str(),
             std::string(dtype_name(p.value.dtype)).c_str(), std::string(dtype_name(p.grad.dtype)).c_str());
    OM_CHECK(p.value.shape == p.grad.shape, "DistributedOptimizer: parameter '%s' is %s but its gradient is %s",
             p.name.c_str(), p.value.shape.ToString().c_str(), p.grad.shape.ToString().c_str());
    OM_CHECK(p.value.is_contiguous() && p.grad.is_contiguous(),
             "DistributedOptimizer: parameter '%s' and its gradient must be contiguous", p.name.c_str());
    OM_CHECK(p.value.device == Device::Cpu() && p.grad.device == Device::Cpu(),
             "DistributedOptimizer: parameter '%s' must live on the CPU (the MPI backend's device)", p.name.c_str());
    flat_offset_.push_back(numel_);
    numel_ += p.value.numel();
  }
  OM_CHECK(numel_ > 0, "DistributedOptimizer: the parameters hold no elements");

  const int64_t n = dp.size();
  shard_size_ = (numel_ + n - 1) / n;
  padded_numel_ = shard_size_ * n;
  shard_begin_ = shard_size_ * dp.rank();
  const int64_t shard_end = shard_begin_ + shard_size_;

  // The pieces: the intersection of [shard_begin, shard_end) with each parameter's flat range.
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t lo = std::max(shard_begin_, flat_offset_[i]);
    const int64_t hi = std::min(shard_end, flat_offset_[i] + params_[i].value.numel());
    if (lo < hi) pieces_.push_back({i, lo - flat_offset_[i], lo - shard_begin_, hi - lo});
  }

  // Zeroed once: the gradient padding stays 0 forever (step 1 writes only parameter ranges), and so
  // do m = v = 0 initially and the master padding (never in a piece).
  flat_grad_ = Buffer::Allocate(Device::Cpu(), static_cast<size_t>(padded_numel_) * kF32, "zero1 flat grad");
  flat_grad_.Zero();
  flat_param_ = Buffer::Allocate(Device::Cpu(), static_cast<size_t>(padded_numel_) * kF32, "zero1 flat param");
  flat_param_.Zero();
  state_ = Buffer::Allocate(Device::Cpu(), 3 * static_cast<size_t>(shard_size_) * kF32, "zero1 master|m|v");
  state_.Zero();
  norm_sq_ = Buffer::Allocate(Device::Cpu(), sizeof(double), "zero1 grad norm sq");

  for (const ShardPiece& piece : pieces_) {
    const Parameter& p = params_[piece.param_index];
    copy_bytes(f32_at(state_, piece.shard_offset), Device::Cpu(),
               static_cast<const float*>(p.value.data) + piece.param_offset, Device::Cpu(),
               static_cast<size_t>(piece.numel) * kF32);
  }
}

ConstTensorView DistributedOptimizer::master_shard() const {
  return f32_view(state_, 0, shard_size_, "zero1.master");
}
ConstTensorView DistributedOptimizer::m_shard() const {
  return f32_view(state_, shard_size_, shard_size_, "zero1.exp_avg");
}
ConstTensorView DistributedOptimizer::v_shard() const {
  return f32_view(state_, 2 * shard_size_, shard_size_, "zero1.exp_avg_sq");
}
ConstTensorView DistributedOptimizer::grad_shard() const {
  return f32_view(flat_grad_, shard_begin_, shard_size_, "zero1.grad");
}

double DistributedOptimizer::ReduceGradients() {
  const uint64_t bytes_before = dp_->bytes_sent();
  // 1. Parameter gradients → flat buffer. The copy disappears once the model's gradient arena is
  // this buffer (no alignment gaps); until then it is one pass over the gradients.
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    copy_bytes(f32_at(flat_grad_, flat_offset_[i]), Device::Cpu(), p.grad.data, Device::Cpu(), p.grad.nbytes());
  }

  // 2. Sum over replicas into this rank's chunk (in place), then the mean. Multiplying by the f32
  // reciprocal (exact for power-of-two dp) is the documented rounding the tests reproduce.
  const TensorView shard = f32_view(flat_grad_, shard_begin_, shard_size_, "zero1.grad");
  dp_->reduce_scatter(f32_view(flat_grad_, 0, padded_numel_, "zero1.flat_grad"), shard);
  const float inv_dp = 1.0f / static_cast<float>(dp_->size());
  float* g = f32_at(flat_grad_, shard_begin_);
  for (int64_t k = 0; k < shard_size_; ++k) g[k] *= inv_dp;

  // 3. Each element lives in exactly one shard, so the shards' sums of squares add up to the global
  // one. The padding is zero and adds nothing.
  norm_sq_.Zero();
  const TensorView sum_sq = make_view(norm_sq_.data(), DType::kF64, Shape{1}, Device::Cpu(), "zero1.grad_norm_sq");
  const ExecContext cpu{Device::Cpu(), Stream{}};
  if (tp_ != nullptr && tp_->size() > 1 && tp_->rank() != 0) {
    // Replicated parameters (norm gains) are counted by tp_rank 0 alone.
    for (const ShardPiece& piece : pieces_) {
      if (tp_replicated_[piece.param_index]) continue;
      sum_squares(cpu, {sum_sq, f32_view(flat_grad_, shard_begin_ + piece.shard_offset, piece.numel, "zero1.grad")});
    }
  } else {
    sum_squares(cpu, {sum_sq, shard});
  }
  dp_->all_reduce(sum_sq, ReduceOp::kSum);
  if (tp_ != nullptr && tp_->size() > 1) tp_->all_reduce(sum_sq, ReduceOp::kSum);
  grad_norm_ = std::sqrt(*static_cast<const double*>(norm_sq_.data()));

  reduced_ = true;
  reduce_bytes_ = dp_->bytes_sent() - bytes_before;
  return grad_norm_;
}

void DistributedOptimizer::Step(float lr, float grad_scale) {
  OM_CHECK(reduced_, "DistributedOptimizer::Step without ReduceGradients since the last step (step %lld)",
           static_cast<long long>(step_));
  reduced_ = false;
  const uint64_t bytes_before = dp_->bytes_sent();
  ++step_;

  // 4. AdamW on every piece of the shard; the padding is in no piece and never changes.
  const ExecContext ctx{Device::Cpu(), Stream{}};
  for (const ShardPiece& piece : pieces_) {
    const Parameter& p = params_[piece.param_index];
    const TensorView master = f32_view(state_, piece.shard_offset, piece.numel, p.name.c_str());
    const TensorView m = f32_view(state_, shard_size_ + piece.shard_offset, piece.numel, "zero1.exp_avg");
    const TensorView v = f32_view(state_, 2 * shard_size_ + piece.shard_offset, piece.numel, "zero1.exp_avg_sq");
    const TensorView grad = f32_view(flat_grad_, shard_begin_ + piece.shard_offset, piece.numel, "zero1.grad");
    adamw_update(ctx, make_adamw_args(config_, p.weight_decay, master, m, v, grad, lr, step_, grad_scale));
  }

  // 5. Every rank's updated shard → every rank's flat parameters → the model's tensors.
  dp_->all_gather(master_shard(), f32_view(flat_param_, 0, padded_numel_, "zero1.flat_param"));
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    copy_bytes(p.value.data, Device::Cpu(), f32_at(flat_param_, flat_offset_[i]), Device::Cpu(), p.value.nbytes());
  }
  step_bytes_ = dp_->bytes_sent() - bytes_before;
}

}  // namespace om
