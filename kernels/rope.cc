#include "kernels/rope.h"

namespace om {
namespace {

void check_rope_args(const char* op, const ExecContext& ctx, const RopeArgs& a) {
  OM_CHECK(a.x.ndim() == 4, "%s: '%s' must be (B, T, Hx, D), got %s", op, a.x.name, a.x.shape.ToString().c_str());
  const int64_t Hx = a.x.dim(2), D = a.x.dim(3);
  OM_CHECK(D > 0 && D % 2 == 0, "%s: '%s' %s: head dim D = %ld must be even (channel i pairs with i + D/2)", op,
           a.x.name, a.x.shape.ToString().c_str(), static_cast<long>(D));
  OM_CHECK(a.n_rot_heads >= 0 && a.n_rot_heads <= Hx, "%s: n_rot_heads = %ld is outside [0, Hx = %ld] of '%s' %s",
           op, static_cast<long>(a.n_rot_heads), static_cast<long>(Hx), a.x.name, a.x.shape.ToString().c_str());
  OM_CHECK(a.theta > 0.0f, "%s: theta = %g must be positive", op, static_cast<double>(a.theta));
  check_tensor(op, a.x, a.x.dtype, a.x.shape);
  check_device(op, ctx, a.x);
}

}  // namespace

void rope_forward(const ExecContext& ctx, const RopeArgs& a) {
  constexpr const char* op = "rope_forward";
  check_rope_args(op, ctx, a);
  // Reads and writes the rotated heads only: n_rot_heads of the Hx in x.
  const profiler::Scope prof(ctx, op, 0,
                             2.0 * static_cast<double>(a.x.nbytes()) * static_cast<double>(a.n_rot_heads) /
                                 static_cast<double>(a.x.ndim() == 4 && a.x.dim(2) > 0 ? a.x.dim(2) : 1));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.x); return cpu::rope_forward(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.x); OM_CUDA_OP(op, cuda::rope_forward(a, ctx.stream)); return;
  }
}

void rope_backward(const ExecContext& ctx, const RopeArgs& a) {
  constexpr const char* op = "rope_backward";
  check_rope_args(op, ctx, a);
  // Reads and writes the rotated heads only: n_rot_heads of the Hx in x.
  const profiler::Scope prof(ctx, op, 0,
                             2.0 * static_cast<double>(a.x.nbytes()) * static_cast<double>(a.n_rot_heads) /
                                 static_cast<double>(a.x.ndim() == 4 && a.x.dim(2) > 0 ? a.x.dim(2) : 1));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.x); return cpu::rope_backward(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.x); OM_CUDA_OP(op, cuda::rope_backward(a, ctx.stream)); return;
  }
}

}  // namespace om
