// CUDA build: Buffer's device memory through the CUDA runtime. This file and the kernels are the
// only places that call cudaMalloc/cudaFree.
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "core/buffer.h"
#include "core/cuda_check.h"

namespace om::device_memory {

Status cuda_malloc(void** ptr, size_t bytes, int device_index) {
  *ptr = nullptr;
  int count = cuda_device_count();
  if (count == 0) {
    return Status::Unavailable("no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver); "
                               "use --device cpu");
  }
  if (device_index < 0 || device_index >= count) {
    return Status::InvalidArgument(format_message("CUDA device %d requested but only %d visible", device_index, count));
  }
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  cudaError_t e = cudaMalloc(ptr, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls are not poisoned
    *ptr = nullptr;
    return Status::ResourceExhausted(format_message("cudaMalloc failed: %s", cudaGetErrorString(e)));
  }
  return Status::Ok();
}

void cuda_free(void* ptr, int device_index) noexcept {
  // Never throw or abort from a destructor: report and continue.
  cudaSetDevice(device_index);
  cudaError_t e = cudaFree(ptr);
  if (e != cudaSuccess) std::fprintf(stderr, "[%s] cudaFree: %s\n", process_identity().c_str(), cudaGetErrorString(e));
}

void cuda_memset_zero(void* ptr, size_t bytes, int device_index) {
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  OM_CUDA_CHECK(cudaMemset(ptr, 0, bytes));
  OM_CUDA_CHECK(cudaDeviceSynchronize());
}

void cuda_memcpy(void* dst, const void* src, size_t bytes) {
  OM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  // cudaMemcpy from pageable host memory may return before the DMA lands on the device; copy_bytes
  // promises a completed copy, visible to kernels on any stream (blocking or not).
  OM_CUDA_CHECK(cudaDeviceSynchronize());
}

namespace {

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// The default memory pool of a device keeps what cudaFreeAsync returns (release threshold: all of
// it) instead of handing it back to the driver at every synchronization, so a kernel's scratch of the
// same size next step is served from the pool without the driver. Set once per device.
void keep_pool_cached(int device_index) {
  static std::atomic<uint64_t> done{0};  // one bit per device ordinal < 64
  const uint64_t bit = device_index < 64 ? uint64_t{1} << device_index : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return;
  cudaMemPool_t pool = nullptr;
  OM_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_index));
  uint64_t threshold = UINT64_MAX;
  OM_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  done.fetch_or(bit, std::memory_order_acq_rel);
}

}  // namespace

Status cuda_malloc_async(void** ptr, size_t bytes, int device_index, void* stream) {
  *ptr = nullptr;
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  keep_pool_cached(device_index);
  cudaError_t e = cudaMallocAsync(ptr, bytes, as_stream(stream));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *ptr = nullptr;
    return Status::ResourceExhausted(format_message("cudaMallocAsync failed: %s", cudaGetErrorString(e)));
  }
  return Status::Ok();
}

void cuda_free_async(void* ptr, int device_index, void* stream) noexcept {
  cudaSetDevice(device_index);
  cudaError_t e = cudaFreeAsync(ptr, as_stream(stream));
  if (e != cudaSuccess) {
    std::fprintf(stderr, "[%s] cudaFreeAsync: %s\n", process_identity().c_str(), cudaGetErrorString(e));
  }
}

void cuda_memcpy_async(void* dst, const void* src, size_t bytes, void* stream) {
  OM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, as_stream(stream)));
}

void cuda_memset_zero_async(void* ptr, size_t bytes, int device_index, void* stream) {
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  OM_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, as_stream(stream)));
}

void cuda_stream_synchronize(int device_index, void* stream) {
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  OM_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}

void* cuda_event_create() {
  cudaEvent_t e = nullptr;
  OM_CUDA_CHECK(cudaEventCreate(&e));
  return e;
}

void cuda_event_record(void* event, void* stream) {
  OM_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), as_stream(stream)));
}

double cuda_event_elapsed_s(void* start, void* end) {
  OM_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end)));
  float ms = 0.0f;
  OM_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return 1e-3 * static_cast<double>(ms);
}

void* cuda_malloc_host(size_t bytes) {
  void* p = nullptr;
  if (cudaMallocHost(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return p;
}

void cuda_free_host(void* ptr) noexcept {
  cudaError_t e = cudaFreeHost(ptr);
  if (e != cudaSuccess) std::fprintf(stderr, "[%s] cudaFreeHost: %s\n", process_identity().c_str(), cudaGetErrorString(e));
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

Status cuda_mem_get_info(int device_index, size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = 0;
  const int count = cuda_device_count();
  if (device_index < 0 || device_index >= count) {
    return Status::Unavailable(format_message("CUDA device %d requested but %d visible", device_index, count));
  }
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  if (const cudaError_t e = cudaMemGetInfo(free_bytes, total_bytes); e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::Unavailable(format_message("cudaMemGetInfo failed: %s", cudaGetErrorString(e)));
  }
  return Status::Ok();
}

void* cuda_stream_create(int device_index) {
  OM_CUDA_CHECK(cudaSetDevice(device_index));
  cudaStream_t s = nullptr;
  OM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void cuda_stream_destroy(void* stream) noexcept {
  const cudaError_t e = cudaStreamDestroy(as_stream(stream));
  if (e != cudaSuccess) std::fprintf(stderr, "[%s] cudaStreamDestroy: %s\n", process_identity().c_str(), cudaGetErrorString(e));
}

void* cuda_sync_event_create() {
  cudaEvent_t e = nullptr;
  OM_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

void cuda_event_destroy(void* event) noexcept {
  const cudaError_t e = cudaEventDestroy(static_cast<cudaEvent_t>(event));
  if (e != cudaSuccess) std::fprintf(stderr, "[%s] cudaEventDestroy: %s\n", process_identity().c_str(), cudaGetErrorString(e));
}

void cuda_stream_join(void* event, void* from, void* to) {
  OM_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event), as_stream(from)));
  OM_CUDA_CHECK(cudaStreamWaitEvent(as_stream(to), static_cast<cudaEvent_t>(event), 0));
}

void cuda_graph_begin_capture(void* stream) {
  OM_CUDA_CHECK(cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeThreadLocal));
}

void* cuda_graph_end_capture(void* stream, std::string* error) {
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(as_stream(stream), &graph);
  cudaGraphExec_t exec = nullptr;
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph != nullptr) cudaGraphDestroy(graph);  // the executable graph keeps what it needs
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // an invalidated capture leaves its error: clear it for the caller's next check
    *error = cudaGetErrorString(e);
    return nullptr;
  }
  return exec;
}

void cuda_graph_launch(void* exec, void* stream) {
  OM_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), as_stream(stream)));
}

void cuda_graph_destroy(void* exec) noexcept {
  const cudaError_t e = cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  if (e != cudaSuccess) std::fprintf(stderr, "[%s] cudaGraphExecDestroy: %s\n", process_identity().c_str(), cudaGetErrorString(e));
}

}  // namespace om::device_memory
