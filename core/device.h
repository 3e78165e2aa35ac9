// Device, Stream and ExecContext: where an op runs. No CUDA header is included here; a Stream
// wraps a cudaStream_t as an opaque handle in CUDA builds (nullptr = the default stream).
// ExecContext is a small value passed by const reference to every op; it owns nothing.
#pragma once

#include <cstdint>
#include <string>

namespace om {

enum class DeviceKind : uint8_t { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // CUDA ordinal; 0 for the CPU

  static constexpr Device Cpu() { return Device{DeviceKind::kCpu, 0}; }
  static constexpr Device Cuda(int index = 0) { return Device{DeviceKind::kCuda, index}; }
  friend constexpr bool operator==(Device a, Device b) { return a.kind == b.kind && a.index == b.index; }
};

std::string device_name(Device d);  // "cpu", "cuda:0"

struct Stream {
  void* handle = nullptr;  // cudaStream_t in CUDA builds
};

struct ExecContext {
  Device device;
  Stream stream;
};

// True when this binary was built with CUDA and a CUDA device is visible.
bool cuda_available();

// OM_SYNC_DEBUG=1 (STYLE.md §5): the CUDA kernels synchronize after every launch so an asynchronous
// fault is reported at the kernel that caused it (kernels/cuda/cuda_common.cuh), and Llama's CUDA
// graphs run eagerly instead (a capture cannot hold a synchronization). Read once per process.
bool cuda_sync_debug();

}  // namespace om
