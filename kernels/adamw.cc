#include "kernels/adamw.h"

namespace om {

void adamw_update(const ExecContext& ctx, const AdamWArgs& a) {
  constexpr const char* op = "adamw_update";
  const Shape shape = a.param.shape;
  for (const ConstTensorView& t : {ConstTensorView(a.param), ConstTensorView(a.m), ConstTensorView(a.v), a.grad}) {
    check_tensor(op, t, a.param.dtype, shape);
    check_device(op, ctx, t);
  }
  OM_CHECK(a.step >= 1, "%s: step is %ld; it is 1-based (the bias correction divides by 1 - beta^step)", op,
           static_cast<long>(a.step));
  OM_CHECK(a.beta1 >= 0.0f && a.beta1 < 1.0f && a.beta2 >= 0.0f && a.beta2 < 1.0f,
           "%s: betas must lie in [0, 1), got beta1 %g beta2 %g", op, static_cast<double>(a.beta1),
           static_cast<double>(a.beta2));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.param); return cpu::adamw_update(a);
    case DeviceKind::kCuda: no_cuda_kernel(op);
  }
}

}  // namespace om
