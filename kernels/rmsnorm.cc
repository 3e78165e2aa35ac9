#include "kernels/rmsnorm.h"

namespace om {
namespace {

Shape weight_shape(NormKind kind, int64_t C) { return kind == NormKind::kRmsNormS ? Shape{1} : Shape{C}; }

// Statistics and gains: the activation dtype on the CPU (f32 or f64), always f32 on CUDA.
DType stat_dtype(const ExecContext& ctx, const ConstTensorView& inp) {
  return ctx.device.kind == DeviceKind::kCuda ? DType::kF32 : inp.dtype;
}

}  // namespace

void rmsnorm_forward(const ExecContext& ctx, const RmsNormForwardArgs& a) {
  constexpr const char* op = "rmsnorm_forward";
  OM_CHECK(a.inp.ndim() == 2, "%s: 'inp' must be (N, C), got %s", op, a.inp.shape.ToString().c_str());
  const int64_t N = a.inp.dim(0), C = a.inp.dim(1);
  check_tensor(op, a.out, a.inp.dtype, {N, C});
  check_tensor(op, a.rstd, stat_dtype(ctx, a.inp), {N});
  check_tensor(op, a.weight, stat_dtype(ctx, a.inp), weight_shape(a.kind, C));
  for (const ConstTensorView& t : {ConstTensorView(a.out), ConstTensorView(a.rstd), a.inp, a.weight})
    check_device(op, ctx, t);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.inp, a.weight, a.out, a.rstd}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.inp); return cpu::rmsnorm_forward(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.inp); OM_CUDA_OP(op, cuda::rmsnorm_forward(a, ctx.stream)); return;
  }
}

void rmsnorm_backward(const ExecContext& ctx, const RmsNormBackwardArgs& a) {
  constexpr const char* op = "rmsnorm_backward";
  OM_CHECK(a.inp.ndim() == 2, "%s: 'inp' must be (N, C), got %s", op, a.inp.shape.ToString().c_str());
  const int64_t N = a.inp.dim(0), C = a.inp.dim(1);
  check_tensor(op, a.dinp, a.inp.dtype, {N, C});
  check_tensor(op, a.dout, a.inp.dtype, {N, C});
  check_tensor(op, a.rstd, stat_dtype(ctx, a.inp), {N});
  check_tensor(op, a.weight, stat_dtype(ctx, a.inp), weight_shape(a.kind, C));
  check_tensor(op, a.dweight, stat_dtype(ctx, a.inp), weight_shape(a.kind, C));
  for (const ConstTensorView& t :
       {ConstTensorView(a.dinp), ConstTensorView(a.dweight), a.dout, a.inp, a.weight, a.rstd})
    check_device(op, ctx, t);
  // kAccumulate reads dinp too.
  const double dinp_read = a.dinp_mode == WriteMode::kAccumulate ? static_cast<double>(a.dinp.nbytes()) : 0.0;
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.dout, a.inp, a.weight, a.rstd, a.dinp, a.dweight}) + dinp_read);
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.inp); return cpu::rmsnorm_backward(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.inp); OM_CUDA_OP(op, cuda::rmsnorm_backward(a, ctx.stream)); return;
  }
}

}  // namespace om
