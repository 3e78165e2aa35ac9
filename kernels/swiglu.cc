#include "kernels/swiglu.h"

namespace om {
namespace {

// gate_up must be (N, 2F) with F >= 1; returns F.
int64_t ffn_width(const char* op, const ConstTensorView& gate_up) {
  OM_CHECK(gate_up.ndim() == 2 && gate_up.dim(1) % 2 == 0 && gate_up.dim(1) > 0,
           "%s: '%s' must be (N, 2F) with the gate in [0, F) and up in [F, 2F), got %s", op, gate_up.name,
           gate_up.shape.ToString().c_str());
  return gate_up.dim(1) / 2;
}

}  // namespace

void swiglu_forward(const ExecContext& ctx, const SwigluForwardArgs& a) {
  constexpr const char* op = "swiglu_forward";
  const int64_t F = ffn_width(op, a.gate_up), N = a.gate_up.dim(0);
  check_tensor(op, a.gate_up, a.gate_up.dtype, {N, 2 * F});
  check_tensor(op, a.out, a.gate_up.dtype, {N, F});
  for (const ConstTensorView& t : {ConstTensorView(a.out), a.gate_up}) check_device(op, ctx, t);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.gate_up, a.out}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.gate_up); return cpu::swiglu_forward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.gate_up);
      OM_CUDA_OP(op, cuda::swiglu_forward(a, ctx.stream));
      return;
  }
}

void swiglu_backward(const ExecContext& ctx, const SwigluBackwardArgs& a) {
  constexpr const char* op = "swiglu_backward";
  const int64_t F = ffn_width(op, a.gate_up), N = a.gate_up.dim(0);
  check_tensor(op, a.gate_up, a.gate_up.dtype, {N, 2 * F});
  check_tensor(op, a.dgate_up, a.gate_up.dtype, {N, 2 * F});
  check_tensor(op, a.dout, a.gate_up.dtype, {N, F});
  for (const ConstTensorView& t : {ConstTensorView(a.dgate_up), a.dout, a.gate_up}) check_device(op, ctx, t);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.gate_up, a.dout, a.dgate_up}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.gate_up); return cpu::swiglu_backward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.gate_up);
      OM_CUDA_OP(op, cuda::swiglu_backward(a, ctx.stream));
      return;
  }
}

}  // namespace om
