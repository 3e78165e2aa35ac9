// Shared vocabulary of the op API: gradient modes, argument validation and the device switch helper.
// Every op validates its arguments once, in kernels/<op>.cc, before dispatching to a backend; the
// messages name the op and the tensor ("rmsnorm_forward: 'inp' is f32 (2, 5) but expected (2, 8)").
#pragma once

#include <initializer_list>
#include <vector>

#include "core/profiler.h"

#include "core/check.h"
#include "core/device.h"
#include "core/tensor.h"

namespace om {

// How an op writes its output: overwrite (=) or accumulate (+=). Parameter gradients accumulate,
// activation gradients overwrite (kernels/README.md).
enum class WriteMode : uint8_t { kOverwrite, kAccumulate };

// OM_CHECKs that `t` is non-null, contiguous, of `dtype` and `shape`.
void check_tensor(const char* op, const ConstTensorView& t, DType dtype, const Shape& shape);
// OM_CHECKs that `t` lives on ctx.device.
void check_device(const char* op, const ExecContext& ctx, const ConstTensorView& t);
// True when the bytes of x and y intersect (empty views overlap nothing).
bool overlaps(const ConstTensorView& x, const ConstTensorView& y);

// Grouped calls (adamw_update_group, cast_group): OM_CHECKs that no tensor an entry writes intersects a
// tensor of another entry (entries run concurrently on a GPU). `tensors[k]` belongs to entry
// `entry[k]` and is written when `written[k]`; aliasing inside one entry is the op's own business.
struct GroupTensor {
  ConstTensorView t;
  size_t entry = 0;
  bool written = false;
};
void check_group_disjoint(const char* op, std::vector<GroupTensor> tensors);

// Σ nbytes of the tensors (a tensor listed twice counts twice: read and written), for the op
// profiler's least memory traffic (core/profiler.h).
double bytes_of(std::initializer_list<ConstTensorView> tensors);
// OM_CHECKs that the CPU reference supports `dtype` (f32 production, f64 for gradient checks).
void check_cpu_float(const char* op, const ConstTensorView& t);

// OM_CHECKs that a CUDA activation tensor is bf16 (production) or f32 (tests, small models).
void check_cuda_float(const char* op, const ConstTensorView& t);

// Fatal: `op` was asked to run on CUDA, but this build has no CUDA or the op has no CUDA kernel yet.
[[noreturn]] void no_cuda_kernel(const char* op);

}  // namespace om

// Inside an op's device switch: the CUDA call in CUDA builds, a clear fatal error otherwise.
#if OM_WITH_CUDA
#define OM_CUDA_OP(op_name, call) call
#else
#define OM_CUDA_OP(op_name, call) ::om::no_cuda_kernel(op_name)
#endif
