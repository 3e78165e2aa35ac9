#include "kernels/residual.h"

namespace om {

void residual_forward(const ExecContext& ctx, const ResidualArgs& a) {
  constexpr const char* op = "residual_forward";
  check_tensor(op, a.a, a.a.dtype, a.a.shape);
  check_tensor(op, a.b, a.a.dtype, a.a.shape);
  check_tensor(op, a.out, a.a.dtype, a.a.shape);
  for (const ConstTensorView& t : {ConstTensorView(a.out), a.a, a.b}) check_device(op, ctx, t);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.a, a.b, a.out}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.a); return cpu::residual_forward(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.a); OM_CUDA_OP(op, cuda::residual_forward(a, ctx.stream)); return;
  }
}

}  // namespace om
