// CUDA build: Buffer's device memory through the CUDA runtime. This file and the kernels are the
// only places that call cudaMalloc/cudaFree.
#include <cuda_runtime_api.h>

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

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace om::device_memory
