#include "kernels/attention.h"

#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/rope.h"

namespace om {
namespace {

// Batch, time, heads and head dim read off qkv (B, T, 3*H*D); OM_CHECKs that they are consistent.
struct AttentionDims {
  int64_t B, T, H, D;
};

AttentionDims attention_dims(const char* op, const ConstTensorView& qkv, int64_t n_heads) {
  OM_CHECK(qkv.ndim() == 3, "%s: '%s' must be (B, T, 3*H*D), got %s", op, qkv.name, qkv.shape.ToString().c_str());
  OM_CHECK(n_heads > 0, "%s: n_heads must be positive, got %ld", op, static_cast<long>(n_heads));
  const int64_t width = qkv.dim(2);
  OM_CHECK(width > 0 && width % (3 * n_heads) == 0, "%s: '%s' last dim %ld is not 3*H*D with H=%ld", op, qkv.name,
           static_cast<long>(width), static_cast<long>(n_heads));
  check_tensor(op, qkv, qkv.dtype, qkv.shape);  // non-null and contiguous
  return {qkv.dim(0), qkv.dim(1), n_heads, width / (3 * n_heads)};
}

// lse and probs: the activation dtype on the CPU (f32 or f64), always f32 on CUDA.
DType stat_dtype(const ExecContext& ctx, const ConstTensorView& qkv) {
  return ctx.device.kind == DeviceKind::kCuda ? DType::kF32 : qkv.dtype;
}

// The op profiler's detail row: which CUDA kernels the call takes (empty on the CPU and when not profiling).
template <typename Args>
std::string profile_detail([[maybe_unused]] const ExecContext& ctx, [[maybe_unused]] const Args& a) {
#if OM_WITH_CUDA
  if (profiler::enabled() && ctx.device.kind == DeviceKind::kCuda) {
    bool tensor_cores = false;
    if constexpr (std::is_same_v<Args, AttentionForwardArgs>) {
      tensor_cores = cuda::attention_forward_uses_tensor_cores(a);
    } else {
      tensor_cores = cuda::attention_backward_uses_tensor_cores(a);
    }
    return tensor_cores ? "tensor cores" : "warp kernels";
  }
#endif
  return {};
}

}  // namespace

void attention_forward(const ExecContext& ctx, const AttentionForwardArgs& a) {
  constexpr const char* op = "attention_forward";
  const auto [B, T, H, D] = attention_dims(op, a.qkv, a.n_heads);
  check_tensor(op, a.out, a.qkv.dtype, {B, T, H * D});
  check_tensor(op, a.lse, stat_dtype(ctx, a.qkv), {B, H, T});
  check_device(op, ctx, a.out);
  check_device(op, ctx, a.lse);
  check_device(op, ctx, a.qkv);
  if (!a.probs.empty()) {  // optional: only the evaluator asks for the full probability matrix
    check_tensor(op, a.probs, stat_dtype(ctx, a.qkv), {B, H, T, T});
    check_device(op, ctx, a.probs);
  }
  // Causal: T(T+1)/2 (query, key) pairs per sequence and head, 2·D FLOPs each for q·k and for p·v.
  const double pairs = static_cast<double>(B * H) * static_cast<double>(T * (T + 1) / 2);
  const profiler::Scope prof(ctx, op, 4.0 * pairs * static_cast<double>(D), bytes_of({a.qkv, a.out, a.lse, a.probs}),
                             profile_detail(ctx, a));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      check_cpu_float(op, a.qkv);
      // f32 (production) runs the GEMM variant; f64 (the gradient checks) the reference.
      return a.qkv.dtype == DType::kF32 ? cpu::attention_forward_gemm(a) : cpu::attention_forward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.qkv);
      OM_CUDA_OP(op, cuda::attention_forward(a, ctx.stream));
      return;
  }
}

void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& a) {
  constexpr const char* op = "attention_backward";
  const auto [B, T, H, D] = attention_dims(op, a.qkv, a.n_heads);
  check_tensor(op, a.dqkv, a.qkv.dtype, {B, T, 3 * H * D});
  check_tensor(op, a.dout, a.qkv.dtype, {B, T, H * D});
  check_tensor(op, a.out, a.qkv.dtype, {B, T, H * D});
  check_tensor(op, a.lse, stat_dtype(ctx, a.qkv), {B, H, T});
  for (const ConstTensorView& t : {ConstTensorView(a.dqkv), a.dout, a.qkv, a.out, a.lse}) check_device(op, ctx, t);
  OM_CHECK(a.rope_theta == 0.0f || (std::isfinite(a.rope_theta) && a.rope_theta > 0.0f && D % 2 == 0),
           "%s: rope_theta = %g: 0 (no RoPE to undo) or a finite theta > 0 with an even head dim (D = %ld)", op,
           static_cast<double>(a.rope_theta), static_cast<long>(D));
  // Per causal pair: s = q·k recomputed, dv += p·dout, dp = dout·v, dq += ds·k, dk += ds·q: 5 × 2·D FLOPs.
  const double pairs = static_cast<double>(B * H) * static_cast<double>(T * (T + 1) / 2);
  const profiler::Scope prof(ctx, op, 10.0 * pairs * static_cast<double>(D),
                             bytes_of({a.qkv, a.out, a.dout, a.lse, a.dqkv}), profile_detail(ctx, a));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: {
      check_cpu_float(op, a.qkv);
      AttentionBackwardArgs plain = a;
      plain.rope_theta = 0.0f;
      a.qkv.dtype == DType::kF32 ? cpu::attention_backward_gemm(plain) : cpu::attention_backward(plain);
      // RoPE's transpose on dq and dk: heads [0, 2H) of dqkv as (B, T, 3H, D).
      if (a.rope_theta > 0.0f) cpu::rope_backward({reshape(a.dqkv, Shape{B, T, 3 * H, D}), 2 * H, a.rope_theta});
      return;
    }
    case DeviceKind::kCuda:
      check_cuda_float(op, a.qkv);
      OM_CUDA_OP(op, cuda::attention_backward(a, ctx.stream));
      return;
  }
}

}  // namespace om
