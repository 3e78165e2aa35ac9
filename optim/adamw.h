// AdamW over a model's parameters: owns the moments m and v (one f32 arena, parameter layout) and
// steps every parameter through kernels/adamw.h. Decoupled weight decay applies to parameters with
// Parameter::weight_decay (matrices), not to norm gains.
// Thread safety: one thread drives an optimizer.
#pragma once

#include <span>
#include <vector>

#include "core/arena.h"
#include "core/parameter.h"
#include "kernels/adamw.h"

namespace om {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// The kernel arguments (kernels/adamw.h) of one AdamW step of `config` on (param, m, v, grad), the
// t-th step (t >= 1). Decoupled weight decay only when `weight_decay` (Megatron: matrices decay, norm
// gains do not; Parameter::weight_decay says which). Shared by AdamW and the ZeRO-1 optimizer.
AdamWArgs make_adamw_args(const AdamWConfig& config, bool weight_decay, TensorView param, TensorView m, TensorView v,
                          ConstTensorView grad, float lr, int64_t step, float grad_scale);

class AdamW {
 public:
  AdamW(std::span<const Parameter> params, const AdamWConfig& config, Device device = Device::Cpu());

  // One optimizer step with learning rate `lr`; every gradient is first multiplied by `grad_scale`
  // (the clipping coefficient). Increments step() before the update (bias correction uses t >= 1).
  void Step(float lr, float grad_scale = 1.0f);

  int64_t step() const { return step_; }
  const AdamWConfig& config() const { return config_; }
  // Moments of parameter i (checkpoints, tests).
  TensorView m(size_t i) const { return m_[i]; }
  TensorView v(size_t i) const { return v_[i]; }

 private:
  std::vector<Parameter> params_;
  AdamWConfig config_;
  Device device_;
  Arena state_;
  std::vector<TensorView> m_, v_;
  int64_t step_ = 0;
};

}  // namespace om
