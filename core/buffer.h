// Buffer: the one owner of device memory. Move-only; the destructor frees and never throws.
// CPU memory is 256-byte aligned host memory; CUDA memory comes only from cudaMalloc, and only
// through this class (no raw cudaMalloc/cudaFree anywhere else). A default Buffer is empty.
// Thread safety: a Buffer is not shared between threads while being moved or destroyed.
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
