#include "kernels/adamw.h"

#include <string>

namespace om {

namespace {

void check_betas(const char* op, float beta1, float beta2, int64_t step) {
  OM_CHECK(step >= 1, "%s: step is %ld; it is 1-based (the bias correction divides by 1 - beta^step)", op,
           static_cast<long>(step));
  OM_CHECK(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f,
           "%s: betas must lie in [0, 1), got beta1 %g beta2 %g", op, static_cast<double>(beta1),
           static_cast<double>(beta2));
}

// On CUDA every tensor is f32: master weights, moments and (fp32-accumulated) gradients.
void check_cuda_f32(const char* op, const ConstTensorView& t) {
  OM_CHECK(t.dtype == DType::kF32, "%s: the CUDA kernel updates f32 master weights and moments; '%s' is %s", op,
           t.name, std::string(dtype_name(t.dtype)).c_str());
}

// The optional fused publish (kernels/adamw.h): f32 or bf16, contiguous, as many elements as param
// (f32), on the op's device, and no byte shared with the entry's other tensors.
void check_value(const char* op, const ExecContext& ctx, const TensorView& value, const ConstTensorView& param,
                 std::initializer_list<ConstTensorView> others) {
  if (value.empty()) return;
  OM_CHECK(value.dtype == DType::kF32 || value.dtype == DType::kBF16,
           "%s: value '%s' is %s; the fused publish writes f32 or bf16", op, value.name,
           std::string(dtype_name(value.dtype)).c_str());
  OM_CHECK(param.dtype == DType::kF32, "%s: the fused publish into '%s' casts f32 master weights; '%s' is %s", op,
           value.name, param.name, std::string(dtype_name(param.dtype)).c_str());
  check_tensor(op, value, value.dtype, value.shape);
  OM_CHECK(value.numel() == param.numel(), "%s: value '%s' has %ld elements but '%s' has %ld", op, value.name,
           static_cast<long>(value.numel()), param.name, static_cast<long>(param.numel()));
  check_device(op, ctx, value);
  for (const ConstTensorView& t : others) {
    OM_CHECK(!overlaps(value, t), "%s: value '%s' overlaps '%s'; the publish needs its own memory", op, value.name,
             t.name);
  }
}

// The fused publish's bytes, written once (none without it).
double value_bytes(const TensorView& value) { return value.empty() ? 0.0 : bytes_of({value}); }

}  // namespace

void adamw_update(const ExecContext& ctx, const AdamWArgs& a) {
  constexpr const char* op = "adamw_update";
  const Shape shape = a.param.shape;
  for (const ConstTensorView& t : {ConstTensorView(a.param), ConstTensorView(a.m), ConstTensorView(a.v), a.grad}) {
    check_tensor(op, t, a.param.dtype, shape);
    check_device(op, ctx, t);
  }
  check_betas(op, a.beta1, a.beta2, a.step);
  check_value(op, ctx, a.value, a.param, {a.param, a.m, a.v, a.grad});
  const profiler::Scope prof(ctx, op, 0,
                             bytes_of({a.param, a.m, a.v, a.grad, a.param, a.m, a.v}) + value_bytes(a.value));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.param); return cpu::adamw_update(a);
    case DeviceKind::kCuda: check_cuda_f32(op, a.param); OM_CUDA_OP(op, cuda::adamw_update(a, ctx.stream)); return;
  }
}

void adam_direction(const ExecContext& ctx, const AdamDirectionArgs& a) {
  constexpr const char* op = "adam_direction";
  const Shape shape = a.direction.shape;
  for (const ConstTensorView& t : {ConstTensorView(a.direction), ConstTensorView(a.m), ConstTensorView(a.v), a.grad}) {
    check_tensor(op, t, a.direction.dtype, shape);
    check_device(op, ctx, t);
  }
  check_betas(op, a.beta1, a.beta2, a.step);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.m, a.v, a.grad, a.direction, a.m, a.v}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.direction); return cpu::adam_direction(a);
    case DeviceKind::kCuda:
      check_cuda_f32(op, a.direction);
      OM_CUDA_OP(op, cuda::adam_direction(a, ctx.stream));
      return;
  }
}

void adam_apply(const ExecContext& ctx, const AdamApplyArgs& a) {
  constexpr const char* op = "adam_apply";
  check_tensor(op, a.param, a.param.dtype, a.param.shape);
  check_tensor(op, a.direction, a.param.dtype, a.param.shape);
  check_device(op, ctx, a.param);
  check_device(op, ctx, a.direction);
  check_value(op, ctx, a.value, a.param, {a.param, a.direction});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.param, a.direction, a.param}) + value_bytes(a.value));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.param); return cpu::adam_apply(a);
    case DeviceKind::kCuda: check_cuda_f32(op, a.param); OM_CUDA_OP(op, cuda::adam_apply(a, ctx.stream)); return;
  }
}

namespace {

// A grouped call's entries share every scalar but weight_decay (kernels/adamw.h).
void check_same_step(const char* op, size_t i, const AdamWArgs& a, const AdamWArgs& first) {
  OM_CHECK(a.lr == first.lr && a.beta1 == first.beta1 && a.beta2 == first.beta2 && a.eps == first.eps &&
               a.step == first.step && a.grad_scale == first.grad_scale,
           "%s: entry %zu ('%s') has lr %g, betas (%g, %g), eps %g, step %ld, grad_scale %g but entry 0 ('%s') has "
           "lr %g, betas (%g, %g), eps %g, step %ld, grad_scale %g: one grouped call is one step with one set of "
           "hyper-parameters (only weight_decay may differ)",
           op, i, a.param.name, static_cast<double>(a.lr), static_cast<double>(a.beta1), static_cast<double>(a.beta2),
           static_cast<double>(a.eps), static_cast<long>(a.step), static_cast<double>(a.grad_scale), first.param.name,
           static_cast<double>(first.lr), static_cast<double>(first.beta1), static_cast<double>(first.beta2),
           static_cast<double>(first.eps), static_cast<long>(first.step), static_cast<double>(first.grad_scale));
}

}  // namespace

void adamw_update_group(const ExecContext& ctx, std::span<const AdamWArgs> list) {
  constexpr const char* op = "adamw_update_group";
  if (list.empty()) return;
  std::vector<GroupTensor> tensors;
  double bytes = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    const AdamWArgs& a = list[i];
    for (const ConstTensorView& t : {ConstTensorView(a.param), ConstTensorView(a.m), ConstTensorView(a.v), a.grad}) {
      check_tensor(op, t, a.param.dtype, a.param.shape);
      check_device(op, ctx, t);
    }
    check_betas(op, a.beta1, a.beta2, a.step);
    check_same_step(op, i, a, list[0]);
    check_value(op, ctx, a.value, a.param, {a.param, a.m, a.v, a.grad});
    if (ctx.device.kind == DeviceKind::kCpu) check_cpu_float(op, a.param);
    if (ctx.device.kind == DeviceKind::kCuda) check_cuda_f32(op, a.param);
    tensors.push_back({a.param, i, true});
    tensors.push_back({a.m, i, true});
    tensors.push_back({a.v, i, true});
    tensors.push_back({a.grad, i, false});
    if (!a.value.empty()) tensors.push_back({a.value, i, true});
    bytes += bytes_of({a.param, a.m, a.v, a.grad, a.param, a.m, a.v}) + value_bytes(a.value);
  }
  check_group_disjoint(op, std::move(tensors));
  const profiler::Scope prof(ctx, op, 0, bytes);
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      for (const AdamWArgs& a : list) cpu::adamw_update(a);
      return;
    case DeviceKind::kCuda: OM_CUDA_OP(op, cuda::adamw_update_group(list, ctx.stream)); return;
  }
}

void adam_apply_group(const ExecContext& ctx, std::span<const AdamApplyArgs> list) {
  constexpr const char* op = "adam_apply_group";
  if (list.empty()) return;
  std::vector<GroupTensor> tensors;
  double bytes = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    const AdamApplyArgs& a = list[i];
    check_tensor(op, a.param, a.param.dtype, a.param.shape);
    check_tensor(op, a.direction, a.param.dtype, a.param.shape);
    check_device(op, ctx, a.param);
    check_device(op, ctx, a.direction);
    OM_CHECK(a.lr == list[0].lr,
             "%s: entry %zu ('%s') has lr %g but entry 0 ('%s') has lr %g: one grouped call is one step with one lr",
             op, i, a.param.name, static_cast<double>(a.lr), list[0].param.name, static_cast<double>(list[0].lr));
    check_value(op, ctx, a.value, a.param, {a.param, a.direction});
    if (ctx.device.kind == DeviceKind::kCpu) check_cpu_float(op, a.param);
    if (ctx.device.kind == DeviceKind::kCuda) check_cuda_f32(op, a.param);
    tensors.push_back({a.param, i, true});
    tensors.push_back({a.direction, i, false});
    if (!a.value.empty()) tensors.push_back({a.value, i, true});
    bytes += bytes_of({a.param, a.direction, a.param}) + value_bytes(a.value);
  }
  check_group_disjoint(op, std::move(tensors));
  const profiler::Scope prof(ctx, op, 0, bytes);
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      for (const AdamApplyArgs& a : list) cpu::adam_apply(a);
      return;
    case DeviceKind::kCuda: OM_CUDA_OP(op, cuda::adam_apply_group(list, ctx.stream)); return;
  }
}

}  // namespace om
