// CUDA SwiGLU (kernels/swiglu.h) on the fused (N, 2F) gate|up activation: bf16 or f32 tensors,
// f32 arithmetic, one rounding to the dtype per output. Element-wise, so deterministic.
//   swiglu_forward_packed<T, W>, swiglu_backward_packed<T, W>: a grid-stride loop over packs of W
//   consecutive elements of one row (W = 16 bytes / sizeof(T): 128-bit loads and stores) when W
//   divides F and the pointers are 16-byte aligned, else W = 1. A pack never straddles two rows
//   (W | F), so its gate and up halves are contiguous too. The pack width changes the loads only.
// The formulas are the CPU reference's, evaluated in the same order in f32:
//   s = sigmoid(g), sn = sigmoid(-g) = 1 - s, both from e = exp(-|g|) in (0, 1] (no overflow for
//   any finite gate, and 1 - s is never formed by subtraction, which would cancel for large g)
//   forward   out = (g * s) * u
//   backward  dg = ((dy * u) * s) * (1 + g * sn),   du = (dy * g) * s
// expf is CUDA's (max 2 ulp, no --use_fast_math), the rest IEEE f32; the tests' tolerances
// (tests/cuda/swiglu_test.cc) count these roundings. Arguments were validated by kernels/swiglu.cc.
#include <cstdint>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/swiglu.h"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // 1M threads: several waves of an H100/H200; larger inputs loop

__device__ __forceinline__ void sigmoid_pair(float x, float& sig, float& sig_neg) {
  const float e = expf(-fabsf(x));
  const float inv = 1.0f / (1.0f + e);
  sig = x >= 0.0f ? inv : e * inv;
  sig_neg = x >= 0.0f ? e * inv : inv;
}

// Pack p covers elements [p W, p W + W) of the (N, F) output, all in row n = p W / F.
template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    swiglu_forward_packed(T* out, const T* gate_up, int64_t npacks, int64_t F) {
  using P = Pack<T, W>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < npacks; p += stride) {
    const int64_t e = p * W, n = e / F, f = e - n * F;
    const T* g_row = gate_up + n * 2 * F;
    const P pg = *reinterpret_cast<const P*>(g_row + f);
    const P pu = *reinterpret_cast<const P*>(g_row + F + f);
    P po;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float g = load_f32(&pg.v[j]);
      float s, sn;
      sigmoid_pair(g, s, sn);
      store_f32(&po.v[j], g * s * load_f32(&pu.v[j]));
    }
    *reinterpret_cast<P*>(out + e) = po;
  }
}

template <typename T, int W>
__global__ void __launch_bounds__(kThreads)
    swiglu_backward_packed(T* dgate_up, const T* dout, const T* gate_up, int64_t npacks, int64_t F) {
  using P = Pack<T, W>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < npacks; p += stride) {
    const int64_t e = p * W, n = e / F, f = e - n * F;
    const int64_t row = n * 2 * F;
    const P pg = *reinterpret_cast<const P*>(gate_up + row + f);
    const P pu = *reinterpret_cast<const P*>(gate_up + row + F + f);
    const P pdy = *reinterpret_cast<const P*>(dout + e);
    P pdg, pdu;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float g = load_f32(&pg.v[j]), u = load_f32(&pu.v[j]), dy = load_f32(&pdy.v[j]);
      float s, sn;
      sigmoid_pair(g, s, sn);
      store_f32(&pdg.v[j], dy * u * s * (1.0f + g * sn));
      store_f32(&pdu.v[j], dy * g * s);
    }
    *reinterpret_cast<P*>(dgate_up + row + f) = pdg;
    *reinterpret_cast<P*>(dgate_up + row + F + f) = pdu;
  }
}

unsigned grid_for(int64_t npacks) { return grid_blocks(npacks, kThreads, kMaxBlocks); }

template <typename T>
void forward_impl(const SwigluForwardArgs& a, Stream stream) {
  const int64_t N = a.gate_up.dim(0), F = a.gate_up.dim(1) / 2;
  if (N == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  T* out = a.out.data_as<T>();
  const T* gu = a.gate_up.data_as<const T>();
  constexpr int kW = kPackWidth<T>;
  if (F % kW == 0 && aligned16(out) && aligned16(gu)) {
    swiglu_forward_packed<T, kW><<<grid_for(N * F / kW), kThreads, 0, s>>>(out, gu, N * F / kW, F);
  } else {
    swiglu_forward_packed<T, 1><<<grid_for(N * F), kThreads, 0, s>>>(out, gu, N * F, F);
  }
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void backward_impl(const SwigluBackwardArgs& a, Stream stream) {
  const int64_t N = a.gate_up.dim(0), F = a.gate_up.dim(1) / 2;
  if (N == 0) return;
  const cudaStream_t s = to_cuda_stream(stream);
  T* dgu = a.dgate_up.data_as<T>();
  const T* dy = a.dout.data_as<const T>();
  const T* gu = a.gate_up.data_as<const T>();
  constexpr int kW = kPackWidth<T>;
  if (F % kW == 0 && aligned16(dgu) && aligned16(dy) && aligned16(gu)) {
    swiglu_backward_packed<T, kW><<<grid_for(N * F / kW), kThreads, 0, s>>>(dgu, dy, gu, N * F / kW, F);
  } else {
    swiglu_backward_packed<T, 1><<<grid_for(N * F), kThreads, 0, s>>>(dgu, dy, gu, N * F, F);
  }
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void swiglu_forward(const SwigluForwardArgs& a, Stream stream) {
  switch (a.gate_up.dtype) {
    case DType::kF32: return forward_impl<float>(a, stream);
    case DType::kBF16: return forward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("swiglu_forward", a.gate_up);
  }
}

void swiglu_backward(const SwigluBackwardArgs& a, Stream stream) {
  switch (a.gate_up.dtype) {
    case DType::kF32: return backward_impl<float>(a, stream);
    case DType::kBF16: return backward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("swiglu_backward", a.gate_up);
  }
}

}  // namespace om::cuda
