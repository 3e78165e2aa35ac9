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
// Host buffers of at least this size are aligned to it and advised to use transparent huge pages.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

class Buffer {
 public:
  Buffer() = default;
  // Fails with ResourceExhausted (out of memory) or Unavailable (CUDA requested in a CPU-only build
  // or on a machine without a GPU); the message names `label` and the size.
  static StatusOr<Buffer> TryAllocate(Device device, size_t bytes, const char* label);
  // The same, but an allocation failure is fatal (for sizes the program computed itself).
  static Buffer Allocate(Device device, size_t bytes, const char* label);
  // A kernel's temporary. CUDA: stream-ordered (cudaMallocAsync on `stream` from the device's default
  // memory pool, which this process sets to keep freed memory cached; the destructor frees with
  // cudaFreeAsync on the same stream), so neither the allocation nor the release waits for the device,
  // where cudaMalloc/cudaFree would (cudaFree synchronizes the device). Only work on `stream` (or work
  // ordered after it) may touch the memory. CPU: as Allocate. Fatal on failure, like Allocate.
  static Buffer AllocateScratch(Device device, Stream stream, size_t bytes, const char* label);
  // Host memory that copy_async can copy to a GPU without waiting: page-locked (cudaMallocHost) when a
  // CUDA device is visible, else as Allocate(Device::Cpu()). device() is the CPU. Counted as CPU bytes.
  static Buffer AllocatePinned(size_t bytes, const char* label);

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
  enum class Kind : uint8_t { kPlain, kScratch, kPinned };
  void* data_ = nullptr;
  size_t size_ = 0;
  Device device_;
  std::string label_;
  Kind kind_ = Kind::kPlain;
  Stream stream_;  // kScratch: the stream it was allocated on and is freed on
};

// Copies n bytes between any two devices (host<->device, device<->device, host<->host); synchronous:
// on CUDA it waits for the whole device (cudaDeviceSynchronize), so it is for set-up, read-backs and
// checkpoints, not for the inside of a training step (copy_async).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t n);

// Stream-ordered copy of n bytes (host -> device, device -> device, device -> host; between host
// buffers, and on a CPU context, a memcpy): ordered after the work already issued to ctx.stream and
// before the work issued after it, and returns without waiting for the device. REQUIRES: every device
// end is ctx.device. Host memory should be page-locked (Buffer::AllocatePinned): then the copy is truly
// asynchronous, and a host source must stay unchanged, a host destination unread, until the stream has
// passed the copy (e.g. the next copy_bytes, which waits for the device). With pageable host memory
// the driver stages a source before returning (and may wait for the stream to do so), and a copy to
// pageable memory returns only when done.
void copy_async(const ExecContext& ctx, void* dst, Device dst_device, const void* src, Device src_device, size_t n);
// Waits until the device has run everything issued to ctx.stream (CPU: returns at once). Counted by
// synchronous_calls.
void synchronize(const ExecContext& ctx);
// Stream-ordered zeroing of n bytes at `dst` on ctx.device (cudaMemsetAsync; on the CPU a memset).
void zero_async(const ExecContext& ctx, void* dst, size_t n);

// How many calls that may stall a GPU's pipeline this process has made: copy_bytes, Buffer::Zero and
// synchronize (each waits for the device), and the allocation and release of plain device Buffers
// (cudaFree waits for the device). The first three count on every device, the CPU included, so a CPU
// run of the device-agnostic code (model/, optim/, launch/) counts what a GPU run of it would; the GPU
// kernels' own temporaries are scratch Buffers and do not count. tests/launch/trainer_test.cc holds a
// training step to a fixed number, whatever the depth of the model or the number of micro-batches.
uint64_t synchronous_calls();

// Bytes a new allocation on `device` can still get now, so that a run too large for its device is refused
// before it allocates (launch/trainer.cc). CUDA: cudaMemGetInfo's free bytes of that device. CPU:
// /proc/meminfo's MemAvailable, or less where this process's memory cgroup (v1 or v2, as under SLURM's
// task/cgroup plugin) allows less: its limit − its usage without the inactive file cache. The whole
// host's (or cgroup's) figure: ranks sharing it divide it themselves. Unavailable where none can be read.
StatusOr<size_t> available_bytes(Device device);

// Low-level device memory primitives behind Buffer; implemented in cuda_runtime.cc (CUDA builds)
// or cuda_runtime_none.cc (CPU-only builds, where they report Unavailable).
namespace device_memory {
Status cuda_malloc(void** ptr, size_t bytes, int device_index);
void cuda_free(void* ptr, int device_index) noexcept;
void cuda_memset_zero(void* ptr, size_t bytes, int device_index);
void cuda_memcpy(void* dst, const void* src, size_t bytes);  // cudaMemcpyDefault (UVA)
// Stream-ordered forms (`stream` is a cudaStream_t); see Buffer::AllocateScratch and copy_async.
Status cuda_malloc_async(void** ptr, size_t bytes, int device_index, void* stream);
void cuda_free_async(void* ptr, int device_index, void* stream) noexcept;
void cuda_memcpy_async(void* dst, const void* src, size_t bytes, void* stream);
void cuda_memset_zero_async(void* ptr, size_t bytes, int device_index, void* stream);
void cuda_stream_synchronize(int device_index, void* stream);
// CUDA events for the op profiler (core/profiler.h): created on the current device, recorded on a
// stream; elapsed_s waits for `end` and returns the device time between the two in seconds.
void* cuda_event_create();
void cuda_event_record(void* event, void* stream);
double cuda_event_elapsed_s(void* start, void* end);
// Page-locked host memory; nullptr when no CUDA device is visible (the caller then uses plain memory).
void* cuda_malloc_host(size_t bytes);
void cuda_free_host(void* ptr) noexcept;
int cuda_device_count();  // 0 in CPU-only builds or without a visible GPU
Status cuda_mem_get_info(int device_index, size_t* free_bytes, size_t* total_bytes);  // cudaMemGetInfo
// CUDA graphs (model/llama_graph.cc). A non-blocking stream of the caller's own on `device_index` (not
// ordered with the legacy default stream: join it with cuda_stream_join); an event without timing.
void* cuda_stream_create(int device_index);
void cuda_stream_destroy(void* stream) noexcept;
void* cuda_sync_event_create();
void cuda_event_destroy(void* event) noexcept;
// Work issued on `to` after this call waits for the work issued on `from` before it (`event` recorded
// on `from`, `to` waits for it); either stream may be nullptr, the legacy default stream.
void cuda_stream_join(void* event, void* from, void* to);
// Stream capture on `stream` (this thread's calls only: cudaStreamCaptureModeThreadLocal), then the
// captured graph instantiated: the executable graph, or nullptr and `error` set when the capture
// failed (an operation issued inside it that a graph cannot hold).
void cuda_graph_begin_capture(void* stream);
void* cuda_graph_end_capture(void* stream, std::string* error);
void cuda_graph_launch(void* exec, void* stream);
void cuda_graph_destroy(void* exec) noexcept;
}  // namespace device_memory

}  // namespace om
