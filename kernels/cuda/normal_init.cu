// CUDA normal_init (kernels/normal_init.h): one thread per element of out (R, C), grid-stride.
// Each element is core/portable_normal.h's draw (only correctly rounded double operations, written
// as _rn intrinsics so nvcc fuses nothing), rounded to f32 by cvt.rn, then mean + stddev·n in f32
// with __fmul_rn / __fadd_rn (no FMA), then for bf16 __float2bfloat16_rn: the CPU reference's steps,
// so the bits equal kernels/cpu/normal_init.cc's. Cost: ~300 double operations per element (the
// polynomials and a division); an H200's ~34 TFLOP/s of f64 fills 350M parameters in milliseconds.
// Arguments were validated by kernels/normal_init.cc.
#include <cstdint>

#include "core/portable_normal.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/normal_init.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    normal_init_kernel(T* out, int64_t rows, int64_t cols, uint64_t seed, uint64_t stream, uint64_t first,
                       int64_t row_stride, float mean, float stddev) {
  const int64_t n = rows * cols;
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += step) {
    const int64_t r = i / cols, c = i - r * cols;
    const uint64_t index = first + static_cast<uint64_t>(r) * static_cast<uint64_t>(row_stride) +
                           static_cast<uint64_t>(c);
    const float draw = static_cast<float>(portable::normal_portable(seed, stream, index));
    store_f32(&out[i], __fadd_rn(mean, __fmul_rn(stddev, draw)));
  }
}

template <typename T>
void launch(const NormalInitArgs& a, Stream stream) {
  const int64_t rows = a.out.dim(0), cols = a.out.dim(1), n = rows * cols;
  if (n == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  normal_init_kernel<T><<<grid_blocks(n, kThreads, kMaxBlocks), kThreads, 0, s>>>(
      a.out.data_as<T>(), rows, cols, a.seed, a.stream, a.first, a.row_stride, static_cast<float>(a.mean),
      static_cast<float>(a.stddev));
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void normal_init(const NormalInitArgs& args, Stream stream) {
  switch (args.out.dtype) {
    case DType::kF32: return launch<float>(args, stream);
    case DType::kBF16: return launch<__nv_bfloat16>(args, stream);
    default:
      fatal_error("dtype is bf16 or f32",
                  format_message("normal_init (cuda): '%s' is %s; the CUDA kernel fills bf16 or f32", args.out.name,
                                 std::string(dtype_name(args.out.dtype)).c_str()),
                  __FILE__, __LINE__);
  }
}

}  // namespace om::cuda
