#include "kernels/embedding.h"

namespace om {
namespace {

// The gradient buffer's dtype: dout's on the CPU (f32 or f64), always f32 on CUDA.
DType grad_dtype(const ExecContext& ctx, const ConstTensorView& dout) {
  return ctx.device.kind == DeviceKind::kCuda ? DType::kF32 : dout.dtype;
}

}  // namespace

void embedding_forward(const ExecContext& ctx, const EmbeddingForwardArgs& a) {
  constexpr const char* op = "embedding_forward";
  OM_CHECK(a.weight.ndim() == 2, "%s: '%s' must be (Vl, C), got %s", op, a.weight.name,
           a.weight.shape.ToString().c_str());
  OM_CHECK(a.ids.ndim() == 1, "%s: '%s' must be (N), got %s", op, a.ids.name, a.ids.shape.ToString().c_str());
  OM_CHECK(a.vocab_start >= 0, "%s: vocab_start %ld must be >= 0", op, static_cast<long>(a.vocab_start));
  const int64_t N = a.ids.dim(0), Vl = a.weight.dim(0), C = a.weight.dim(1);
  check_tensor(op, a.ids, DType::kI32, {N});
  check_tensor(op, a.weight, a.weight.dtype, {Vl, C});
  check_tensor(op, a.out, a.weight.dtype, {N, C});
  for (const ConstTensorView& t : {ConstTensorView(a.out), a.ids, a.weight}) check_device(op, ctx, t);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.ids, a.out, a.out}));  // the rows read, then written
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.weight); return cpu::embedding_forward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.weight);
      OM_CUDA_OP(op, cuda::embedding_forward(a, ctx.stream));
      return;
  }
}

void embedding_backward(const ExecContext& ctx, const EmbeddingBackwardArgs& a) {
  constexpr const char* op = "embedding_backward";
  OM_CHECK(a.dweight.ndim() == 2, "%s: '%s' must be (Vl, C), got %s", op, a.dweight.name,
           a.dweight.shape.ToString().c_str());
  OM_CHECK(a.ids.ndim() == 1, "%s: '%s' must be (N), got %s", op, a.ids.name, a.ids.shape.ToString().c_str());
  OM_CHECK(a.vocab_start >= 0, "%s: vocab_start %ld must be >= 0", op, static_cast<long>(a.vocab_start));
  const int64_t N = a.ids.dim(0), Vl = a.dweight.dim(0), C = a.dweight.dim(1);
  check_tensor(op, a.ids, DType::kI32, {N});
  check_tensor(op, a.dout, a.dout.dtype, {N, C});
  check_tensor(op, a.dweight, grad_dtype(ctx, a.dout), {Vl, C});
  for (const ConstTensorView& t : {ConstTensorView(a.dweight), a.dout, a.ids}) check_device(op, ctx, t);
  // The rows of dout read; N rows of dweight read and written (fewer when ids repeat).
  const profiler::Scope prof(ctx, op, 0,
                             bytes_of({a.ids, a.dout}) + 2.0 * static_cast<double>(N * C * static_cast<int64_t>(
                                                                                         dtype_size(a.dweight.dtype))));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, a.dweight); return cpu::embedding_backward(a);
    case DeviceKind::kCuda:
      check_cuda_float(op, a.dout);
      OM_CUDA_OP(op, cuda::embedding_backward(a, ctx.stream));
      return;
  }
}

}  // namespace om
