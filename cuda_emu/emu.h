// The CUDA emulator's internal interface (cuda_emu/README.md): what the device header (device.h, in the
// rewritten kernels), the runtime (runtime.cc: cudart, streams, memory), cuBLAS(Lt) (blas.cc) and NCCL
// (nccl.cc) share. Not for project code: project code calls the CUDA APIs, unchanged.
//
// Execution model. Work is queued in issue order (every blocking stream on one queue: a legal schedule of
// independent streams; a non-blocking stream's work is held back until something waits for it, or with
// OM_EMU_STREAM_ORDER=early queued as early as its waits allow, internal.h LateStream) and runs when the
// host waits (cudaStreamSynchronize, cudaDeviceSynchronize,
// cudaEventSynchronize, a synchronous cudaMemcpy/cudaFree, a device-to-pageable copy), as on a GPU; so a
// host read of a result before its wait sees stale memory here too. (A collective of a multi-rank NCCL
// communicator flushes the queue and runs at its issue, nccl.cc.) A kernel runs block after block; a
// block's threads are fibers on one host thread, switched only at __syncthreads, __syncwarp and
// shuffles, so a run is deterministic. Device allocations are host mappings that are inaccessible
// (PROT_NONE) while host code runs and surrounded by guard pages: a host dereference of device memory,
// or a kernel's access outside its allocation, faults and is reported with the kernel, block and thread.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

// The built-in variables of the thread being run (set by the block scheduler before it switches to the
// thread's fiber).
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace om_emu {

// ---- Inside a running kernel -------------------------------------------------------------------------
void sync_block();                                           // __syncthreads
void sync_warp(unsigned mask);                               // __syncwarp (full mask only)
uint64_t shuffle(unsigned mask, uint64_t bits, int src_lane);  // the value `src_lane` passed in
void* dynamic_smem();                                        // the launch's dynamic shared memory
// cp.async (PTX cp.async.cg.shared.global, kernels/cuda/async_copy.cuh): `bytes` from global src to shared
// dst, zero-filled past src_bytes (src unread when 0). Deferred: the thread's copies are grouped at each
// commit and performed only when the thread waits (cp_async_wait: all but the `pending` most recent
// groups), so a read before the wait, or by another thread before a barrier, sees the old bytes.
void cp_async(void* dst, const void* src, size_t bytes, size_t src_bytes);
void cp_async_commit();
void cp_async_wait(int pending);
// Static __shared__ declarations (transform_cu.py): each declaration site reserves its bytes once per
// process; every block sees them at one address, refilled with NaN bytes at its start.
size_t reserve_static_shared(size_t bytes, size_t align);
void* static_shared_base();
template <typename T, size_t N, typename Site>
T* static_shared(Site) {
  static const size_t offset = reserve_static_shared(sizeof(T) * N, alignof(T));
  return reinterpret_cast<T*>(static_cast<char*>(static_shared_base()) + offset);
}
[[noreturn]] void trap();                                    // __trap: reports the thread and aborts
// WMMA's rules: a 32-byte-aligned tile pointer, a leading dimension that is a multiple of 16 bytes.
void check_wmma_pointer(const void* p, size_t ldm_bytes, const char* what);

// ---- Host side ---------------------------------------------------------------------------------------
// Fatal emulator error (a use the GPU would reject or fault on): prints and aborts.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Queues `op`, issued on `stream` (nullptr: the legacy default stream), in issue order (see above); `what`
// names it in fault reports. During a stream capture (cudart.cc) it is recorded instead when `stream`
// takes part in the capture; issued on any other stream it is reported (fail): a GPU would run it once,
// now, or refuse it, instead of at each launch of the graph. `launch`: counts in device_launches (false for
// event records, cudaFreeAsync and the ops of a graph launch, which counts once).
void enqueue(std::function<void()> op, const char* what, cudaStream_t stream, bool launch = true);
// Runs everything queued (what the host's waits do); returns the sticky error a __trap left, if any.
cudaError_t flush();
// True when [p, p + bytes) lies in one allocation a kernel may touch (device or page-locked host); with
// bytes = 0, p may also be the allocation's end (an empty range).
bool device_accessible(const void* p, size_t bytes);
// True when p lies in a device allocation (cudaMalloc, cudaMallocAsync).
bool is_device(const void* p);
// How many times so far the host waited for device work (cudaStreamSynchronize, cudaDeviceSynchronize,
// cudaEventSynchronize, cudaMemcpy or cudaFree with work issued since its previous wait: a stall of a
// GPU's pipeline; a second wait with nothing issued in between does not count). Lets a test of an
// emulator build count the waits of code that bypasses core/buffer.h's counted ones. The emulator's own
// flushes (a multi-rank NCCL collective at its issue, nccl.cc) are not waits of the program.
uint64_t host_waits();
// How many pieces of device work the host has issued outside a stream capture: kernel launches, cuBLAS
// calls, copies, memsets, NCCL collectives, and graph launches (one each, whatever the graph holds: the
// host pays for one call). Event records and stream waits do not count. Lets a test count the launches
// of a step, which on a GPU cost the host a few microseconds each.
uint64_t device_launches();
// Non-blocking streams' schedule (internal.h LateStream): false (the default) holds their work back until
// something waits for it (the latest legal schedule); true, or OM_EMU_STREAM_ORDER=early in the
// environment, queues each piece as early as its waits allow. Switching releases held-back work first.
// Returns the previous setting.
bool set_early_streams(bool early);
// How many cublasLtMatmulAlgoGetHeuristic calls this process has made (blas.cc): lets a test check that
// a caller caches its plans.
uint64_t lt_heuristic_calls();
// How many cublasGemmBatchedEx calls with CUBLAS_COMPUTE_32F_FAST_TF32 this process has made (blas.cc).
uint64_t tf32_gemm_calls();
// Records a launch-time error for cudaGetLastError (a bad launch configuration, as the driver reports).
void set_last_error(cudaError_t e);

struct LaunchConfig {
  dim3 grid, block;
  size_t smem = 0;
};
// Validates cfg as the driver would (a bad one sets the launch error and queues nothing) and queues the
// grid: every block runs `body` once per thread.
void submit(const char* name, const void* fn, const LaunchConfig& cfg, cudaStream_t stream,
            std::function<void()> body);

template <typename... P>
class Launcher {
 public:
  Launcher(const char* name, void (*fn)(P...), LaunchConfig cfg, cudaStream_t stream)
      : name_(name), fn_(fn), cfg_(cfg), stream_(stream) {}
  // Copies the arguments now (kernel parameters are passed by value at launch), converted to the
  // kernel's parameter types; a pointer argument must be device-accessible (or null).
  template <typename... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    auto args = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(a)...);
    check_pointers(*args, std::index_sequence_for<P...>{});
    void (*fn)(P...) = fn_;
    submit(name_, reinterpret_cast<const void*>(fn_), cfg_, stream_, [fn, args] { std::apply(fn, *args); });
  }

 private:
  template <typename Tuple, size_t... I>
  void check_pointers(const Tuple& t, std::index_sequence<I...>) const {
    (check_pointer(std::get<I>(t), static_cast<int>(I)), ...);
  }
  template <typename T>
  void check_pointer(const T& v, int index) const {
    if constexpr (std::is_pointer_v<T>) {
      if (v != nullptr && !device_accessible(v, 0)) {
        fail("kernel %s: argument %d (%p) is not device memory (cudaMalloc, cudaMallocAsync or cudaMallocHost); "
             "a GPU faults on it",
             name_, index, static_cast<const void*>(v));
      }
    }
  }
  const char* name_;
  void (*fn_)(P...);
  LaunchConfig cfg_;
  cudaStream_t stream_;
};

template <typename... P>
Launcher<P...> launch(const char* name, void (*fn)(P...), dim3 grid, dim3 block, size_t smem = 0,
                      cudaStream_t stream = nullptr) {
  return Launcher<P...>(name, fn, LaunchConfig{grid, block, smem}, stream);  // one queue for every stream
}

}  // namespace om_emu
