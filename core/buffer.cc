#include "core/buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

namespace om {

std::string device_name(Device d) {
  return d.kind == DeviceKind::kCpu ? std::string("cpu") : "cuda:" + std::to_string(d.index);
}

bool cuda_available() { return device_memory::cuda_device_count() > 0; }

StatusOr<Buffer> Buffer::TryAllocate(Device device, size_t bytes, const char* label) {
  Buffer b;
  b.device_ = device;
  b.label_ = label ? label : "";
  b.size_ = bytes;
  if (bytes == 0) return b;
  if (device.kind == DeviceKind::kCpu) {
    size_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    b.data_ = std::aligned_alloc(kBufferAlignment, rounded);
    if (b.data_ == nullptr) {
      return Status::ResourceExhausted(format_message("cannot allocate %zu bytes of host memory for '%s'", bytes,
                                                      b.label_.c_str()));
    }
    return b;
  }
  Status s = device_memory::cuda_malloc(&b.data_, bytes, device.index);
  if (!s.ok()) {
    b.data_ = nullptr;
    return s.WithContext(format_message("allocating %zu bytes on %s for '%s'", bytes, device_name(device).c_str(),
                                        b.label_.c_str()));
  }
  return b;
}

Buffer Buffer::Allocate(Device device, size_t bytes, const char* label) {
  StatusOr<Buffer> b = TryAllocate(device, bytes, label);
  OM_CHECK(b.ok(), "%s", b.status().ToString().c_str());
  return std::move(b).value();
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      device_(other.device_),
      label_(std::move(other.label_)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    device_ = other.device_;
    label_ = std::move(other.label_);
  }
  return *this;
}

Buffer::~Buffer() { Release(); }

void Buffer::Release() noexcept {
  if (data_ == nullptr) return;
  if (device_.kind == DeviceKind::kCpu) {
    std::free(data_);
  } else {
    device_memory::cuda_free(data_, device_.index);
  }
  data_ = nullptr;
  size_ = 0;
}

void Buffer::Zero() {
  if (data_ == nullptr) return;
  if (device_.kind == DeviceKind::kCpu) {
    std::memset(data_, 0, size_);
  } else {
    device_memory::cuda_memset_zero(data_, size_, device_.index);
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  if (n == 0) return;
  if (dst_device.kind == DeviceKind::kCpu && src_device.kind == DeviceKind::kCpu) {
    std::memcpy(dst, src, n);
    return;
  }
  device_memory::cuda_memcpy(dst, src, n);
}

}  // namespace om
