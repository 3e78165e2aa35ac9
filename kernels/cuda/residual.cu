// CUDA residual add (kernels/residual.h): out = a + b for bf16 or f32 tensors of any shape.
// Each element is one f32 addition rounded once to the dtype, the CPU reference's arithmetic (f32
// inputs: one correctly rounded add; bf16 inputs: exact in f32, the f32 sum rounded to nearest
// even), so the result is bit-identical to the f32 reference on the same values.
//   residual_forward_packed<T, W>: a grid-stride loop over packs of W elements. W = 16 bytes /
//   sizeof(T) (one 128-bit load per operand) when the three pointers are 16-byte aligned and W
//   divides numel, else W = 1. The pack width changes the loads only, never the arithmetic.
// out may alias a or b exactly: each thread reads its pack of a and b before it writes that pack.
// Arguments were validated by kernels/residual.cc.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/residual.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
// Grid cap: 4096 blocks of 256 threads (1M threads) cover an H100/H200 (132 SMs x 2048 resident
// threads) about four times; larger tensors loop.
constexpr int64_t kMaxBlocks = 4096;

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    residual_forward_packed(T* out, const T* a, const T* b, int64_t npacks) {
  using P = Pack<T, W>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < npacks; p += stride) {
    const P pa = reinterpret_cast<const P*>(a)[p];
    const P pb = reinterpret_cast<const P*>(b)[p];
    P po;
#pragma unroll
    for (int j = 0; j < W; ++j) store_f32(&po.v[j], load_f32(&pa.v[j]) + load_f32(&pb.v[j]));
    reinterpret_cast<P*>(out)[p] = po;
  }
}

template <typename T, int W>
void launch(T* out, const T* a, const T* b, int64_t n, cudaStream_t s) {
  const int64_t npacks = n / W;
  residual_forward_packed<T, W><<<grid_blocks(npacks, kThreads, kMaxBlocks), kThreads, 0, s>>>(out, a, b, npacks);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void forward_impl(const ResidualArgs& args, Stream stream) {
  const int64_t n = args.a.numel();
  if (n == 0) return;  // a zero-sized grid is a launch error
  T* out = args.out.data_as<T>();
  const T* a = args.a.data_as<const T>();
  const T* b = args.b.data_as<const T>();
  const cudaStream_t s = to_cuda_stream(stream);
  constexpr int kW = 16 / static_cast<int>(sizeof(T));
  if (n % kW == 0 && aligned16(out) && aligned16(a) && aligned16(b)) {
    launch<T, kW>(out, a, b, n, s);
  } else {
    launch<T, 1>(out, a, b, n, s);
  }
}

}  // namespace

void residual_forward(const ResidualArgs& args, Stream stream) {
  switch (args.a.dtype) {
    case DType::kF32: return forward_impl<float>(args, stream);
    case DType::kBF16: return forward_impl<__nv_bfloat16>(args, stream);
    default:
      fatal_error("dtype is bf16 or f32",
                  format_message("residual_forward (cuda): '%s' is %s; the CUDA kernel takes bf16 or f32",
                                 args.a.name, std::string(dtype_name(args.a.dtype)).c_str()),
                  __FILE__, __LINE__);
  }
}

}  // namespace om::cuda
