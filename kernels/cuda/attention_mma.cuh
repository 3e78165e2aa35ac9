// Tensor-core causal attention for bf16 heads of width 64 (kernels/cuda/attention_mma.cu), the path
// kernels/cuda/attention.cu takes when attention_mma_eligible; the warp-per-row kernels there stay the
// reference for everything else (f32, other head widths) and when tensor cores are switched off
// (cuda::set_tensor_core_attention(false), or OM_ATTENTION_KERNEL=warp in the environment).
// Layouts as kernels/attention.h: qkv (B, T, 3·H·64), out/dout (B, T, H·64), lse/delta (B, H, T) f32,
// dqkv (B, T, 3·H·64). Internal to kernels/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace om::cuda {

inline constexpr int kMmaHeadDim = 64;

// bf16 qkv, D = 64, and every pointer 16-byte aligned (the kernels load 8 bf16 at a time; row strides
// 3·H·64 and H·64 are multiples of 8 elements).
bool attention_mma_eligible(const ConstTensorView& qkv, int64_t n_heads, std::initializer_list<const void*> pointers);

// out, lse of a causal softmax (plus_one = false) or softmax-1 (true) attention; scale = 1/sqrt(64) in f32.
void attention_forward_mma(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int64_t B, int64_t T, int H,
                           float scale, bool plus_one, cudaStream_t stream);

// dqkv from dout, qkv, the forward's lse and delta_i = dout_i · out_i (attention.cu's delta kernel).
// rope_cos_sin (nullptr: none) is a (T, 32) table of rope.cuh's rope_cos_sin_table: dq and dk are then
// stored rotated back by RoPE's transpose, the bits of rope_backward applied to them afterwards.
void attention_backward_mma(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                            const float* lse, const float* delta, const double* rope_cos_sin, int64_t B,
                            int64_t T, int H, float scale, cudaStream_t stream);

}  // namespace om::cuda
