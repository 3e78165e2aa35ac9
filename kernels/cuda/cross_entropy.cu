// CUDA cross-entropy (kernels/cross_entropy.h): bf16 or f32 logits and dlogits, f32 statistics.
//   row_max, sum_exp, backward, forward (fused),  one block of kRowThreads per row
//   forward_backward (forward then backward)
//   target_logit, loss                             one thread per row
// Column layout, shared by every pass over a row: thread t owns the chunks of kChunk consecutive
// columns [kChunk c, kChunk c + kChunk) with c = t, t + kRowThreads, ..., visited in increasing
// order. A chunk that lies wholly inside the row's valid columns is read with 16-byte vector loads
// when the row is 16-byte aligned (`vector_ok`), element by element otherwise; both read the same
// values in the same order, so the results do not depend on alignment (tested).
// Arithmetic (the CPU reference's formulas, kernels/cpu/cross_entropy.cc, in f32):
//   row_max   per-thread max, then a fixed-order block max: exact (a max does not round).
//   sum_exp   per-thread f32 sum of exp(x - m) over its columns in order, then block_sum (warp
//             butterflies, then the warp totals): a fixed order, so bit-identical from run to run.
//             exp(x - m) is exp_shifted below: x - m formed exactly by TwoSum, as the reference
//             does in double.
//   loss      log(sum_exp) + m - x_t in double, rounded once, as the CPU reference.
//   backward  exp(x - m) * fl(dloss / sum_exp), minus dloss on the target column, rounded once to
//             the dlogits dtype; 0 on padding columns and ignored rows.
// The fused forward runs the same device functions as the pieces, so it equals them bit for bit;
// it reads each row twice (max, then exp), the second time mostly from L2. forward_backward adds the
// backward's pass over the row (a third read, again mostly from L2, and the write of dlogits).
// No float atomics anywhere. Arguments were validated by kernels/cross_entropy.cc; target ids are
// checked here (a bad id prints its row and traps: see check_target).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/cuda_common.cuh"

namespace om::cuda {
namespace {

// 512 threads x 8 columns cover 4096 columns per sweep: a 32000-column row takes 8 sweeps, and
// N = 512 rows fill 132 SMs at 4 resident blocks each in one wave.
constexpr int kRowThreads = kCrossEntropyRowThreads;
constexpr int kChunk = kCrossEntropyChunk;  // one 16-byte load of bf16, two of f32
constexpr int kElementThreads = 256;

// Device-side target check, the CPU reference's check_targets: a target outside [0, vocab_size)
// that is not kIgnoreTarget is a data bug. Reported with printf (device printf reaches the host's
// stdout) and __trap(), which aborts the kernel; the next synchronizing CUDA call then fails with
// an OM_CUDA_CHECK that names it (with OM_SYNC_DEBUG=1, at the launch itself).
__device__ __forceinline__ void check_target(const char* op, int64_t n, int32_t t, int64_t vocab_size) {
  if (t != kIgnoreTarget && (t < 0 || t >= vocab_size)) {
    printf("%s (cuda): targets[%lld] = %d is neither a token id in [0, %lld) nor kIgnoreTarget (%d)\n", op,
           static_cast<long long>(n), t, static_cast<long long>(vocab_size), kIgnoreTarget);
    __trap();
  }
}

// exp(x - m) for f32 x and m with x - m formed exactly: TwoSum gives s = fl(x - m) and r with
// s + r = x - m exactly, and exp(x - m) = exp(s) * exp(r) = e + e * r up to a relative r²/2
// (|r| <= 2^-24 |s| <= 88 * 2^-24 where e is not 0: below 1e-11 relative). Error: expf is within
// 2 ulp of the correctly rounded exp(s) (CUDA Programming Guide, "Mathematical functions",
// without --use_fast_math), plus 0.5 ulp for that rounding and 0.5 ulp for the fma: <= 3 ulp
// (tests/cuda/cross_entropy_test.cc, kCudaExpShiftedUlps). Where e is 0, inf or NaN (x - m below
// -103.9, x or m infinite, or NaN) e is returned as it is, as exp of the exact difference would be.
__device__ __forceinline__ float exp_shifted(float x, float m) {
  const float s = __fsub_rn(x, m);
  const float xv = __fadd_rn(s, m);   // the part of s that came from x
  const float mv = __fsub_rn(s, xv);  // the part of s that came from -m
  const float r = __fadd_rn(__fsub_rn(x, xv), __fsub_rn(-m, mv));
  const float e = expf(s);
  return e > 0.0f && e < INFINITY ? __fmaf_rn(e, r, e) : e;
}

// Chunk loads and stores as f32. bf16 -> f32 is exact (the bf16 bits are the high half of the f32
// bits); f32 -> bf16 rounds to nearest even, as store_f32 and the host's float_to_bf16_bits.
__device__ __forceinline__ void load_chunk(const float* p, float (&v)[kChunk]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void load_chunk(const __nv_bfloat16* p, float (&v)[kChunk]) {
  const uint4 q = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {  // little-endian: the lower address is the low half-word
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void store_chunk(float* p, const float (&v)[kChunk]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void store_chunk(__nv_bfloat16* p, const float (&v)[kChunk]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t lo = __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i]));
    const uint32_t hi = __bfloat16_as_ushort(__float2bfloat16_rn(v[2 * i + 1]));
    w[i] = lo | (hi << 16);
  }
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Calls fn(x) for this thread's columns j < valid of `row`, in increasing j (the layout above).
template <typename T, typename Fn>
__device__ __forceinline__ void for_each_valid_column(const T* row, int64_t valid, bool vector_ok, Fn&& fn) {
  for (int64_t base = static_cast<int64_t>(threadIdx.x) * kChunk; base < valid;
       base += static_cast<int64_t>(kChunk) * kRowThreads) {
    if (vector_ok && base + kChunk <= valid) {
      float v[kChunk];
      load_chunk(row + base, v);
#pragma unroll
      for (int k = 0; k < kChunk; ++k) fn(v[k]);
    } else {
      for (int k = 0; k < kChunk && base + k < valid; ++k) fn(load_f32(row + base + k));
    }
  }
}

// The row's max over its valid columns (-inf if there are none); every thread returns it (up to
// the sign of a zero max, which changes no x - m).
template <typename T>
__device__ __forceinline__ float row_max_of(const T* row, int64_t valid, bool vector_ok, float* scratch) {
  float mx = -INFINITY;
  for_each_valid_column(row, valid, vector_ok, [&](float x) { mx = fmaxf(mx, x); });
  return block_max(mx, scratch);
}

// sum over the valid columns of exp(x - m); every thread returns the same bits.
template <typename T>
__device__ __forceinline__ float row_sum_exp(const T* row, float m, int64_t valid, bool vector_ok, float* scratch) {
  float s = 0.0f;
  for_each_valid_column(row, valid, vector_ok, [&](float x) { s = __fadd_rn(s, exp_shifted(x, m)); });
  return block_sum(s, scratch);
}

// logits[n, t - vocab_start] if this shard owns target t, else an exact 0 (the all-reduce SUM).
template <typename T>
__device__ __forceinline__ float target_logit_of(const T* row, int32_t t, int64_t vocab_start, int64_t valid) {
  const int64_t local = static_cast<int64_t>(t) - vocab_start;
  return t != kIgnoreTarget && local >= 0 && local < valid ? load_f32(row + local) : 0.0f;
}

// The CPU reference's loss: (log(sum_exp) + m) - x_t in double, rounded once; 0 if ignored.
__device__ __forceinline__ float loss_of(float m, float se, float tl, int32_t t) {
  if (t == kIgnoreTarget) return 0.0f;
  return __double2float_rn(__dsub_rn(__dadd_rn(log(static_cast<double>(se)), m), tl));
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_row_max_block_per_row(float* row_max, const T* logits, int64_t Vl, int64_t valid, bool vector_ok) {
  __shared__ float scratch[kWarpSize];
  const int64_t n = blockIdx.x;
  const float m = row_max_of(logits + n * Vl, valid, vector_ok, scratch);
  if (threadIdx.x == 0) row_max[n] = m;
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_sum_exp_block_per_row(float* sum_exp, const T* logits, const float* row_max, int64_t Vl,
                                        int64_t valid, bool vector_ok) {
  __shared__ float scratch[kWarpSize];
  const int64_t n = blockIdx.x;
  const float s = row_sum_exp(logits + n * Vl, row_max[n], valid, vector_ok, scratch);
  if (threadIdx.x == 0) sum_exp[n] = s;
}

template <typename T>
__global__ void __launch_bounds__(kElementThreads)
    cross_entropy_target_logit_per_row(float* target_logit, const T* logits, const int32_t* targets, int64_t N,
                                       int64_t Vl, int64_t vocab_start, int64_t vocab_size, int64_t valid) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const int32_t t = targets[n];
  check_target("cross_entropy_target_logit", n, t, vocab_size);
  target_logit[n] = target_logit_of(logits + n * Vl, t, vocab_start, valid);
}

__global__ void __launch_bounds__(kElementThreads)
    cross_entropy_loss_per_row(float* losses, const float* row_max, const float* sum_exp, const float* target_logit,
                               const int32_t* targets, int64_t N) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  losses[n] = loss_of(row_max[n], sum_exp[n], target_logit[n], targets[n]);
}

// The four forward pieces on one whole-vocabulary row (vocab_start 0), from the same functions.
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_forward_block_per_row(float* losses, float* row_max, float* sum_exp, float* target_logit,
                                        const T* logits, const int32_t* targets, int64_t Vl, int64_t vocab_size,
                                        int64_t valid, bool vector_ok) {
  __shared__ float scratch[kWarpSize];
  const int64_t n = blockIdx.x;
  const T* row = logits + n * Vl;
  const int32_t t = targets[n];
  if (threadIdx.x == 0) check_target("cross_entropy_forward", n, t, vocab_size);
  const float m = row_max_of(row, valid, vector_ok, scratch);
  const float se = row_sum_exp(row, m, valid, vector_ok, scratch);
  if (threadIdx.x == 0) {
    const float tl = target_logit_of(row, t, 0, valid);
    row_max[n] = m;
    sum_exp[n] = se;
    target_logit[n] = tl;
    losses[n] = loss_of(m, se, tl, t);
  }
}

// The gradient of one row (x: its logits, dx: its dlogits, possibly x itself), written (=) over all Vl
// columns with the same chunk layout (vector stores where `vector_ok`; both rows are then 16-byte
// aligned), given the row's target t, global max m and sum_exp se (unused when t is ignored).
// Element-wise, so the path taken changes no value; each thread reads a chunk before it writes it, so in
// place is safe.
template <typename T>
__device__ __forceinline__ void backward_row(T* dx, const T* x, int32_t t, float m_row, float se, int64_t Vl,
                                             int64_t vocab_start, int64_t valid, bool vector_ok, float dloss) {
  const bool ignored = t == kIgnoreTarget;
  // Outside this shard `local` is out of [0, valid) and no column gets the -dloss.
  const int64_t local = static_cast<int64_t>(t) - vocab_start;
  const float m = ignored ? 0.0f : m_row;
  // p * dloss = exp(x - m) * (dloss / sum_exp): one rounding for the factor, one for the product,
  // one for the subtraction on the target column (the CPU simd variant's formula).
  const float c = ignored ? 0.0f : __fdiv_rn(dloss, se);
  const int64_t live = ignored ? 0 : valid;  // columns that get a gradient; the rest get 0
  auto grad = [&](float xj, int64_t j) {
    const float p = __fmul_rn(exp_shifted(xj, m), c);
    return j == local ? __fsub_rn(p, dloss) : p;
  };
  for (int64_t base = static_cast<int64_t>(threadIdx.x) * kChunk; base < Vl;
       base += static_cast<int64_t>(kChunk) * kRowThreads) {
    if (vector_ok && base + kChunk <= Vl) {
      float v[kChunk];
      if (base + kChunk <= live) {
        load_chunk(x + base, v);
#pragma unroll
        for (int k = 0; k < kChunk; ++k) v[k] = grad(v[k], base + k);
      } else {
#pragma unroll
        for (int k = 0; k < kChunk; ++k) v[k] = base + k < live ? grad(load_f32(x + base + k), base + k) : 0.0f;
      }
      store_chunk(dx + base, v);
    } else {
      for (int k = 0; k < kChunk && base + k < Vl; ++k) {
        const int64_t j = base + k;
        store_f32(dx + j, j < live ? grad(load_f32(x + j), j) : 0.0f);
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_backward_block_per_row(T* dlogits, const T* logits, const int32_t* targets, const float* row_max,
                                         const float* sum_exp, int64_t Vl, int64_t vocab_start, int64_t vocab_size,
                                         int64_t valid, bool vector_ok, float dloss) {
  const int64_t n = blockIdx.x;
  const int32_t t = targets[n];
  if (threadIdx.x == 0) check_target("cross_entropy_backward", n, t, vocab_size);
  backward_row(dlogits + n * Vl, logits + n * Vl, t, row_max[n], sum_exp[n], Vl, vocab_start, valid, vector_ok,
               dloss);  // an ignored row's statistics go unused there
}

// cross_entropy_forward_block_per_row, then backward_row on the same row with the m and sum_exp it
// found (the values it stores): the bits of the two kernels. The target logit is read before the
// block reductions, whose barriers order it before any thread overwrites the row (in place).
template <typename T>
__global__ void __launch_bounds__(kRowThreads)
    cross_entropy_forward_backward_block_per_row(T* dlogits, float* losses, float* row_max, float* sum_exp,
                                                 float* target_logit, const T* logits, const int32_t* targets,
                                                 int64_t Vl, int64_t vocab_size, int64_t valid, bool vector_ok,
                                                 float dloss) {
  __shared__ float scratch[kWarpSize];
  const int64_t n = blockIdx.x;
  const T* row = logits + n * Vl;
  const int32_t t = targets[n];
  float tl = 0.0f;
  if (threadIdx.x == 0) {
    check_target("cross_entropy_forward_backward", n, t, vocab_size);
    tl = target_logit_of(row, t, 0, valid);
  }
  const float m = row_max_of(row, valid, vector_ok, scratch);
  const float se = row_sum_exp(row, m, valid, vector_ok, scratch);
  if (threadIdx.x == 0) {
    row_max[n] = m;
    sum_exp[n] = se;
    target_logit[n] = tl;
    losses[n] = loss_of(m, se, tl, t);
  }
  backward_row(dlogits + n * Vl, row, t, m, se, Vl, 0, valid, vector_ok, dloss);
}

// ---- host side ----

// Padding ids are the tail of a contiguous shard: columns [valid, Vl) (cpu::valid_columns).
int64_t valid_columns(const VocabShard& s, int64_t Vl) {
  const int64_t v = s.vocab_size - s.vocab_start;
  return v < 0 ? 0 : (v > Vl ? Vl : v);
}

// Vector loads need every row start 16-byte aligned: the base pointer and the row pitch.
template <typename T>
bool rows_16_byte_aligned(const void* p, int64_t Vl) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && (Vl * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

// One block per row: the grid's x dimension holds at most 2^31 - 1 blocks.
unsigned row_blocks(const char* op, int64_t N) {
  OM_CHECK(N < (int64_t{1} << 31), "%s (cuda): N=%ld rows exceed the grid's range", op, static_cast<long>(N));
  return static_cast<unsigned>(N);
}

unsigned element_blocks(int64_t N) { return static_cast<unsigned>(ceil_div(N, kElementThreads)); }

template <typename T>
void row_max_impl(const CrossEntropyRowMaxArgs& a, cudaStream_t s) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  if (N == 0) return;  // a zero-sized grid is a launch error
  const T* x = a.logits.data_as<const T>();
  cross_entropy_row_max_block_per_row<T><<<row_blocks("cross_entropy_row_max", N), kRowThreads, 0, s>>>(
      a.row_max.data_as<float>(), x, Vl, valid_columns(a.shard, Vl), rows_16_byte_aligned<T>(x, Vl));
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void sum_exp_impl(const CrossEntropySumExpArgs& a, cudaStream_t s) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  if (N == 0) return;
  const T* x = a.logits.data_as<const T>();
  cross_entropy_sum_exp_block_per_row<T><<<row_blocks("cross_entropy_sum_exp", N), kRowThreads, 0, s>>>(
      a.sum_exp.data_as<float>(), x, a.row_max.data_as<const float>(), Vl, valid_columns(a.shard, Vl),
      rows_16_byte_aligned<T>(x, Vl));
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void target_logit_impl(const CrossEntropyTargetLogitArgs& a, cudaStream_t s) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  if (N == 0) return;
  cross_entropy_target_logit_per_row<T><<<element_blocks(N), kElementThreads, 0, s>>>(
      a.target_logit.data_as<float>(), a.logits.data_as<const T>(), a.targets.data_as<const int32_t>(), N, Vl,
      a.shard.vocab_start, a.shard.vocab_size, valid_columns(a.shard, Vl));
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void forward_impl(const CrossEntropyForwardArgs& a, cudaStream_t s) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  if (N == 0) return;
  const T* x = a.logits.data_as<const T>();
  cross_entropy_forward_block_per_row<T><<<row_blocks("cross_entropy_forward", N), kRowThreads, 0, s>>>(
      a.losses.data_as<float>(), a.row_max.data_as<float>(), a.sum_exp.data_as<float>(),
      a.target_logit.data_as<float>(), x, a.targets.data_as<const int32_t>(), Vl, a.shard.vocab_size,
      valid_columns(a.shard, Vl), rows_16_byte_aligned<T>(x, Vl));
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void forward_backward_impl(const CrossEntropyForwardBackwardArgs& a, cudaStream_t s) {
  const CrossEntropyForwardArgs& f = a.forward;
  const int64_t N = f.logits.dim(0), Vl = f.logits.dim(1);
  if (N == 0 || Vl == 0) return;
  const T* x = f.logits.data_as<const T>();
  T* dx = a.dlogits.data_as<T>();
  cross_entropy_forward_backward_block_per_row<T>
      <<<row_blocks("cross_entropy_forward_backward", N), kRowThreads, 0, s>>>(
          dx, f.losses.data_as<float>(), f.row_max.data_as<float>(), f.sum_exp.data_as<float>(),
          f.target_logit.data_as<float>(), x, f.targets.data_as<const int32_t>(), Vl, f.shard.vocab_size,
          valid_columns(f.shard, Vl), rows_16_byte_aligned<T>(x, Vl) && rows_16_byte_aligned<T>(dx, Vl), a.dloss);
  OM_CUDA_CHECK_KERNEL(s);
}

template <typename T>
void backward_impl(const CrossEntropyBackwardArgs& a, cudaStream_t s) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1);
  if (N == 0 || Vl == 0) return;
  const T* x = a.logits.data_as<const T>();
  T* dx = a.dlogits.data_as<T>();
  cross_entropy_backward_block_per_row<T><<<row_blocks("cross_entropy_backward", N), kRowThreads, 0, s>>>(
      dx, x, a.targets.data_as<const int32_t>(), a.row_max.data_as<const float>(), a.sum_exp.data_as<const float>(),
      Vl, a.shard.vocab_start, a.shard.vocab_size, valid_columns(a.shard, Vl),
      rows_16_byte_aligned<T>(x, Vl) && rows_16_byte_aligned<T>(dx, Vl), a.dloss);
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void cross_entropy_row_max(const CrossEntropyRowMaxArgs& a, Stream stream) {
  switch (a.logits.dtype) {
    case DType::kF32: return row_max_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return row_max_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_row_max", a.logits, "logits");
  }
}

void cross_entropy_sum_exp(const CrossEntropySumExpArgs& a, Stream stream) {
  switch (a.logits.dtype) {
    case DType::kF32: return sum_exp_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return sum_exp_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_sum_exp", a.logits, "logits");
  }
}

void cross_entropy_target_logit(const CrossEntropyTargetLogitArgs& a, Stream stream) {
  switch (a.logits.dtype) {
    case DType::kF32: return target_logit_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return target_logit_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_target_logit", a.logits, "logits");
  }
}

void cross_entropy_forward(const CrossEntropyForwardArgs& a, Stream stream) {
  switch (a.logits.dtype) {
    case DType::kF32: return forward_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return forward_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_forward", a.logits, "logits");
  }
}

void cross_entropy_backward(const CrossEntropyBackwardArgs& a, Stream stream) {
  switch (a.logits.dtype) {
    case DType::kF32: return backward_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return backward_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_backward", a.logits, "logits");
  }
}

void cross_entropy_forward_backward(const CrossEntropyForwardBackwardArgs& a, Stream stream) {
  switch (a.forward.logits.dtype) {
    case DType::kF32: return forward_backward_impl<float>(a, to_cuda_stream(stream));
    case DType::kBF16: return forward_backward_impl<__nv_bfloat16>(a, to_cuda_stream(stream));
    default: unsupported_dtype("cross_entropy_forward_backward", a.forward.logits, "logits");
  }
}

void cross_entropy_loss(const CrossEntropyLossArgs& a, Stream stream) {
  const int64_t N = a.row_max.dim(0);
  if (N == 0) return;
  const cudaStream_t s = to_cuda_stream(stream);
  cross_entropy_loss_per_row<<<element_blocks(N), kElementThreads, 0, s>>>(
      a.losses.data_as<float>(), a.row_max.data_as<const float>(), a.sum_exp.data_as<const float>(),
      a.target_logit.data_as<const float>(), a.targets.data_as<const int32_t>(), N);
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace om::cuda
