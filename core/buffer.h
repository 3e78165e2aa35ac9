// Buffer: the one owner of device memory. Move-only; the destructor frees and never throws.
// CPU memory is 256-byte aligned host memory; CUDA memory comes only from cudaMalloc, and only
// through this class (no raw cudaMalloc/cudaFree anywhere else). A default Buffer is empty.
// Accounting: process-wide live and peak bytes per DeviceKind (all device indices of a kind together),
// counted at the requested size() on every successful allocation and every release. This is what the
// memory plan (launch/memory_plan.h) calls "measured allocations". It sees only Buffers: host
// temporaries inside kernels and the model (std::vector), the allocator's rounding up to 256 bytes,
// and CUDA memory outside Buffer (the CUDA context, cuBLAS/cuBLASLt handles and workspace, NCCL) are
// not counted.
// Thread safety: a Buffer is not shared between threads while being moved or destroyed; the counters
// are atomics and may be read from any thread.
#pragma once

#include <cstddef>
#include <string>

#include "core/device.h"
#include "core/status.h"

namespace om {

inline constexpr size_t kBufferAlignment = 256;

class Buffer {
 public:
  Buffer() = default;
  // Fails with ResourceExhausted (out of memory) or Unavailable (CUDA requested in a CPU-only build
  // or on a machine without a GPU); the message names `label` and the size.
  static StatusOr<Buffer> TryAllocate(Device device, size_t bytes, const char* label);
  // The same, but an allocation failure is fatal (for sizes the program computed itself).
  static Buffer Allocate(Device device, size_t bytes, const char* label);

  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return data_; }
  size_t size() const { return size_; }
  Device device() const { return device_; }
  const std::string& label() const { return label_; }
  bool empty() const { return data_ == nullptr; }

  void Zero();  // all bytes to 0 (synchronous)

  // Bytes of every Buffer of `kind` now alive, and the most alive at once since the process started
  // or since the last reset_peak(kind), which sets the peak to the bytes alive now.
  static size_t live_bytes(DeviceKind kind);
  static size_t peak_bytes(DeviceKind kind);
  static void reset_peak(DeviceKind kind);

 private:
  void Release() noexcept;
  void* data_ = nullptr;
  size_t size_ = 0;
  Device device_;
  std::string label_;
};

// Copies n bytes between any two devices (host<->device, device<->device, host<->host); synchronous.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t n);

// Low-level device memory primitives behind Buffer; implemented in cuda_runtime.cc (CUDA builds)
// or cuda_runtime_none.cc (CPU-only builds, where they report Unavailable).
namespace device_memory {
Status cuda_malloc(void** ptr, size_t bytes, int device_index);
void cuda_free(void* ptr, int device_index) noexcept;
void cuda_memset_zero(void* ptr, size_t bytes, int device_index);
void cuda_memcpy(void* dst, const void* src, size_t bytes);  // cudaMemcpyDefault (UVA)
int cuda_device_count();  // 0 in CPU-only builds or without a visible GPU
}  // namespace device_memory

}  // namespace om
