#include "kernels/cross_entropy.h"

#include <initializer_list>

namespace om {
namespace {

// Statistics (row_max, sum_exp, target_logit, losses): f32 on CUDA; on the CPU the dtype of `like`
// (the logits, or for cross_entropy_loss, whose inputs are all statistics, row_max).
DType stat_dtype(const ExecContext& ctx, const ConstTensorView& like) {
  return ctx.device.kind == DeviceKind::kCuda ? DType::kF32 : like.dtype;
}

void check_logits(const char* op, const ConstTensorView& logits) {
  OM_CHECK(logits.ndim() == 2, "%s: '%s' must be (N, Vl), got %s", op, logits.name, logits.shape.ToString().c_str());
}

void check_shard(const char* op, const VocabShard& s) {
  OM_CHECK(s.vocab_size >= 1 && s.vocab_start >= 0, "%s: invalid vocab shard (vocab_start %ld, vocab_size %ld)", op,
           static_cast<long>(s.vocab_start), static_cast<long>(s.vocab_size));
}

void check_devices(const char* op, const ExecContext& ctx, std::initializer_list<ConstTensorView> ts) {
  for (const ConstTensorView& t : ts) check_device(op, ctx, t);
}

}  // namespace

void cross_entropy_row_max(const ExecContext& ctx, const CrossEntropyRowMaxArgs& a) {
  constexpr const char* op = "cross_entropy_row_max";
  check_logits(op, a.logits);
  check_shard(op, a.shard);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  check_tensor(op, a.logits, a.logits.dtype, {N, Vl});
  check_tensor(op, a.row_max, stat_dtype(ctx, a.logits), {N});
  check_devices(op, ctx, {a.row_max, a.logits});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.logits, a.row_max}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      check_cpu_float(op, a.logits);
      if (a.logits.dtype == DType::kF32) return cpu::cross_entropy_row_max_simd(a);
      return cpu::cross_entropy_row_max(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.logits);
      OM_CUDA_OP(op, cuda::cross_entropy_row_max(a, ctx.stream));
      return;
  }
}

void cross_entropy_sum_exp(const ExecContext& ctx, const CrossEntropySumExpArgs& a) {
  constexpr const char* op = "cross_entropy_sum_exp";
  check_logits(op, a.logits);
  check_shard(op, a.shard);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  check_tensor(op, a.logits, a.logits.dtype, {N, Vl});
  check_tensor(op, a.sum_exp, stat_dtype(ctx, a.logits), {N});
  check_tensor(op, a.row_max, stat_dtype(ctx, a.logits), {N});
  check_devices(op, ctx, {a.sum_exp, a.logits, a.row_max});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.logits, a.row_max, a.sum_exp}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      check_cpu_float(op, a.logits);
      if (a.logits.dtype == DType::kF32) return cpu::cross_entropy_sum_exp_simd(a);
      return cpu::cross_entropy_sum_exp(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.logits);
      OM_CUDA_OP(op, cuda::cross_entropy_sum_exp(a, ctx.stream));
      return;
  }
}

void cross_entropy_target_logit(const ExecContext& ctx, const CrossEntropyTargetLogitArgs& a) {
  constexpr const char* op = "cross_entropy_target_logit";
  check_logits(op, a.logits);
  check_shard(op, a.shard);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  check_tensor(op, a.logits, a.logits.dtype, {N, Vl});
  check_tensor(op, a.target_logit, stat_dtype(ctx, a.logits), {N});
  check_tensor(op, a.targets, DType::kI32, {N});
  check_devices(op, ctx, {a.target_logit, a.logits, a.targets});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.targets, a.target_logit}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.logits); return cpu::cross_entropy_target_logit(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.logits);
      OM_CUDA_OP(op, cuda::cross_entropy_target_logit(a, ctx.stream));
      return;
  }
}

void cross_entropy_loss(const ExecContext& ctx, const CrossEntropyLossArgs& a) {
  constexpr const char* op = "cross_entropy_loss";
  OM_CHECK(a.row_max.ndim() == 1, "%s: '%s' must be (N), got %s", op, a.row_max.name,
           a.row_max.shape.ToString().c_str());
  const int64_t N = a.row_max.dim(0);
  const DType dt = stat_dtype(ctx, a.row_max);
  for (const ConstTensorView& t : {ConstTensorView(a.losses), a.row_max, a.sum_exp, a.target_logit})
    check_tensor(op, t, dt, {N});
  check_tensor(op, a.targets, DType::kI32, {N});
  check_devices(op, ctx, {a.losses, a.row_max, a.sum_exp, a.target_logit, a.targets});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.row_max, a.sum_exp, a.target_logit, a.targets, a.losses}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.row_max); return cpu::cross_entropy_loss(a);
    case DeviceKind::kCuda: OM_CUDA_OP(op, cuda::cross_entropy_loss(a, ctx.stream)); return;
  }
}

namespace {

// A single-shard forward's arguments: the shard covers the whole vocabulary; on CUDA also every tensor
// (the CPU composes the pieces, which check their own).
void check_whole_vocabulary_forward(const char* op, const ExecContext& ctx, const CrossEntropyForwardArgs& a) {
  check_logits(op, a.logits);
  check_shard(op, a.shard);
  OM_CHECK(a.shard.vocab_start == 0 && a.logits.dim(1) >= a.shard.vocab_size,
           "%s: '%s' %s must cover the whole vocabulary (vocab_start 0, vocab_size %ld, got vocab_start %ld); "
           "a vocab-parallel shard composes the cross_entropy_* pieces with all-reduces instead",
           op, a.logits.name, a.logits.shape.ToString().c_str(), static_cast<long>(a.shard.vocab_size),
           static_cast<long>(a.shard.vocab_start));
  if (ctx.device.kind != DeviceKind::kCuda) return;
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  check_tensor(op, a.logits, a.logits.dtype, {N, Vl});
  for (const ConstTensorView& t : {ConstTensorView(a.losses), ConstTensorView(a.row_max), ConstTensorView(a.sum_exp),
                                   ConstTensorView(a.target_logit)})
    check_tensor(op, t, DType::kF32, {N});
  check_tensor(op, a.targets, DType::kI32, {N});
  check_devices(op, ctx, {a.losses, a.row_max, a.sum_exp, a.target_logit, a.logits, a.targets});
  check_cuda_float(op, a.logits);
}

}  // namespace

// The single-shard composition of the pieces: on the CPU the pieces themselves (each validating its
// own tensors), on CUDA one fused kernel with the pieces' arithmetic.
void cross_entropy_forward(const ExecContext& ctx, const CrossEntropyForwardArgs& a) {
  constexpr const char* op = "cross_entropy_forward";
  check_whole_vocabulary_forward(op, ctx, a);
  const profiler::Scope prof(ctx, op, 0,
                             bytes_of({a.logits, a.targets, a.losses, a.row_max, a.sum_exp, a.target_logit}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      cross_entropy_row_max(ctx, {a.row_max, a.logits, a.shard});
      cross_entropy_sum_exp(ctx, {a.sum_exp, a.logits, a.row_max, a.shard});
      cross_entropy_target_logit(ctx, {a.target_logit, a.logits, a.targets, a.shard});
      cross_entropy_loss(ctx, {a.losses, a.row_max, a.sum_exp, a.target_logit, a.targets});
      return;
    case DeviceKind::kCuda:
      OM_CUDA_OP(op, cuda::cross_entropy_forward(a, ctx.stream));
      return;
  }
}

// On the CPU the forward then the backward (each checking its own tensors, their profiler scopes nested
// in this one); on CUDA one kernel.
void cross_entropy_forward_backward(const ExecContext& ctx, const CrossEntropyForwardBackwardArgs& a) {
  constexpr const char* op = "cross_entropy_forward_backward";
  const CrossEntropyForwardArgs& f = a.forward;
  check_whole_vocabulary_forward(op, ctx, f);
  if (ctx.device.kind == DeviceKind::kCuda) {
    check_tensor(op, a.dlogits, f.logits.dtype, f.logits.shape);
    check_device(op, ctx, a.dlogits);
  }
  // The logits read once and dlogits written once.
  const profiler::Scope prof(
      ctx, op, 0, bytes_of({f.logits, f.targets, f.losses, f.row_max, f.sum_exp, f.target_logit, a.dlogits}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      cross_entropy_forward(ctx, f);
      cross_entropy_backward(ctx, {a.dlogits, f.logits, f.targets, f.row_max, f.sum_exp, f.shard, a.dloss});
      return;
    case DeviceKind::kCuda:
      OM_CUDA_OP(op, cuda::cross_entropy_forward_backward(a, ctx.stream));
      return;
  }
}

void cross_entropy_backward(const ExecContext& ctx, const CrossEntropyBackwardArgs& a) {
  constexpr const char* op = "cross_entropy_backward";
  check_logits(op, a.logits);
  check_shard(op, a.shard);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  check_tensor(op, a.logits, a.logits.dtype, {N, Vl});
  check_tensor(op, a.dlogits, a.logits.dtype, {N, Vl});
  check_tensor(op, a.targets, DType::kI32, {N});
  check_tensor(op, a.row_max, stat_dtype(ctx, a.logits), {N});
  check_tensor(op, a.sum_exp, stat_dtype(ctx, a.logits), {N});
  check_devices(op, ctx, {a.dlogits, a.logits, a.targets, a.row_max, a.sum_exp});
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.logits, a.targets, a.row_max, a.sum_exp, a.dlogits}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      check_cpu_float(op, a.logits);
      if (a.logits.dtype == DType::kF32) return cpu::cross_entropy_backward_simd(a);
      return cpu::cross_entropy_backward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.logits);
      OM_CUDA_OP(op, cuda::cross_entropy_backward(a, ctx.stream));
      return;
  }
}

}  // namespace om
