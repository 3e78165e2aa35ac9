#include "kernels/cast.h"

#include <string>

namespace om {
namespace {

std::string name_of(DType t) { return std::string(dtype_name(t)); }

// The conversions each backend implements (kernels/cast.h).
bool supported(DeviceKind device, DType from, DType to) {
  const bool f32_bf16 = (from == DType::kF32 || from == DType::kBF16) && (to == DType::kF32 || to == DType::kBF16);
  if (device == DeviceKind::kCuda) return f32_bf16;
  return f32_bf16 || (from == DType::kF64 && to == DType::kF64);
}

// Every check of one cast (kernels/cast.h), `op` naming the call.
void check_cast(const char* op, const ExecContext& ctx, const CastArgs& a) {
  // Non-null (unless empty) and contiguous, whatever the dtype and shape.
  check_tensor(op, a.out, a.out.dtype, a.out.shape);
  check_tensor(op, a.in, a.in.dtype, a.in.shape);
  OM_CHECK(a.out.numel() == a.in.numel(), "%s: 'out' ('%s' %s %s) has %ld elements but 'in' ('%s' %s %s) has %ld", op,
           a.out.name, name_of(a.out.dtype).c_str(), a.out.shape.ToString().c_str(), static_cast<long>(a.out.numel()),
           a.in.name, name_of(a.in.dtype).c_str(), a.in.shape.ToString().c_str(), static_cast<long>(a.in.numel()));
  for (const ConstTensorView& t : {ConstTensorView(a.out), a.in}) check_device(op, ctx, t);
  // A partial overlap of an f32 input and a bf16 output would read elements other threads already wrote.
  OM_CHECK(!overlaps(a.out, a.in), "%s: output '%s' overlaps input '%s'", op, a.out.name, a.in.name);
  OM_CHECK(supported(ctx.device.kind, a.in.dtype, a.out.dtype),
           "%s: no %s conversion from %s ('%s', %ld elements) to %s ('%s'); supported: f32 -> bf16, bf16 -> f32 and "
           "same-dtype copies of f32 and bf16%s",
           op, ctx.device.kind == DeviceKind::kCuda ? "CUDA" : "CPU", name_of(a.in.dtype).c_str(), a.in.name,
           static_cast<long>(a.in.numel()), name_of(a.out.dtype).c_str(), a.out.name,
           ctx.device.kind == DeviceKind::kCuda ? "" : " (and f64 on the CPU)");
}

}  // namespace

void cast(const ExecContext& ctx, const CastArgs& a) {
  constexpr const char* op = "cast";
  check_cast(op, ctx, a);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.in, a.out}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: return cpu::cast(a);
    case DeviceKind::kCuda: OM_CUDA_OP(op, cuda::cast(a, ctx.stream)); return;
  }
}

void cast_group(const ExecContext& ctx, std::span<const CastArgs> list) {
  constexpr const char* op = "cast_group";
  if (list.empty()) return;
  std::vector<GroupTensor> tensors;
  double bytes = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    check_cast(op, ctx, list[i]);
    tensors.push_back({list[i].out, i, true});
    tensors.push_back({list[i].in, i, false});
    bytes += bytes_of({list[i].in, list[i].out});
  }
  check_group_disjoint(op, std::move(tensors));
  const profiler::Scope prof(ctx, op, 0, bytes);
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      for (const CastArgs& a : list) cpu::cast(a);
      return;
    case DeviceKind::kCuda: OM_CUDA_OP(op, cuda::cast_group(list, ctx.stream)); return;
  }
}

}  // namespace om
