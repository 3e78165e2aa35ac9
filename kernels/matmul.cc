#include "kernels/matmul.h"

#include <string>
#include <utility>

#include "core/check.h"
#include "core/profiler.h"

namespace om {

void matmul(const ExecContext& ctx, const MatmulArgs& args) {
  constexpr const char* op = "matmul";
  OM_CHECK(args.a.ndim() == 2, "%s: 'a' ('%s') must be 2-D, got %s", op, args.a.name, args.a.shape.ToString().c_str());
  OM_CHECK(args.b.ndim() == 2, "%s: 'b' ('%s') must be 2-D, got %s", op, args.b.name, args.b.shape.ToString().c_str());
  // M and K come from a; N from b; b must then agree on K and c on (M, N).
  const bool ta = args.trans_a == Transpose::kYes, tb = args.trans_b == Transpose::kYes;
  const int64_t M = ta ? args.a.dim(1) : args.a.dim(0), K = ta ? args.a.dim(0) : args.a.dim(1);
  const int64_t N = tb ? args.b.dim(0) : args.b.dim(1);
  // bf16 a and b with an f32 c: the weight gradient into an f32 main gradient (kernels/matmul.h).
  const bool bf16_in_f32_out = args.a.dtype == DType::kBF16 && args.c.dtype == DType::kF32;
  OM_CHECK(!bf16_in_f32_out || ctx.device.kind == DeviceKind::kCuda,
           "%s: bf16 matmul runs on CUDA only; 'a' ('%s') is bf16 and 'c' ('%s') f32 on %s", op, args.a.name,
           args.c.name, device_name(ctx.device).c_str());
  check_tensor(op, args.a, args.a.dtype, args.a.shape);
  check_tensor(op, args.b, args.a.dtype, tb ? Shape{N, K} : Shape{K, N});
  check_tensor(op, args.c, bf16_in_f32_out ? DType::kF32 : args.a.dtype, {M, N});
  for (const ConstTensorView& t : {ConstTensorView(args.c), args.a, args.b}) check_device(op, ctx, t);
  // The GEMM reads a and b while it writes c; an overlap would read partly written results.
  OM_CHECK(!overlaps(args.c, args.a) && !overlaps(args.c, args.b),
           "%s: output '%s' overlaps an input ('%s' or '%s')", op, args.c.name, args.a.name, args.b.name);
  if (args.residual.data != nullptr) {
    OM_CHECK(args.mode == WriteMode::kOverwrite, "%s: a residual ('%s') goes with kOverwrite only, not kAccumulate "
             "into '%s'", op, args.residual.name, args.c.name);
    check_tensor(op, args.residual, args.c.dtype, {M, N});
    check_device(op, ctx, args.residual);
    OM_CHECK(!overlaps(args.c, args.residual), "%s: output '%s' overlaps the residual '%s' (use kAccumulate for c += "
             "op(a)·op(b))", op, args.c.name, args.residual.name);
  }
  const bool adds_c = args.mode == WriteMode::kAccumulate;
  // The profile's detail row: "MxNxK", op(a) and op(b) transposed (T) or not (N), the input type, and what
  // else the call does: "16384x2304x768 NT bf16", "2304x768x16384 TN bf16->f32 +=" (a weight gradient).
  std::string detail;
  if (profiler::enabled()) {
    detail = format_message("%ldx%ldx%ld %s%s %s%s%s%s", static_cast<long>(M), static_cast<long>(N),
                            static_cast<long>(K), ta ? "T" : "N", tb ? "T" : "N",
                            std::string(dtype_name(args.a.dtype)).c_str(), bf16_in_f32_out ? "->f32" : "",
                            adds_c ? " +=" : "", args.residual.data != nullptr ? " +residual" : "");
  }
  const profiler::Scope prof(ctx, op, 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K),
                             bytes_of({args.a, args.b, args.c, adds_c ? ConstTensorView(args.c) : ConstTensorView{},
                                       args.residual}),
                             std::move(detail));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu: check_cpu_float(op, args.a); return cpu::matmul(args);
    case DeviceKind::kCuda: check_cuda_float(op, args.a); OM_CUDA_OP(op, cuda::matmul(args, ctx.stream)); return;
  }
}

}  // namespace om
