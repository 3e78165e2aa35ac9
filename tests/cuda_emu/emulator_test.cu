// The CUDA emulator itself (cuda_emu/README.md): that it runs kernels with CUDA's semantics where the
// project's cuda tests depend on them (barriers, shuffles, WMMA, PTX mma.sync m16n8k16 and ldmatrix x4 with
// the PTX ISA's lane layouts and kernels/cuda/mma.cuh's fragment loads built on them, cp.async groups,
// work deferred to the host's waits, launch checks), and that it reports the bugs it exists to catch
// (out-of-bounds accesses, host dereferences of device memory, a missing __syncthreads, divergent
// barriers, host pointers passed to a kernel, misaligned WMMA tiles and ldmatrix rows, __trap, a cuBLASLt
// algorithm on less aligned operands), and its counters (host waits, devices), and stream capture into
// CUDA graphs. Built and run only in emulator builds (OM_CUDA_EMULATION).
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mma.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda_emu/emu.h"
#include "kernels/cuda/async_copy.cuh"
#include "kernels/cuda/mma.cuh"

namespace {

// ---- Kernels -------------------------------------------------------------------------------------

__global__ void write_index(float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = static_cast<float>(i);
}

__global__ void read_at(float* out, const float* in, int index) { out[0] = in[index]; }

// Thread t writes smem[t], then reads smem[(t + 1) mod n]: correct only with the barrier between.
__global__ void neighbour_through_shared(float* out, bool with_barrier) {
  __shared__ float smem[64];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  smem[t] = static_cast<float>(t);
  if (with_barrier) __syncthreads();
  out[t] = smem[(t + 1) % n];
}

// Lanes 0-15 wait at __syncthreads while lanes 16-31 wait at __syncwarp: a hang on a GPU.
__global__ void divergent_barriers() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncwarp();
  }
}

// Lanes 16-31 exit; lanes 0-15 then read them with a full-mask shuffle.
__global__ void shuffle_from_exited(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

// Each lane's butterfly sum of the lane indices, and lane 5's value broadcast.
__global__ void shuffles(float* sums, float* broadcast) {
  float v = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  sums[threadIdx.x] = v;
  broadcast[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<float>(threadIdx.x) * 10.0f, 5);
}

__global__ void uses_dynamic_smem(float* out) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x] = 2.0f * static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = dyn[blockDim.x - 1 - threadIdx.x];
}

__global__ void traps() { __trap(); }

// c (16 × 16 f32, row-major) = a (16 × 16 bf16, row-major) · bᵀ where b is stored row-major, so bᵀ is
// b read column-major: the pattern of attention_mma.cu's Q·Kᵀ.
__global__ void wmma_a_bt(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int offset) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

// d (16 × 8 f32) = a (16 × 16 bf16) · b (16 × 8 bf16), all row-major, each lane's fragments gathered by the
// PTX ISA's table for mma.m16n8k16 (g = lane / 4, t = lane % 4), written out here independently of
// kernels/cuda/mma.cuh's loaders.
__global__ void mma_documented(float* d, const __nv_bfloat16* a, const __nv_bfloat16* b) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto two = [](__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) | (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
  };
  const uint32_t fa[4] = {two(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
                          two(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
                          two(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
                          two(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
  const uint32_t fb[2] = {two(b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]),
                          two(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g])};
  float acc[4] = {1.0f, 1.0f, 1.0f, 1.0f};  // c = 1 everywhere: d = a·b + 1
  om::cuda::mma_bf16(acc, fa, fb);
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// ldmatrix x4 from a 32 × 24 tile of 16-bit elements in shared memory: lane l
// points at row l of the tile (row l % 8 of matrix l / 8) plus `col`; out[l·4 + i] = the lane's register i.
__global__ void ldmatrix_rows(uint32_t* out, const __nv_bfloat16* tile, int col, bool trans) {
  __shared__ __align__(16) __nv_bfloat16 s[32 * 24];
  const int lane = static_cast<int>(threadIdx.x);
  for (int e = lane; e < 32 * 24; e += 32) s[e] = tile[e];
  __syncwarp();
  uint32_t r[4];
  if (trans) {
    om::cuda::ldmatrix_x4<true>(r, s + lane * 24 + col);
  } else {
    om::cuda::ldmatrix_x4<false>(r, s + lane * 24 + col);
  }
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

// mma.cuh's loaders on shared-memory tiles with a padded row stride (ld = 40): s = a · kᵀ (a and k 16 × 32,
// s 16 × 16 as two 16 × 8 accumulators, each over two 16-deep chunks), then o = bf16(s) · v (v 16 × 16,
// o 16 × 16), as attention's S = Q·Kᵀ and O = P·V. s and o come back row-major (16 × 16 f32).
__global__ void mma_chain(float* s_out, float* o_out, const __nv_bfloat16* a, const __nv_bfloat16* k,
                          const __nv_bfloat16* v) {
  using namespace om::cuda;
  constexpr int ld = 40;
  __shared__ __align__(16) __nv_bfloat16 sa[16 * ld], sk[16 * ld], sv[16 * ld];
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  for (int e = lane; e < 16 * ld; e += 32) {
    sa[e] = a[e];
    sk[e] = k[e];
    sv[e] = v[e];
  }
  __syncwarp();
  MmaA fa[2];
  mma_load_a(fa[0], sa, ld, 0, 0, lane);
  mma_load_a(fa[1], sa, ld, 0, 16, lane);
  MmaC s[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (int n = 0; n < 2; ++n) {
    MmaB b0, b1;
    mma_load_b_t2(b0, b1, sk, ld, 8 * n, 0, lane);
    mma_bf16(s[n], fa[0], b0);
    mma_bf16(s[n], fa[1], b1);
  }
  MmaA p;
  mma_a_from_acc(p, s[0], s[1]);
  MmaC o[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  MmaB b0, b1;
  mma_load_b2(b0, b1, sv, ld, 0, 0, lane);
  mma_bf16(o[0], p, b0);
  mma_bf16(o[1], p, b1);
  for (int n = 0; n < 2; ++n) {
    for (int e = 0; e < 4; ++e) {
      const int r = g + 8 * (e / 2), c = 8 * n + 2 * t + e % 2;
      s_out[r * 16 + c] = s[n][e];
      o_out[r * 16 + c] = o[n][e];
    }
  }
}

// cp.async groups (kernels/cuda/async_copy.cuh) into dynamic shared memory (NaN bytes at the block's
// start): thread 0 commits group 0 = src[0..3] into s[0..3], group 1 = src[4..7] into s[4..7] and 16 zero
// bytes into s[8..11], and records s between its waits.
__global__ void cp_async_groups(uint32_t* out, const uint32_t* src) {
  extern __shared__ __align__(16) uint32_t s[];
  if (threadIdx.x != 0) return;
  om::cuda::cp_async_16(s, src, true);
  om::cuda::cp_async_commit();
  om::cuda::cp_async_16(s + 4, src + 4, true);
  om::cuda::cp_async_16(s + 8, src, false);
  om::cuda::cp_async_commit();
  out[0] = s[0];  // no wait yet
  om::cuda::cp_async_wait<1>();
  out[1] = s[0];  // group 0 waited for
  out[2] = s[4];  // group 1 not
  om::cuda::cp_async_wait<0>();
  out[3] = s[4];
  out[4] = s[8];
}

__global__ void cp_async_misaligned(const uint32_t* src) {
  extern __shared__ __align__(16) uint32_t s[];
  om::cuda::cp_async_16(s + 2, src, true);  // 8 bytes past a 16-byte boundary
  om::cuda::cp_async_commit();
  om::cuda::cp_async_wait<0>();
}

// ---- Helpers -------------------------------------------------------------------------------------

template <typename T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

std::vector<float> download(const float* d, size_t n) {
  std::vector<float> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

// ---- Semantics -----------------------------------------------------------------------------------

TEST(CudaEmulator, RunsEveryThreadOfEveryBlock) {
  constexpr int n = 1000;
  float* d = device_alloc<float>(n);
  write_index<<<(n + 127) / 128, 128>>>(d, n);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> h = download(d, n);
  for (int i = 0; i < n; ++i) ASSERT_EQ(h[static_cast<size_t>(i)], static_cast<float>(i)) << i;
  cudaFree(d);
}

TEST(CudaEmulator, WorkRunsWhenTheHostWaitsNotWhenItIsQueued) {
  float* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(reinterpret_cast<void**>(&pinned), 4 * sizeof(float)), cudaSuccess);
  std::memset(pinned, 0, 4 * sizeof(float));
  write_index<<<1, 4>>>(pinned, 4);
  // Not yet: a host read before the wait sees the old bytes (on a GPU it may see either).
  EXPECT_EQ(pinned[3], 0.0f);
  ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  EXPECT_EQ(pinned[3], 3.0f);
  cudaFreeHost(pinned);
}

// om_emu::host_waits (what tests/support/host_waits.h reads): a wait with work issued since the previous
// one counts once, a second wait with nothing issued in between does not, whichever call waits.
TEST(CudaEmulator, HostWaitsCountWaitsForIssuedWorkOnly) {
  float* d = device_alloc<float>(4);
  float h[4] = {};
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const uint64_t start = om_emu::host_waits();
  write_index<<<1, 4>>>(d, 4);
  ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // nothing issued since: not a stall
  EXPECT_EQ(om_emu::host_waits() - start, 1u);
  write_index<<<1, 4>>>(d, 4);
  ASSERT_EQ(cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, nullptr), cudaSuccess);  // into pageable
  EXPECT_EQ(om_emu::host_waits() - start, 2u);
  EXPECT_EQ(h[3], 3.0f);
  write_index<<<1, 4>>>(d, 4);
  ASSERT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(om_emu::host_waits() - start, 3u);
  cudaFree(d);  // nothing issued since the copy
  EXPECT_EQ(om_emu::host_waits() - start, 3u);
}

__global__ void add_one(float* x, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.0f;
}

// Stream capture records instead of running; each launch of the graph runs the recorded work again, in
// its order, with the arguments it was captured with; the graph's stream-ordered allocations keep one
// address for every launch and live as long as the graph.
TEST(CudaEmulator, CapturedWorkRunsAtEveryGraphLaunchOnly) {
  float* d = device_alloc<float>(4);
  ASSERT_EQ(cudaMemset(d, 0, 4 * sizeof(float)), cudaSuccess);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ASSERT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  void* scratch = nullptr;
  ASSERT_EQ(cudaMallocAsync(&scratch, 4 * sizeof(float), s), cudaSuccess);
  write_index<<<1, 4, 0, s>>>(static_cast<float*>(scratch), 4);
  ASSERT_EQ(cudaMemcpyAsync(d, scratch, 4 * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  add_one<<<1, 4, 0, s>>>(d, 4);
  ASSERT_EQ(cudaFreeAsync(scratch, s), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  EXPECT_EQ(download(d, 4), std::vector<float>(4, 0.0f)) << "captured work ran at the capture";
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the executable graph keeps the work and the scratch
  for (int launch = 0; launch < 2; ++launch) {
    add_one<<<1, 4, 0, s>>>(d, 4);  // between launches, on the same queue: overwritten by the copy
    ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);  // s is non-blocking: a legacy-stream copy does not wait for it
    EXPECT_EQ(download(d, 4), (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f})) << "launch " << launch;
  }
  ASSERT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
  cudaFree(d);
}

// A non-blocking stream is not ordered with the legacy default stream, so its work is held back until
// something waits for it (the latest schedule a GPU may pick): a legacy-stream copy reads the old bytes,
// an event wait, a stream or device synchronization releases it, in its order.
TEST(CudaEmulator, NonBlockingStreamWorkRunsOnlyOnceSomethingWaitsForIt) {
  const bool was_early = om_emu::set_early_streams(false);
  float* d = device_alloc<float>(4);
  ASSERT_EQ(cudaMemset(d, 0, 4 * sizeof(float)), cudaSuccess);
  cudaStream_t late = nullptr, other = nullptr;
  cudaEvent_t e = nullptr, f = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&late, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&f, cudaEventDisableTiming), cudaSuccess);
  write_index<<<1, 4, 0, late>>>(d, 4);
  ASSERT_EQ(cudaEventRecord(e, late), cudaSuccess);
  add_one<<<1, 4, 0, late>>>(d, 4);  // after the event: not released by a wait for it
  EXPECT_EQ(download(d, 4), std::vector<float>(4, 0.0f)) << "the legacy stream's copy does not wait for it";
  ASSERT_EQ(cudaStreamWaitEvent(other, e, 0), cudaSuccess);  // moves the write behind `other`'s work
  add_one<<<1, 4, 0, other>>>(d, 4);
  ASSERT_EQ(cudaEventRecord(f, other), cudaSuccess);
  EXPECT_EQ(download(d, 4), std::vector<float>(4, 0.0f)) << "still held, on `other` now";
  ASSERT_EQ(cudaStreamWaitEvent(nullptr, f, 0), cudaSuccess);  // the legacy stream joins `other`
  EXPECT_EQ(download(d, 4), (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f})) << "the write, then other's add";
  ASSERT_EQ(cudaStreamSynchronize(late), cudaSuccess);  // the add after the event
  EXPECT_EQ(download(d, 4), (std::vector<float>{2.0f, 3.0f, 4.0f, 5.0f}));
  add_one<<<1, 4, 0, other>>>(d, 4);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // every stream
  EXPECT_EQ(download(d, 4), (std::vector<float>{3.0f, 4.0f, 5.0f, 6.0f}));
  add_one<<<1, 4, 0, late>>>(d, 4);
  ASSERT_EQ(cudaStreamDestroy(late), cudaSuccess);  // its work still runs
  ASSERT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  EXPECT_EQ(download(d, 4), (std::vector<float>{4.0f, 5.0f, 6.0f, 7.0f}));
  cudaStreamDestroy(other);
  cudaEventDestroy(e);
  cudaEventDestroy(f);
  cudaFree(d);
  om_emu::set_early_streams(was_early);
}

// The opposite schedule (OM_EMU_STREAM_ORDER=early): a non-blocking stream's work runs as early as its
// waits allow, ahead of legacy-stream work issued before it that it did not wait for; with the wait it
// runs after that work.
TEST(CudaEmulator, EarlyOrderRunsNonBlockingWorkBeforeWhatItDidNotWaitFor) {
  const bool was_early = om_emu::set_early_streams(true);
  float* d = device_alloc<float>(4);
  ASSERT_EQ(cudaMemset(d, 0, 4 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  cudaStream_t early = nullptr;
  cudaEvent_t e = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&early, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
  for (bool waits : {false, true}) {
    write_index<<<1, 4>>>(d, 4);  // legacy stream: 0 1 2 3
    if (waits) {
      ASSERT_EQ(cudaEventRecord(e, nullptr), cudaSuccess);
      ASSERT_EQ(cudaStreamWaitEvent(early, e, 0), cudaSuccess);
    }
    add_one<<<1, 4, 0, early>>>(d, 4);
    ASSERT_EQ(cudaStreamSynchronize(early), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    // Without the wait the add ran first and the write overwrote it; with it, after the write.
    EXPECT_EQ(download(d, 4), waits ? (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f})
                                    : (std::vector<float>{0.0f, 1.0f, 2.0f, 3.0f}))
        << (waits ? "with" : "without") << " the wait";
  }
  cudaStreamDestroy(early);
  cudaEventDestroy(e);
  cudaFree(d);
  om_emu::set_early_streams(was_early);
}

// What a GPU refuses inside a capture is refused here: capturing the legacy default stream, and a call
// that waits for the device (it also invalidates the capture, so cudaStreamEndCapture fails).
TEST(CudaEmulator, AWaitInsideACaptureInvalidatesIt) {
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal), cudaErrorStreamCaptureUnsupported);
  float* d = device_alloc<float>(4);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  write_index<<<1, 4, 0, s>>>(d, 4);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  float h[4] = {};
  EXPECT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaErrorStreamCaptureUnsupported);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ASSERT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);  // capture over: waits are allowed again
  cudaFree(d);
}

// A fork (a second stream waits for an event recorded on the capturing one) takes part in the capture,
// and must be joined back (the origin waits for an event recorded on it after its work): what NcclComm
// does around each collective while Llama captures. Unjoined, the capture fails as on a GPU.
TEST(CudaEmulator, AForkedStreamIsCapturedAndMustBeJoined) {
  float* d = device_alloc<float>(4);
  ASSERT_EQ(cudaMemset(d, 0, 4 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the graph's non-blocking stream does not wait for it
  cudaStream_t origin = nullptr, side = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&origin, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreate(&side), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&join, cudaEventDisableTiming), cudaSuccess);
  for (bool joined : {true, false}) {
    ASSERT_EQ(cudaStreamBeginCapture(origin, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    add_one<<<1, 4, 0, origin>>>(d, 4);
    ASSERT_EQ(cudaEventRecord(fork, origin), cudaSuccess);
    ASSERT_EQ(cudaStreamWaitEvent(side, fork, 0), cudaSuccess);
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    ASSERT_EQ(cudaStreamIsCapturing(side, &status), cudaSuccess);
    EXPECT_EQ(status, cudaStreamCaptureStatusActive);
    add_one<<<1, 4, 0, side>>>(d, 4);
    ASSERT_EQ(cudaEventRecord(join, side), cudaSuccess);
    if (joined) {
      ASSERT_EQ(cudaStreamWaitEvent(origin, join, 0), cudaSuccess);
    }
    cudaGraph_t graph = nullptr;
    if (!joined) {
      EXPECT_EQ(cudaStreamEndCapture(origin, &graph), cudaErrorStreamCaptureUnjoined);
      EXPECT_EQ(graph, nullptr);
      continue;
    }
    ASSERT_EQ(cudaStreamEndCapture(origin, &graph), cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, origin), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(origin), cudaSuccess);  // non-blocking: the copy below would not wait
    EXPECT_EQ(download(d, 4), std::vector<float>(4, 2.0f)) << "both streams' work in the graph";
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  // A capturing stream may not wait for an event recorded outside the capture.
  ASSERT_EQ(cudaEventRecord(fork, side), cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(origin, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamWaitEvent(origin, fork, 0), cudaErrorStreamCaptureIsolation);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(origin, &graph), cudaErrorStreamCaptureInvalidated);
  cudaEventDestroy(fork);
  cudaEventDestroy(join);
  cudaFree(d);
}

// Work issued on a stream outside the capture while one is being captured would run once on a GPU (or be
// refused, on the legacy default stream), not at each launch: the emulator reports it.
void launch_outside_the_capture() {
  float* d = device_alloc<float>(4);
  cudaStream_t s = nullptr;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  write_index<<<1, 4>>>(d, 4);  // the legacy default stream
}

TEST(CudaEmulatorDeathTest, WorkOutsideTheCapturedStreamsIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(launch_outside_the_capture(), "write_index issued on stream .* takes no part in the capture");
}

// OM_EMU_DEVICES: the device count a job sees (1 unless set; ctest sets it for the multi-rank tests).
TEST(CudaEmulator, DeviceCountAndCurrentDevice) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  const char* env = std::getenv("OM_EMU_DEVICES");
  EXPECT_EQ(count, env != nullptr ? std::atoi(env) : 1);
  EXPECT_EQ(cudaSetDevice(count), cudaErrorInvalidDevice);
  ASSERT_EQ(cudaSetDevice(count - 1), cudaSuccess);
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, count - 1);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

TEST(CudaEmulator, FreshDeviceMemoryIsNanNotZero) {
  float* d = device_alloc<float>(8);
  const std::vector<float> h = download(d, 8);
  for (float v : h) EXPECT_TRUE(std::isnan(v));
  cudaFree(d);
}

TEST(CudaEmulator, SyncthreadsOrdersSharedMemoryAndItsAbsenceShows) {
  constexpr int n = 64;
  float* d = device_alloc<float>(n);
  neighbour_through_shared<<<1, n>>>(d, true);
  std::vector<float> h = download(d, n);
  for (int t = 0; t < n; ++t) ASSERT_EQ(h[static_cast<size_t>(t)], static_cast<float>((t + 1) % n)) << t;
  // Without the barrier a reader runs before its writer (thread 0 before 1; or, with
  // OM_EMU_THREAD_ORDER=reverse, thread 63 before 0) and reads the block's fresh NaN bytes.
  neighbour_through_shared<<<1, n>>>(d, false);
  h = download(d, n);
  int stale = 0;
  for (int t = 0; t < n; ++t) stale += std::isnan(h[static_cast<size_t>(t)]) ? 1 : 0;
  EXPECT_GE(stale, 1);
  cudaFree(d);
}

TEST(CudaEmulator, ShufflesExchangeWithinTheWarp) {
  float* sums = device_alloc<float>(32);
  float* bcast = device_alloc<float>(32);
  shuffles<<<1, 32>>>(sums, bcast);
  const std::vector<float> s = download(sums, 32), b = download(bcast, 32);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(s[static_cast<size_t>(i)], 496.0f) << i;  // 0 + 1 + ... + 31
    EXPECT_EQ(b[static_cast<size_t>(i)], 50.0f) << i;
  }
  cudaFree(sums);
  cudaFree(bcast);
}

TEST(CudaEmulator, WmmaComputesTheDocumentedProduct) {
  std::vector<__nv_bfloat16> a(16 * 16 + 16), b(16 * 16);
  for (int i = 0; i < 16 * 16 + 16; ++i) a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>(i % 7) - 3.0f);
  for (int i = 0; i < 16 * 16; ++i) b[static_cast<size_t>(i)] = __float2bfloat16_rn(0.5f * static_cast<float>(i % 5));
  __nv_bfloat16* da = device_alloc<__nv_bfloat16>(a.size());
  __nv_bfloat16* db = device_alloc<__nv_bfloat16>(b.size());
  float* dc = device_alloc<float>(256);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  wmma_a_bt<<<1, 32>>>(dc, da, db, 0);
  const std::vector<float> c = download(dc, 256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want = 0.0;
      for (int k = 0; k < 16; ++k) {
        want += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * 16 + k)])) *
                __bfloat162float(b[static_cast<size_t>(j * 16 + k)]);
      }
      ASSERT_EQ(c[static_cast<size_t>(i * 16 + j)], static_cast<float>(want)) << i << "," << j;  // small integers: exact
    }
  }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
}

TEST(CudaEmulator, MmaM16n8k16ComputesTheDocumentedProduct) {
  std::vector<__nv_bfloat16> a(16 * 16), b(16 * 8);
  for (int i = 0; i < 16 * 16; ++i) {
    a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 7) % 11) - 5.0f);
  }
  for (int i = 0; i < 16 * 8; ++i) {
    b[static_cast<size_t>(i)] = __float2bfloat16_rn(0.5f * static_cast<float>((i * 5) % 9) - 2.0f);
  }
  __nv_bfloat16* da = device_alloc<__nv_bfloat16>(a.size());
  __nv_bfloat16* db = device_alloc<__nv_bfloat16>(b.size());
  float* dd = device_alloc<float>(16 * 8);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  mma_documented<<<1, 32>>>(dd, da, db);
  const std::vector<float> d = download(dd, 16 * 8);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      double want = 1.0;
      for (int k = 0; k < 16; ++k) {
        want += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * 16 + k)])) *
                __bfloat162float(b[static_cast<size_t>(k * 8 + j)]);
      }
      ASSERT_EQ(d[static_cast<size_t>(i * 8 + j)], static_cast<float>(want)) << i << "," << j;  // small: exact
    }
  }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dd);
}

TEST(CudaEmulator, LdmatrixGivesEachLaneItsDocumentedElements) {
  std::vector<__nv_bfloat16> tile(32 * 24);
  // Element (r, c) holds the bit pattern r·24 + c (ldmatrix moves bits; no value is rounded).
  for (int e = 0; e < 32 * 24; ++e) tile[static_cast<size_t>(e)] = __ushort_as_bfloat16(static_cast<unsigned short>(e));
  __nv_bfloat16* dt = device_alloc<__nv_bfloat16>(tile.size());
  uint32_t* dout = device_alloc<uint32_t>(128);
  cudaMemcpy(dt, tile.data(), tile.size() * 2, cudaMemcpyHostToDevice);
  for (const bool trans : {false, true}) {
    for (const int col : {0, 8, 16}) {
      ldmatrix_rows<<<1, 32>>>(dout, dt, col, trans);
      std::vector<uint32_t> out(128);
      ASSERT_EQ(cudaMemcpy(out.data(), dout, 128 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int i = 0; i < 4; ++i) {
          // Matrix i is rows 8i..8i+7 of the tile (each lane pointed at its own row), columns col..col+7.
          const int r_lo = 8 * i + (trans ? 2 * t : g), c_lo = col + (trans ? g : 2 * t);
          const int r_hi = 8 * i + (trans ? 2 * t + 1 : g), c_hi = col + (trans ? g : 2 * t + 1);
          const uint32_t reg = out[static_cast<size_t>(lane * 4 + i)];
          EXPECT_EQ(reg & 0xffffu, static_cast<uint32_t>(r_lo * 24 + c_lo))
              << "trans " << trans << " col " << col << " lane " << lane << " reg " << i;
          EXPECT_EQ(reg >> 16, static_cast<uint32_t>(r_hi * 24 + c_hi))
              << "trans " << trans << " col " << col << " lane " << lane << " reg " << i;
        }
      }
    }
  }
  cudaFree(dt);
  cudaFree(dout);
}

TEST(CudaEmulator, MmaFragmentLoadsChainAProductIntoTheNext) {
  constexpr int ld = 40, n = 16 * ld;
  std::vector<__nv_bfloat16> a(n), k(n), v(n);
  for (int i = 0; i < n; ++i) {
    a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 3) % 7) - 3.0f);
    k[static_cast<size_t>(i)] = __float2bfloat16_rn(0.25f * static_cast<float>((i * 5) % 9) - 1.0f);
    v[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 11) % 5) - 2.0f);
  }
  __nv_bfloat16 *da = device_alloc<__nv_bfloat16>(n), *dk = device_alloc<__nv_bfloat16>(n),
                *dv = device_alloc<__nv_bfloat16>(n);
  float *ds = device_alloc<float>(256), *dout = device_alloc<float>(256);
  cudaMemcpy(da, a.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dk, k.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, v.data(), n * 2, cudaMemcpyHostToDevice);
  mma_chain<<<1, 32>>>(ds, dout, da, dk, dv);
  const std::vector<float> s = download(ds, 256), o = download(dout, 256);
  auto at = [&](const std::vector<__nv_bfloat16>& m, int r, int c) {
    return static_cast<double>(__bfloat162float(m[static_cast<size_t>(r * ld + c)]));
  };
  auto s_ref = [&](int i, int j) {
    double sum = 0.0;
    for (int d = 0; d < 32; ++d) sum += at(a, i, d) * at(k, j, d);
    return sum;
  };
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want_o = 0.0;
      for (int c = 0; c < 16; ++c) {
        want_o += static_cast<double>(__bfloat162float(__float2bfloat16_rn(static_cast<float>(s_ref(i, c))))) *
                  at(v, c, j);
      }
      // s: multiples of 1/4 below 2^7 (so bf16 holds them: the rounding is exact here), o: multiples of 1/4
      // below 2^12; every partial sum is exact in f32, in any order.
      ASSERT_EQ(s[static_cast<size_t>(i * 16 + j)], static_cast<float>(s_ref(i, j))) << i << "," << j;
      ASSERT_EQ(o[static_cast<size_t>(i * 16 + j)], static_cast<float>(want_o)) << i << "," << j;
    }
  }
  for (void* p : {static_cast<void*>(da), static_cast<void*>(dk), static_cast<void*>(dv), static_cast<void*>(ds),
                  static_cast<void*>(dout)}) {
    cudaFree(p);
  }
}

TEST(CudaEmulator, CpAsyncCopiesLandWhenTheirGroupIsWaitedFor) {
  const std::vector<uint32_t> src = {10, 11, 12, 13, 14, 15, 16, 17};
  uint32_t* dsrc = device_alloc<uint32_t>(src.size());
  uint32_t* dout = device_alloc<uint32_t>(5);
  cudaMemcpy(dsrc, src.data(), src.size() * 4, cudaMemcpyHostToDevice);
  cp_async_groups<<<1, 32, 48>>>(dout, dsrc);
  std::vector<uint32_t> out(5);
  ASSERT_EQ(cudaMemcpy(out.data(), dout, 5 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[0], 0xffffffffu);  // before any wait: the old bytes (undefined on a GPU; the emulator's latest)
  EXPECT_EQ(out[1], 10u);
  EXPECT_EQ(out[2], 0xffffffffu);  // wait_group 1 leaves the newest group in flight
  EXPECT_EQ(out[3], 14u);
  EXPECT_EQ(out[4], 0u);  // source size 0: zero-filled
  cudaFree(dsrc);
  cudaFree(dout);
}

TEST(CudaEmulator, DynamicSharedMemoryAboveTheDefaultNeedsTheOptIn) {
  float* d = device_alloc<float>(64);
  const size_t big = 64 * 1024;
  uses_dynamic_smem<<<1, 64, big>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);  // above 48 KiB without the attribute
  ASSERT_EQ(cudaFuncSetAttribute(uses_dynamic_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(big)),
            cudaSuccess);
  uses_dynamic_smem<<<1, 64, big>>>(d);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<float> h = download(d, 64);
  EXPECT_EQ(h[0], 126.0f);
  EXPECT_EQ(h[63], 0.0f);
  cudaFree(d);
}

TEST(CudaEmulator, BadLaunchConfigurationsAreLaunchErrors) {
  float* d = device_alloc<float>(4);
  write_index<<<1, 2048>>>(d, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  write_index<<<0, 32>>>(d, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  write_index<<<dim3(1, 70000), 32>>>(d, 4);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read and cleared
  cudaFree(d);
}

// ---- Bugs it reports -----------------------------------------------------------------------------

TEST(CudaEmulatorDeathTest, OutOfBoundsReadNamesTheKernelAndThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* in = device_alloc<float>(64);  // 256 bytes: the allocation ends at its guard page
        float* out = device_alloc<float>(1);
        read_at<<<1, 1>>>(out, in, 64);
        cudaDeviceSynchronize();
      },
      "access outside the allocation.*kernel read_at, block \\(0, 0, 0\\), thread \\(0, 0, 0\\)");
}

TEST(CudaEmulatorDeathTest, HostDereferenceOfDeviceMemoryIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(4);
        volatile float x = d[1];
        (void)x;
      },
      "host code dereferenced device memory");
}

TEST(CudaEmulatorDeathTest, HostPointerPassedToAKernelIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        std::vector<float> host(4);
        write_index<<<1, 4>>>(host.data(), 4);
      },
      "kernel write_index: argument 0 .* is not device memory");
}

TEST(CudaEmulatorDeathTest, DivergentBarriersAreReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        divergent_barriers<<<1, 32>>>();
        cudaDeviceSynchronize();
      },
      "kernel divergent_barriers.*wait at different barriers");
}

TEST(CudaEmulatorDeathTest, ShuffleFromAnExitedLaneIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(32);
        shuffle_from_exited<<<1, 32>>>(d);
        cudaDeviceSynchronize();
      },
      "reads lane (16|31) in its shuffle #0, which that lane did not make");
}

TEST(CudaEmulatorDeathTest, MisalignedLdmatrixRowIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        __nv_bfloat16* tile = device_alloc<__nv_bfloat16>(32 * 24);
        uint32_t* out = device_alloc<uint32_t>(128);
        ldmatrix_rows<<<1, 32>>>(out, tile, 4, false);  // rows start 8 bytes past a 16-byte boundary
        cudaDeviceSynchronize();
      },
      "not 16-byte aligned");
}

TEST(CudaEmulatorDeathTest, MisalignedCpAsyncIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        uint32_t* src = device_alloc<uint32_t>(4);
        cp_async_misaligned<<<1, 32, 64>>>(src);
        cudaDeviceSynchronize();
      },
      "must be 16-byte aligned");
}

TEST(CudaEmulatorDeathTest, MisalignedWmmaTileIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        __nv_bfloat16* a = device_alloc<__nv_bfloat16>(16 * 16 + 16);
        __nv_bfloat16* b = device_alloc<__nv_bfloat16>(16 * 16);
        float* c = device_alloc<float>(256);
        wmma_a_bt<<<1, 32>>>(c, a, b, 8);  // 16 bytes past a 32-byte boundary
        cudaDeviceSynchronize();
      },
      "32-byte-aligned pointer");
}

// cuBLASLt: an algorithm from the heuristic, promised 256-byte-aligned operands (the default preference),
// runs on aligned operands, then is run on an A two bytes off that alignment.
void run_lt_algorithm_on_misaligned_a() {
  constexpr int n = 16;  // column-major n×n f32 operands, D = A·B
  float* a = device_alloc<float>(n * n + 1);
  float* b = device_alloc<float>(n * n);
  float* d = device_alloc<float>(n * n);
  cublasLtHandle_t h = nullptr;
  cublasLtCreate(&h);
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayout_t l = nullptr;
  cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, n, n, n);
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulHeuristicResult_t r{};
  int returned = 0;
  if (cublasLtMatmulAlgoGetHeuristic(h, op, l, l, l, l, pref, 1, &r, &returned) != CUBLAS_STATUS_SUCCESS ||
      returned != 1) {
    std::exit(3);
  }
  const float one = 1.0f;
  const float zero = 0.0f;
  if (cublasLtMatmul(h, op, &one, a, l, b, l, &zero, d, l, d, l, &r.algo, nullptr, 0, nullptr) != CUBLAS_STATUS_SUCCESS) {
    std::exit(4);
  }
  cublasLtMatmul(h, op, &one, reinterpret_cast<char*>(a) + 2, l, b, l, &zero, d, l, d, l, &r.algo, nullptr, 0, nullptr);
}

TEST(CudaEmulatorDeathTest, CublasLtAlgorithmOnLessAlignedOperandsIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(run_lt_algorithm_on_misaligned_a(),
               "operand A at .* is 2-byte aligned; its algorithm was chosen for 256-byte alignment");
}

TEST(CudaEmulatorDeathTest, TrapIsAStickyLaunchFailure) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        traps<<<1, 32>>>();
        const cudaError_t sync = cudaDeviceSynchronize();
        void* p = nullptr;
        const cudaError_t later = cudaMemcpy(&p, &p, 0, cudaMemcpyDefault);
        std::exit(sync == cudaErrorLaunchFailure && later == cudaErrorLaunchFailure ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "__trap\\(\\) in kernel traps.*unspecified launch failure");
}

}  // namespace
