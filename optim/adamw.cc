// AdamW over a parameter list: one f32 arena holds every moment, in parameter order (exp_avg then
// exp_avg_sq of parameter 0, then of parameter 1, ...), so a checkpoint can write the state as one
// block per parameter and ZeRO-1 can later replace the arena by a shard without touching Step.
#include "optim/adamw.h"

#include <string>

#include "kernels/adamw.h"

namespace om {

AdamWArgs make_adamw_args(const AdamWConfig& config, bool weight_decay, TensorView param, TensorView m, TensorView v,
                          ConstTensorView grad, float lr, int64_t step, float grad_scale) {
  AdamWArgs args{param, m, v, grad};
  args.lr = lr;
  args.beta1 = config.beta1;
  args.beta2 = config.beta2;
  args.eps = config.eps;
  args.weight_decay = weight_decay ? config.weight_decay : 0.0f;
  args.step = step;
  args.grad_scale = grad_scale;
  return args;
}

AdamW::AdamW(std::span<const Parameter> params, const AdamWConfig& config, Device device)
    : params_(params.begin(), params.end()), config_(config), device_(device) {
  size_t bytes = 0;
  for (const Parameter& p : params_) {
    OM_CHECK(p.value.dtype == DType::kF32 && p.grad.dtype == DType::kF32,
             "AdamW: parameter '%s' must be f32 master weights with an f32 gradient (got %s, %s)", p.name.c_str(),
             std::string(dtype_name(p.value.dtype)).c_str(), std::string(dtype_name(p.grad.dtype)).c_str());
    OM_CHECK(p.value.shape == p.grad.shape, "AdamW: parameter '%s' is %s but its gradient is %s", p.name.c_str(),
             p.value.shape.ToString().c_str(), p.grad.shape.ToString().c_str());
    OM_CHECK(p.value.device == device && p.grad.device == device,
             "AdamW: parameter '%s' and its gradient must live on %s, where the optimizer state is", p.name.c_str(),
             device_name(device).c_str());
    bytes += 2 * Arena::BytesFor(DType::kF32, p.value.shape);
  }
  // Sized exactly once; the arena zeroes its memory, which is Adam's initial m = v = 0.
  state_ = Arena(device, bytes, "adamw state");
  m_.reserve(params_.size());
  v_.reserve(params_.size());
  for (const Parameter& p : params_) {
    m_.push_back(state_.Carve(p.name + ".exp_avg", DType::kF32, p.value.shape));
    v_.push_back(state_.Carve(p.name + ".exp_avg_sq", DType::kF32, p.value.shape));
  }
}

void AdamW::Step(float lr, float grad_scale) {
  // Incremented first: the bias corrections 1 - beta^t need t >= 1 on the first step.
  ++step_;
  const ExecContext ctx{device_, Stream{}};
  for (size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    adamw_update(ctx, make_adamw_args(config_, p.weight_decay, p.value, m_[i], v_[i], p.grad, lr, step_, grad_scale));
  }
}

}  // namespace om
