// Causal multi-head self-attention with softmax or softmax-1 (PAPER.md "softmax-1").
//   s_ij = q_i · k_j / sqrt(D)  for key j <= query i (causal), per batch row b and head h
//   softmax:   p_ij = exp(s_ij) / sum_j exp(s_ij)
//   softmax-1: p_ij = exp(s_ij) / (1 + sum_j exp(s_ij))   (a row may sum to < 1: "attend to nothing")
//   out_i = sum_j p_ij v_j;   lse_i = log of the row's denominator, so p_ij = exp(s_ij - lse_i).
// The backward recomputes p from q, k and lse (no T x T matrix is stored between the passes).
// Stateless; a call may run concurrently with calls on other tensors.
// REQUIRES: CPU: all float tensors of one call share one dtype (f32 or f64). CUDA: qkv, out, dout and
//           dqkv share one dtype (bf16 or f32); lse and probs are f32; D <= 256.
//           qkv's last dimension is 3*H*D with H = n_heads > 0.
#pragma once

#include "kernels/common.h"

namespace om {

enum class AttentionKind : uint8_t {
  kSoftmax,   // exp(s) / sum exp(s)
  kSoftmax1,  // exp(s) / (1 + sum exp(s)); stable form m = max(0, max s): exp(s - m) / (exp(-m) + sum exp(s - m))
};

struct AttentionForwardArgs {
  TensorView out;       // (B, T, H*D)    written (=); head h at [h*D, (h+1)*D)
  TensorView lse;       // (B, H, T)      written (=); saved for backward. softmax: log sum_j exp(s_ij),
                        //                softmax-1: log(1 + sum_j exp(s_ij)), j <= i
  TensorView probs;     // (B, H, T, T)   optional (data == nullptr: not requested); written (=): p_ij,
                        //                0 above the diagonal. For the first-token attention metrics.
  ConstTensorView qkv;  // (B, T, 3*H*D)  per token q | k | v, each H*D with head h at [h*D, (h+1)*D);
                        //                RoPE already applied to q and k
  int64_t n_heads = 0;  // H: the heads local to this tensor-parallel rank
  AttentionKind kind = AttentionKind::kSoftmax;
};

struct AttentionBackwardArgs {
  TensorView dqkv;       // (B, T, 3*H*D)  written (=): dq | dk | dv in qkv's layout
  ConstTensorView dout;  // (B, T, H*D)
  ConstTensorView qkv;   // (B, T, 3*H*D)  the forward input
  ConstTensorView out;   // (B, T, H*D)    the forward output
  ConstTensorView lse;   // (B, H, T)      from the forward
  int64_t n_heads = 0;   // H
  AttentionKind kind = AttentionKind::kSoftmax;
  float rope_theta = 0;  // > 0: q and k were rotated by RoPE with this theta (kernels/rope.h) before the
                         // forward, and dq, dk are rotated back (its backward, R(t)ᵀ): the gradients
                         // with respect to the unrotated q and k. The bits of rope_backward applied to
                         // dqkv's heads [0, 2H) after a call with 0 (the CUDA tensor-core kernels fuse
                         // it into their stores). 0: dqkv with respect to qkv as given.
};

void attention_forward(const ExecContext& ctx, const AttentionForwardArgs& args);
void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& args);

namespace cpu {
// attention_backward's rope_theta is applied by the entry point above (cpu::rope_backward after these);
// the cpu:: functions compute dqkv with respect to qkv as given and REQUIRE rope_theta == 0 (checked).
// The reference (kernels/cpu/attention.cc): f32 or f64 storage, computes in double with scalar loops.
// attention_forward / attention_backward above send f64 calls here, so the gradient checks run in f64
// through the reference; its f32 instantiation stays callable (tests, bench) but is not dispatched to.
void attention_forward(const AttentionForwardArgs& args);
void attention_backward(const AttentionBackwardArgs& args);

// The per-head GEMM variant (kernels/cpu/attention_gemm.cc), f32 only; the dispatch above sends every
// f32 call here. Per (b, h): S = q kᵀ / sqrt(D), the causal softmax / softmax-1 of S (same stable
// formulation as the reference), out = P v, and the backward's dP, dv, dq, dk as matrix products,
// each through single-threaded dnnl_sgemm calls on blocks of the causal lower triangle, with f32
// accumulation. Bit-identical for any OpenMP thread count; tested against the f64 reference
// (kernels/check/attention_check.cc). Uses (T, T) f32 scratch per thread (two in the backward):
// 256 KiB each at T = 256, meant for the short sequences of CPU training.
void attention_forward_gemm(const AttentionForwardArgs& args);
void attention_backward_gemm(const AttentionBackwardArgs& args);
}  // namespace cpu

namespace cuda {
// Flash-style kernels (kernels/cuda/attention.cu): no (T, T) matrix in memory except the optional
// probs. qkv, out, dout, dqkv bf16 or f32 (one dtype per call); lse and probs f32; f32 arithmetic;
// D <= 256 (OM_CHECK). Deterministic: every output element is written by one warp in a fixed order.
//   forward:  one warp per (b, h, query i) runs the online softmax over keys j <= i (softmax-1: the
//             running max starts at 0 and the running sum at 1); probs, if requested, in a second
//             pass over the same keys as exp(s_ij - lse_i).
//   backward: delta_i = dout_i · out_i, then one warp per query row writes dq_i and one warp per key
//             row writes dk_j and dv_j, with p_ij recomputed as exp(s_ij - lse_i).
// The backward uses a (B, H, T) f32 stream-ordered scratch for delta (Buffer::AllocateScratch); it does
// not wait for the device.
// bf16 with D = 64 (every preset's head width) and 16-byte aligned tensors takes the tensor-core kernels
// of kernels/cuda/attention_mma.cu instead (FlashAttention-2 tiling, mma.sync bf16 products in registers,
// f32 accumulation; p and ds rounded to bf16 before their products; rope_theta's rotation fused into
// the dq and dk stores), unless switched off here or by OM_ATTENTION_KERNEL=warp in the environment (read
// once). probs still come from a warp pass. The backward also uses a (T, D/2) cos/sin table of doubles
// as scratch when rope_theta > 0 on that path.
void attention_forward(const AttentionForwardArgs& args, Stream stream);
void attention_backward(const AttentionBackwardArgs& args, Stream stream);
void set_tensor_core_attention(bool allowed);  // process-wide; for tests and comparisons
// Whether attention_forward / attention_backward take the tensor-core kernels for these arguments now (the
// dispatch's own test: bf16, D = 64, 16-byte aligned, not switched off); the op profiler's detail row.
bool attention_forward_uses_tensor_cores(const AttentionForwardArgs& args);
bool attention_backward_uses_tensor_cores(const AttentionBackwardArgs& args);
}  // namespace cuda

}  // namespace om
