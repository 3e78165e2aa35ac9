// CUDA vocab-parallel token embedding (kernels/embedding.h).
// Forward (bf16 or f32 weight and out): embedding_forward_row_copy, one block per token row,
// copies the row's bytes (16-byte units when the rows allow it) or writes zero bits for an id
// outside this shard. Bit-identical to the reference: nothing is computed.
// Backward (dout bf16 or f32, dweight the f32 gradient buffer): dweight[r] += sum of the dout rows
// whose id maps to shard row r, summed in increasing n in double and rounded once, the CPU
// reference's arithmetic and order, so the result is bit-identical to it (and deterministic):
//   1. embedding_sort_keys: key[n] = the shard row of ids[n], or Vl for an id outside the shard.
//   2. cub::DeviceRadixSort::SortPairs of (key, n) over ceil(log2(Vl + 1)) bits. CUB's radix sort
//      is stable and deterministic, so each row's tokens end up contiguous and in increasing n.
//   3. embedding_segment_ends: seg_end[r] = one past the last sorted position of row r (written for
//      the rows present only; no other entry is ever read).
//   4. embedding_backward_segment_sum: blocks stride over sorted positions; at the first position
//      of a row's segment, each thread owns one column and adds the segment's dout rows in order.
// Why sort instead of one block per vocabulary row scanning all ids: that costs O(Vl * N) id reads
// (32000 x 16384 = 5e8 for a 32k vocabulary and a 64 x 256 batch, ~2 GB of L2 traffic), while the
// sort is O(N) per pass and the sum reads each dout row once. No float atomics anywhere. The cost
// that remains is the longest segment (the most frequent token): its L rows are summed serially by
// one block per column tile with 8 loads in flight, about L/8 global-load latencies (estimated, not
// yet measured: L = 700, a token that is 4% of a 16384-token batch, ~45 us next to a ~30 ms step);
// splitting long segments into fixed row chunks with partials summed in chunk order would shorten it.
// Scratch (keys, rows, seg_end, CUB temp) is one per-call Buffer, freed after a stream
// synchronization, as in kernels/cuda/rmsnorm.cu until ExecContext carries a workspace.
// Arguments were validated by kernels/embedding.cc.
#include <cub/cub.cuh>

#include <cstdint>

#include "core/buffer.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/embedding.h"

namespace om::cuda {
namespace {

constexpr int kForwardThreads = 128;
constexpr int kKeyThreads = 256;
constexpr int kSumThreads = 256;             // columns per block of the segment sum
constexpr int64_t kSumBlocksPerTile = 1024;  // blocks striding over the sorted positions
constexpr int64_t kMaxGridY = 65535;

// Shard row of `id`, or Vl (sorts after every row) when the id belongs to another shard or to none.
__device__ __forceinline__ uint32_t shard_key(int32_t id, int64_t vocab_start, int64_t Vl) {
  const int64_t r = static_cast<int64_t>(id) - vocab_start;
  return static_cast<uint32_t>(r >= 0 && r < Vl ? r : Vl);
}

// U is the copy unit: uint4 (16 bytes) or the element's own bits; a row is `units` of them.
template <typename U>
__global__ void __launch_bounds__(kForwardThreads)
    embedding_forward_row_copy(U* out, const int32_t* ids, const U* weight, int64_t vocab_start, int64_t Vl,
                               int64_t units) {
  const int64_t n = blockIdx.x;
  const uint32_t key = shard_key(ids[n], vocab_start, Vl);
  U* y = out + n * units;
  if (key < Vl) {
    const U* w = weight + static_cast<int64_t>(key) * units;
    for (int64_t u = threadIdx.x; u < units; u += kForwardThreads) y[u] = w[u];
  } else {
    for (int64_t u = threadIdx.x; u < units; u += kForwardThreads) y[u] = U{};  // zero bits = +0.0
  }
}

__global__ void __launch_bounds__(kKeyThreads)
    embedding_sort_keys(uint32_t* keys, int32_t* rows, const int32_t* ids, int64_t vocab_start, int64_t Vl,
                        int64_t N) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kKeyThreads + threadIdx.x;
  if (n >= N) return;
  keys[n] = shard_key(ids[n], vocab_start, Vl);
  rows[n] = static_cast<int32_t>(n);
}

// Position k closes the segment of keys[k] when the next key differs (or k is the last position).
__global__ void __launch_bounds__(kKeyThreads)
    embedding_segment_ends(int32_t* seg_end, const uint32_t* keys, int64_t Vl, int64_t N) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kKeyThreads + threadIdx.x;
  if (k >= N) return;
  const uint32_t key = keys[k];
  if (key < Vl && (k + 1 == N || keys[k + 1] != key)) seg_end[key] = static_cast<int32_t>(k + 1);
}

// Block (x, y) owns columns [y * kSumThreads, (y + 1) * kSumThreads) and the sorted positions
// k = x, x + gridDim.x, ...; only a segment's first position does work, so each dweight element is
// written by exactly one thread, once.
template <typename T>
__global__ void __launch_bounds__(kSumThreads)
    embedding_backward_segment_sum(float* dweight, const T* __restrict__ dout, const uint32_t* keys,
                                   const int32_t* rows, const int32_t* seg_end, int64_t Vl, int64_t N, int64_t C) {
  __shared__ int32_t rows_s[kSumThreads];  // a chunk of the segment's token rows
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kSumThreads + threadIdx.x;
  for (int64_t k = blockIdx.x; k < N; k += gridDim.x) {
    // k, key and end are the same for the whole block, so the branches and barriers are uniform.
    const uint32_t key = keys[k];
    if (key >= Vl || (k > 0 && keys[k - 1] == key)) continue;
    const int64_t end = seg_end[key];
    double acc = 0.0;
    for (int64_t j0 = k; j0 < end; j0 += kSumThreads) {
      const int m = static_cast<int>(end - j0 < kSumThreads ? end - j0 : kSumThreads);
      __syncthreads();  // the previous chunk's readers are done with rows_s
      if (static_cast<int>(threadIdx.x) < m) rows_s[threadIdx.x] = rows[j0 + threadIdx.x];
      __syncthreads();
      if (c < C) {
        // In order (n increasing), as the reference; unrolling lets the 8 loads be in flight at once.
#pragma unroll 8
        for (int q = 0; q < m; ++q) acc += static_cast<double>(load_f32(dout + static_cast<int64_t>(rows_s[q]) * C + c));
      }
    }
    if (c < C) {
      float* dw = dweight + static_cast<int64_t>(key) * C + c;
      *dw = __double2float_rn(static_cast<double>(*dw) + acc);
    }
  }
}

template <typename U>
void launch_row_copy(void* out, const int32_t* ids, const void* weight, int64_t vocab_start, int64_t N, int64_t Vl,
                     int64_t row_bytes, cudaStream_t s) {
  embedding_forward_row_copy<U><<<static_cast<unsigned>(N), kForwardThreads, 0, s>>>(
      static_cast<U*>(out), ids, static_cast<const U*>(weight), vocab_start, Vl,
      row_bytes / static_cast<int64_t>(sizeof(U)));
  OM_CUDA_CHECK_KERNEL(s);
}

// Byte offset of a region of `bytes` carved after `*used`, rounded up to 256 (CUB's alignment).
size_t carve(size_t* used, size_t bytes) {
  const size_t at = (*used + 255) / 256 * 256;
  *used = at + bytes;
  return at;
}

template <typename T>
void backward_impl(const EmbeddingBackwardArgs& a, Stream stream) {
  constexpr const char* op = "embedding_backward";
  const int64_t N = a.ids.dim(0), Vl = a.dweight.dim(0), C = a.dweight.dim(1);
  if (N == 0 || Vl == 0 || C == 0) return;  // dweight += 0
  OM_CHECK(N < (int64_t{1} << 31) && Vl < (int64_t{1} << 31) && ceil_div(C, kSumThreads) <= kMaxGridY,
           "%s (cuda): N=%ld, Vl=%ld, C=%ld exceed the kernel's index ranges", op, static_cast<long>(N),
           static_cast<long>(Vl), static_cast<long>(C));
  const cudaStream_t s = to_cuda_stream(stream);
  const int n_items = static_cast<int>(N);
  int end_bit = 1;  // keys lie in [0, Vl]
  while (end_bit < 32 && (int64_t{1} << end_bit) <= Vl) ++end_bit;

  size_t cub_bytes = 0;
  OM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, cub_bytes, static_cast<const uint32_t*>(nullptr),
                                                static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                static_cast<int32_t*>(nullptr), n_items, 0, end_bit, s));
  size_t used = 0;
  const size_t n_bytes = static_cast<size_t>(N) * sizeof(int32_t);  // keys (u32) and rows (i32) alike
  const size_t keys_in = carve(&used, n_bytes), keys_out = carve(&used, n_bytes);
  const size_t rows_in = carve(&used, n_bytes), rows_out = carve(&used, n_bytes);
  const size_t seg_end = carve(&used, static_cast<size_t>(Vl) * sizeof(int32_t)), cub_temp = carve(&used, cub_bytes);
  // Stream-ordered (Buffer::AllocateScratch): freed after the kernels below on `s`, no host wait.
  Buffer scratch = Buffer::AllocateScratch(a.dweight.device, stream, used, "embedding_backward.sort_scratch");
  char* base = static_cast<char*>(scratch.data());
  auto at = [base](size_t offset) { return static_cast<void*>(base + offset); };

  embedding_sort_keys<<<static_cast<unsigned>(ceil_div(N, kKeyThreads)), kKeyThreads, 0, s>>>(
      static_cast<uint32_t*>(at(keys_in)), static_cast<int32_t*>(at(rows_in)), a.ids.data_as<const int32_t>(),
      a.vocab_start, Vl, N);
  OM_CUDA_CHECK_KERNEL(s);
  OM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(at(cub_temp), cub_bytes, static_cast<const uint32_t*>(at(keys_in)),
                                                static_cast<uint32_t*>(at(keys_out)),
                                                static_cast<const int32_t*>(at(rows_in)),
                                                static_cast<int32_t*>(at(rows_out)), n_items, 0, end_bit, s));
  OM_CUDA_CHECK_KERNEL(s);
  embedding_segment_ends<<<static_cast<unsigned>(ceil_div(N, kKeyThreads)), kKeyThreads, 0, s>>>(
      static_cast<int32_t*>(at(seg_end)), static_cast<const uint32_t*>(at(keys_out)), Vl, N);
  OM_CUDA_CHECK_KERNEL(s);
  const dim3 grid(static_cast<unsigned>(N < kSumBlocksPerTile ? N : kSumBlocksPerTile),
                  static_cast<unsigned>(ceil_div(C, kSumThreads)));
  embedding_backward_segment_sum<T><<<grid, kSumThreads, 0, s>>>(
      a.dweight.data_as<float>(), a.dout.data_as<const T>(), static_cast<const uint32_t*>(at(keys_out)),
      static_cast<const int32_t*>(at(rows_out)), static_cast<const int32_t*>(at(seg_end)), Vl, N, C);
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void embedding_forward(const EmbeddingForwardArgs& a, Stream stream) {
  const int64_t N = a.ids.dim(0), Vl = a.weight.dim(0), C = a.weight.dim(1);
  if (a.weight.dtype != DType::kF32 && a.weight.dtype != DType::kBF16) unsupported_dtype("embedding_forward", a.weight, "tensors");
  if (N == 0 || C == 0) return;  // a zero-sized grid is a launch error
  OM_CHECK(N < (int64_t{1} << 31), "embedding_forward (cuda): N=%ld rows exceed the launch grid",
           static_cast<long>(N));
  const cudaStream_t s = to_cuda_stream(stream);
  const int64_t row_bytes = C * static_cast<int64_t>(dtype_size(a.weight.dtype));
  const int32_t* ids = a.ids.data_as<const int32_t>();
  if (row_bytes % 16 == 0 && aligned16(a.out.data) && aligned16(a.weight.data)) {
    launch_row_copy<uint4>(a.out.data, ids, a.weight.data, a.vocab_start, N, Vl, row_bytes, s);
  } else if (a.weight.dtype == DType::kF32) {
    launch_row_copy<uint32_t>(a.out.data, ids, a.weight.data, a.vocab_start, N, Vl, row_bytes, s);
  } else {
    launch_row_copy<uint16_t>(a.out.data, ids, a.weight.data, a.vocab_start, N, Vl, row_bytes, s);
  }
}

void embedding_backward(const EmbeddingBackwardArgs& a, Stream stream) {
  switch (a.dout.dtype) {
    case DType::kF32: return backward_impl<float>(a, stream);
    case DType::kBF16: return backward_impl<__nv_bfloat16>(a, stream);
    default: unsupported_dtype("embedding_backward", a.dout, "tensors");
  }
}

}  // namespace om::cuda
