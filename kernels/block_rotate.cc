#include "kernels/block_rotate.h"

#include <string>

namespace om {

void block_rotate(const ExecContext& ctx, std::span<const RotationUnit> units, RotateDirection direction,
                  RotatePrecision precision) {
  constexpr const char* op = "block_rotate";
  OM_CHECK(precision == RotatePrecision::kF32 || ctx.device.kind == DeviceKind::kCuda,
           "%s: TF32 rotations run on CUDA tensor cores only; %s rotates in fp32 (--ortho-precision fp32)", op,
           device_name(ctx.device).c_str());
  for (const RotationUnit& u : units) {
    OM_CHECK(u.x.ndim() == 2, "%s: unit '%s' must be 2-D (R, K), got %s", op, u.x.name, u.x.shape.ToString().c_str());
    const int64_t R = u.x.dim(0), K = u.x.dim(1);
    check_tensor(op, u.x, u.x.dtype, u.x.shape);
    check_tensor(op, u.q_r, u.x.dtype, {R, R});
    check_device(op, ctx, u.x);
    check_device(op, ctx, u.q_r);
    int64_t covered = 0;
    for (const ConstTensorView& q : u.q_c) {
      OM_CHECK(q.ndim() == 2 && q.dim(0) == q.dim(1), "%s: column block '%s' of unit '%s' must be square, got %s", op,
               q.name, u.x.name, q.shape.ToString().c_str());
      check_tensor(op, q, u.x.dtype, q.shape);
      check_device(op, ctx, q);
      covered += q.dim(0);
    }
    OM_CHECK(covered == K, "%s: the column blocks of unit '%s' %s cover %ld columns, not K = %ld", op, u.x.name,
             u.x.shape.ToString().c_str(), static_cast<long>(covered), static_cast<long>(K));
  }
  if (units.empty()) return;
  // Per unit x (R, K) <- Q_r x Q_cᵀ (or the inverse): 2·R²·K + Σ_b 2·R·K_b² FLOPs; x read and written,
  // every Q read.
  double flops = 0, bytes = 0;
  for (const RotationUnit& u : units) {
    const double R = static_cast<double>(u.x.dim(0)), K = static_cast<double>(u.x.dim(1));
    flops += 2 * R * R * K;
    bytes += bytes_of({u.x, u.x, u.q_r});
    for (const ConstTensorView& q : u.q_c) {
      flops += 2 * R * static_cast<double>(q.dim(0)) * static_cast<double>(q.dim(0));
      bytes += bytes_of({q});
    }
  }
  const profiler::Scope prof(ctx, op, flops, bytes);
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, units.front().x); return cpu::block_rotate(units, direction);
    case DeviceKind::kCuda:
      // The CUDA kernel takes f32 only (units are fp32 optimizer state); x's dtype is every Q's (above).
      for (const RotationUnit& u : units) {
        OM_CHECK(u.x.dtype == DType::kF32, "%s: the CUDA kernel takes f32 units (optimizer state); '%s' is %s", op,
                 u.x.name, std::string(dtype_name(u.x.dtype)).c_str());
      }
      OM_CUDA_OP(op, cuda::block_rotate(units, direction, precision, ctx.stream));
      return;
  }
}

}  // namespace om
