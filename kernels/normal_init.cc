#include "kernels/normal_init.h"

#include <string>

namespace om {

void normal_init(const ExecContext& ctx, const NormalInitArgs& a) {
  constexpr const char* op = "normal_init";
  OM_CHECK(a.out.ndim() == 2, "%s: '%s' is %s but must be (R, C)", op, a.out.name, a.out.shape.ToString().c_str());
  check_tensor(op, a.out, a.out.dtype, a.out.shape);
  check_device(op, ctx, a.out);
  OM_CHECK(a.row_stride >= a.out.dim(1), "%s: row_stride %ld is smaller than the %ld columns of '%s'", op,
           static_cast<long>(a.row_stride), static_cast<long>(a.out.dim(1)), a.out.name);
  const profiler::Scope prof(ctx, op, 0, bytes_of({a.out}));
  switch (ctx.device.kind) {
    case DeviceKind::kCpu:
      OM_CHECK(a.out.dtype == DType::kF64 || a.out.dtype == DType::kF32 || a.out.dtype == DType::kBF16,
               "%s: '%s' is %s; the CPU fills f64, f32 or bf16", op, a.out.name,
               std::string(dtype_name(a.out.dtype)).c_str());
      return cpu::normal_init(a);
    case DeviceKind::kCuda: check_cuda_float(op, a.out); OM_CUDA_OP(op, cuda::normal_init(a, ctx.stream)); return;
  }
}

}  // namespace om
