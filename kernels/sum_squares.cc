#include "kernels/sum_squares.h"

namespace om {

void sum_squares(const ExecContext& ctx, const SumSquaresArgs& a) {
  constexpr const char* op = "sum_squares";
  check_tensor(op, a.out, DType::kF64, {1});
  check_tensor(op, a.x, a.x.dtype, a.x.shape);  // any shape: non-null unless empty, contiguous
  check_device(op, ctx, a.out);
  check_device(op, ctx, a.x);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.x}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.x); return cpu::sum_squares(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.x); OM_CUDA_OP(op, cuda::sum_squares(a, ctx.stream)); return;
  }
}

}  // namespace om
