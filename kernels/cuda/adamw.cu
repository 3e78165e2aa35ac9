// CUDA AdamW (kernels/adamw.h): adamw_update, adam_direction and adam_apply on f32 master weights,
// moments and gradients, one thread per element (a grid-stride loop).
// Each element is computed in double with exactly the CPU reference's operations in the CPU
// reference's order (kernels/cpu/adamw.cc), written with the _rn intrinsics so that nvcc cannot
// contract a multiply and an add into an FMA (it does for plain `a * b + c` under the default
// --fmad=true). IEEE double +, -, *, / and sqrt are correctly rounded on both sides, the f32 inputs
// convert to double exactly, and the bias corrections 1 - beta^step are computed on the host with
// the CPU reference's own expression (the same libm), so every double intermediate and therefore
// every f32 result equals the CPU reference's bit for bit (when the host compiler does not contract
// either: see tests/cuda/adamw_test.cc). Element-wise, so deterministic for any launch shape.
// The double arithmetic costs ~60 FP64 operations per element; at H200 FP64 rates that is well
// under the time to stream the 28 bytes per element the update reads and writes.
// The grouped calls (adamw_update_group, adam_apply_group) run the same per-element code over up to
// kAdamGroupMax tensors per launch, their pointers and sizes in the kernel's arguments; adamw_update and
// adam_apply are groups of one. An entry with a `value` also writes its updated param there, cast by
// f32_to_bf16_bits (the fused publish: for bf16, 2 bytes more written per element instead of a cast pass's 6).
// Arguments were validated by kernels/adamw.cc.
#include <cmath>

#include "kernels/adamw.h"
#include "kernels/cuda/cuda_common.cuh"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
// Enough blocks to fill an H200 (132 SMs x 8 resident blocks of 256) several times over; larger
// tensors loop (grid-stride), so the grid size never depends on n beyond this cap.
constexpr int64_t kMaxBlocks = 132 * 8 * 4;

// The CPU reference's bias_correction (kernels/cpu/adamw.cc), same expression and libm, on the host:
// 1 - beta^step without cancellation.
double bias_correction(double beta, int64_t step) {
  return -std::expm1(static_cast<double>(step) * std::log1p(-(1.0 - beta)));
}

// The per-call constants of the moment update, all exact conversions of the f32 arguments except
// bc1, bc2 (host libm, as on the CPU).
struct MomentConsts {
  double b1, b2, eps, scale, bc1, bc2;
};

MomentConsts moment_consts(float beta1, float beta2, float eps, float grad_scale, int64_t step) {
  return MomentConsts{beta1, beta2, eps, grad_scale, bias_correction(beta1, step), bias_correction(beta2, step)};
}

// Moments::Direction of the CPU reference, operation for operation:
//   gi = scale * g
//   mi = b1 * mi + (1 - b1) * gi
//   vi = b2 * vi + ((1 - b2) * gi) * gi          (C++ evaluates (1.0 - b2) * gi * gi left to right)
//   u  = (mi / bc1) / (sqrt(vi / bc2) + eps)
__device__ __forceinline__ double adam_direction_one(const MomentConsts& c, double g, double& mi, double& vi) {
  const double gi = __dmul_rn(c.scale, g);
  mi = __dadd_rn(__dmul_rn(c.b1, mi), __dmul_rn(__dsub_rn(1.0, c.b1), gi));
  vi = __dadd_rn(__dmul_rn(c.b2, vi), __dmul_rn(__dmul_rn(__dsub_rn(1.0, c.b2), gi), gi));
  return __ddiv_rn(__ddiv_rn(mi, c.bc1), __dadd_rn(__dsqrt_rn(__ddiv_rn(vi, c.bc2)), c.eps));
}

// apply_one of the CPU reference: param - lr * (u + wd * param), u already rounded to f32.
__device__ __forceinline__ float adam_apply_one(double pi, float u, double lr, double wd) {
  return __double2float_rn(__dsub_rn(pi, __dmul_rn(lr, __dadd_rn(static_cast<double>(u), __dmul_rn(wd, pi)))));
}

// `direction` may alias `grad` (in place), so neither is __restrict__: element i is read before it
// is written, by the same thread.
__global__ void __launch_bounds__(kThreads)
    adam_direction_kernel(float* direction, float* __restrict__ m, float* __restrict__ v, const float* grad,
                          int64_t n, MomentConsts c) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    double mi = m[i], vi = v[i];
    const double ui = adam_direction_one(c, grad[i], mi, vi);
    direction[i] = __double2float_rn(ui);
    m[i] = __double2float_rn(mi);
    v[i] = __double2float_rn(vi);
  }
}

// The fused publish's destination (kernels/adamw.h AdamWArgs::value) of one entry.
enum ValueKind : uint8_t { kNoValue = 0, kValueF32 = 1, kValueBf16 = 2 };

ValueKind value_kind(const TensorView& value) {
  if (value.empty()) return kNoValue;
  return value.dtype == DType::kBF16 ? kValueBf16 : kValueF32;
}

// Element j of an entry's updated param into its value, cast as kernels/cuda/cast.cu casts.
__device__ __forceinline__ void put_value(void* value, uint8_t kind, int64_t j, float p) {
  if (kind == kValueF32) static_cast<float*>(value)[j] = p;
  if (kind == kValueBf16) static_cast<uint16_t*>(value)[j] = f32_to_bf16_bits(p);
}

// A grouped call's entries, passed by value as the kernel's arguments: kAdamGroupMax of them at 57 bytes
// (AdamW) or 41 bytes (apply) each, with the constants under the 4 KB that every CUDA version accepts;
// end as kernels/cuda/cuda_common.cuh group_index reads it. A single call is a group of one.
struct AdamWGroup {
  int count = 0;
  float* param[kAdamGroupMax];
  float* m[kAdamGroupMax];
  float* v[kAdamGroupMax];
  const float* grad[kAdamGroupMax];
  void* value[kAdamGroupMax];
  int64_t end[kAdamGroupMax];
  double wd[kAdamGroupMax];
  uint8_t kind[kAdamGroupMax];
};

struct AdamApplyGroup {
  int count = 0;
  float* param[kAdamGroupMax];
  const float* direction[kAdamGroupMax];
  void* value[kAdamGroupMax];
  int64_t end[kAdamGroupMax];
  double wd[kAdamGroupMax];
  uint8_t kind[kAdamGroupMax];
};
static_assert(sizeof(AdamWGroup) + sizeof(MomentConsts) + sizeof(double) <= 4096, "kernel arguments over 4 KB");

// AdamW over every entry of `g`, each element by the CPU reference's operations (so the same bits).
__global__ void __launch_bounds__(kThreads) adamw_update_group_kernel(const AdamWGroup g, MomentConsts c, double lr) {
  const int64_t total = g.end[g.count - 1];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int e = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t j = group_index(g.end, i, e);
    double mi = g.m[e][j], vi = g.v[e][j];
    const float u = __double2float_rn(adam_direction_one(c, g.grad[e][j], mi, vi));
    const float p = adam_apply_one(g.param[e][j], u, lr, g.wd[e]);
    g.param[e][j] = p;
    put_value(g.value[e], g.kind[e], j, p);
    g.m[e][j] = __double2float_rn(mi);
    g.v[e][j] = __double2float_rn(vi);
  }
}

// adam_apply over every entry of `g`.
__global__ void __launch_bounds__(kThreads) adam_apply_group_kernel(const AdamApplyGroup g, double lr) {
  const int64_t total = g.end[g.count - 1];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int e = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t j = group_index(g.end, i, e);
    const float p = adam_apply_one(g.param[e][j], g.direction[e][j], lr, g.wd[e]);
    g.param[e][j] = p;
    put_value(g.value[e], g.kind[e], j, p);
  }
}

unsigned grid_for(int64_t n) { return grid_blocks(n, kThreads, kMaxBlocks); }

}  // namespace

void adamw_update(const AdamWArgs& a, Stream stream) { adamw_update_group(std::span(&a, 1), stream); }

void adam_direction(const AdamDirectionArgs& a, Stream stream) {
  const int64_t n = a.direction.numel();
  if (n == 0) return;
  const cudaStream_t s = to_cuda_stream(stream);
  adam_direction_kernel<<<grid_for(n), kThreads, 0, s>>>(
      a.direction.data_as<float>(), a.m.data_as<float>(), a.v.data_as<float>(), a.grad.data_as<const float>(), n,
      moment_consts(a.beta1, a.beta2, a.eps, a.grad_scale, a.step));
  OM_CUDA_CHECK_KERNEL(s);
}

void adam_apply(const AdamApplyArgs& a, Stream stream) { adam_apply_group(std::span(&a, 1), stream); }

void adamw_update_group(std::span<const AdamWArgs> list, Stream stream) {
  if (list.empty()) return;
  const cudaStream_t s = to_cuda_stream(stream);
  const AdamWArgs& first = list[0];  // every entry's scalars but weight_decay (kernels/adamw.cc checks)
  const MomentConsts c = moment_consts(first.beta1, first.beta2, first.eps, first.grad_scale, first.step);
  AdamWGroup g;
  const auto launch = [&] {
    if (g.count == 0) return;
    adamw_update_group_kernel<<<grid_for(g.end[g.count - 1]), kThreads, 0, s>>>(g, c, first.lr);
    OM_CUDA_CHECK_KERNEL(s);
    g.count = 0;
  };
  for (const AdamWArgs& a : list) {
    if (a.param.numel() == 0) continue;
    const int k = g.count;
    g.param[k] = a.param.data_as<float>();
    g.m[k] = a.m.data_as<float>();
    g.v[k] = a.v.data_as<float>();
    g.grad[k] = a.grad.data_as<const float>();
    g.value[k] = a.value.data;
    g.kind[k] = value_kind(a.value);
    group_add_end(g.end, k, a.param.numel());
    g.wd[k] = a.weight_decay;
    if (++g.count == kAdamGroupMax) launch();
  }
  launch();
}

void adam_apply_group(std::span<const AdamApplyArgs> list, Stream stream) {
  if (list.empty()) return;
  const cudaStream_t s = to_cuda_stream(stream);
  const double lr = list[0].lr;  // every entry's (kernels/adamw.cc checks)
  AdamApplyGroup g;
  const auto launch = [&] {
    if (g.count == 0) return;
    adam_apply_group_kernel<<<grid_for(g.end[g.count - 1]), kThreads, 0, s>>>(g, lr);
    OM_CUDA_CHECK_KERNEL(s);
    g.count = 0;
  };
  for (const AdamApplyArgs& a : list) {
    if (a.param.numel() == 0) continue;
    const int k = g.count;
    g.param[k] = a.param.data_as<float>();
    g.direction[k] = a.direction.data_as<const float>();
    g.value[k] = a.value.data;
    g.kind[k] = value_kind(a.value);
    group_add_end(g.end, k, a.param.numel());
    g.wd[k] = a.weight_decay;
    if (++g.count == kAdamGroupMax) launch();
  }
  launch();
}

}  // namespace om::cuda
