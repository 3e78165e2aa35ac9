// The runtime side of the CUDA emulator (cuda_emu/README.md): work deferred to the host's waits, its
// counters (host waits, devices), non-blocking streams in the late and the early order, stream capture into
// CUDA graphs, launch checks and dynamic shared memory, and the bugs it exists to catch there (out-of-bounds
// accesses, host dereferences of device memory, host pointers passed to a kernel, work outside a capture,
// __trap, a cuBLASLt algorithm on less aligned operands). The device side (barriers, shuffles, WMMA, PTX
// mma.sync, ldmatrix, cp.async) is device_test.cu. Built and run only in emulator builds (OM_CUDA_EMULATION).
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda_emu/emu.h"
#include "tests/cuda_emu/device_memory.h"

namespace {

using om::emu_test::device_alloc;
using om::emu_test::download;

// ---- Kernels -------------------------------------------------------------------------------------

__global__ void write_index(float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = static_cast<float>(i);
}

__global__ void read_at(float* out, const float* in, int index) { out[0] = in[index]; }

__global__ void uses_dynamic_smem(float* out) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x] = 2.0f * static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = dyn[blockDim.x - 1 - threadIdx.x];
}

__global__ void traps() { __trap(); }

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
