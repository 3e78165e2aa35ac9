#include "core/buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "core/profiler.h"

namespace om {
namespace {

// Per DeviceKind (kCpu, kCuda): bytes alive and the high-water mark. Relaxed ordering suffices:
// each counter is exact on its own and nothing else is published through them.
constexpr size_t kDeviceKinds = 2;
static_assert(static_cast<size_t>(DeviceKind::kCuda) + 1 == kDeviceKinds, "one counter per DeviceKind");
std::atomic<size_t> g_live[kDeviceKinds];
std::atomic<size_t> g_peak[kDeviceKinds];
std::atomic<uint64_t> g_synchronous_calls{0};

void count_synchronous_call() { g_synchronous_calls.fetch_add(1, std::memory_order_relaxed); }

size_t kind_index(DeviceKind kind) { return static_cast<size_t>(kind); }

void account_allocate(DeviceKind kind, size_t bytes) {
  const size_t k = kind_index(kind);
  const size_t live = g_live[k].fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = g_peak[k].load(std::memory_order_relaxed);
  while (live > peak && !g_peak[k].compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

void account_release(DeviceKind kind, size_t bytes) {
  g_live[kind_index(kind)].fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace

size_t Buffer::live_bytes(DeviceKind kind) { return g_live[kind_index(kind)].load(std::memory_order_relaxed); }

size_t Buffer::peak_bytes(DeviceKind kind) { return g_peak[kind_index(kind)].load(std::memory_order_relaxed); }

void Buffer::reset_peak(DeviceKind kind) {
  const size_t k = kind_index(kind);
  g_peak[k].store(g_live[k].load(std::memory_order_relaxed), std::memory_order_relaxed);
}

std::string device_name(Device d) {
  return d.kind == DeviceKind::kCpu ? std::string("cpu") : "cuda:" + std::to_string(d.index);
}

bool cuda_available() { return device_memory::cuda_device_count() > 0; }

bool cuda_sync_debug() {
  static const bool on = [] {
    const char* v = std::getenv("OM_SYNC_DEBUG");
    return v != nullptr && v[0] != '\0' && v[0] != '0';
  }();
  return on;
}

StatusOr<Buffer> Buffer::TryAllocate(Device device, size_t bytes, const char* label) {
  Buffer b;
  b.device_ = device;
  b.label_ = label ? label : "";
  b.size_ = bytes;
  if (bytes == 0) return b;
  if (device.kind == DeviceKind::kCpu) {
    // Buffers of 2 MiB or more: 2 MiB-aligned and marked for transparent huge pages, so that first
    // touch (Zero, the weights' initialisation) takes one page fault per 2 MiB instead of per 4 KiB —
    // on the 2-core development VM, 4 KiB faults made zeroing llama-350m's 8.5 GB of arenas and optimizer
    // state take ~35 s of a 48 s start-up. Where THP is off ("never") madvise fails and nothing changes.
    const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : kBufferAlignment;
    const size_t rounded = (bytes + align - 1) / align * align;
    b.data_ = std::aligned_alloc(align, rounded);
    if (b.data_ != nullptr && align == kHugePageBytes) madvise(b.data_, rounded, MADV_HUGEPAGE);
    if (b.data_ == nullptr) {
      return Status::ResourceExhausted(format_message("cannot allocate %zu bytes of host memory for '%s'", bytes,
                                                      b.label_.c_str()));
    }
    account_allocate(device.kind, bytes);
    return b;
  }
  count_synchronous_call();
  Status s = device_memory::cuda_malloc(&b.data_, bytes, device.index);
  if (!s.ok()) {
    b.data_ = nullptr;
    return s.WithContext(format_message("allocating %zu bytes on %s for '%s'", bytes, device_name(device).c_str(),
                                        b.label_.c_str()));
  }
  account_allocate(device.kind, bytes);
  return b;
}

Buffer Buffer::Allocate(Device device, size_t bytes, const char* label) {
  StatusOr<Buffer> b = TryAllocate(device, bytes, label);
  OM_CHECK(b.ok(), "%s", b.status().ToString().c_str());
  return std::move(b).value();
}

Buffer Buffer::AllocateScratch(Device device, Stream stream, size_t bytes, const char* label) {
  if (device.kind == DeviceKind::kCpu) return Allocate(device, bytes, label);
  Buffer b;
  b.device_ = device;
  b.label_ = label ? label : "";
  b.size_ = bytes;
  b.kind_ = Kind::kScratch;
  b.stream_ = stream;
  if (bytes == 0) return b;
  const Status s = device_memory::cuda_malloc_async(&b.data_, bytes, device.index, stream.handle);
  OM_CHECK(s.ok(), "allocating %zu bytes of scratch on %s for '%s': %s", bytes, device_name(device).c_str(),
           b.label_.c_str(), s.ToString().c_str());
  account_allocate(device.kind, bytes);
  return b;
}

Buffer Buffer::AllocatePinned(size_t bytes, const char* label) {
  void* pinned = bytes > 0 && cuda_available() ? device_memory::cuda_malloc_host(bytes) : nullptr;
  if (pinned == nullptr) return Allocate(Device::Cpu(), bytes, label);
  Buffer b;
  b.device_ = Device::Cpu();
  b.label_ = label ? label : "";
  b.size_ = bytes;
  b.kind_ = Kind::kPinned;
  b.data_ = pinned;
  account_allocate(DeviceKind::kCpu, bytes);
  return b;
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      device_(other.device_),
      label_(std::move(other.label_)),
      kind_(other.kind_),
      stream_(other.stream_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    device_ = other.device_;
    label_ = std::move(other.label_);
    kind_ = other.kind_;
    stream_ = other.stream_;
  }
  return *this;
}

Buffer::~Buffer() { Release(); }

void Buffer::Release() noexcept {
  if (data_ == nullptr) return;
  if (kind_ == Kind::kPinned) {
    device_memory::cuda_free_host(data_);
  } else if (device_.kind == DeviceKind::kCpu) {
    std::free(data_);
  } else if (kind_ == Kind::kScratch) {
    device_memory::cuda_free_async(data_, device_.index, stream_.handle);
  } else {
    count_synchronous_call();
    device_memory::cuda_free(data_, device_.index);
  }
  account_release(device_.kind, size_);
  data_ = nullptr;
  size_ = 0;
}

void Buffer::Zero() {
  if (data_ == nullptr) return;
  count_synchronous_call();
  if (device_.kind == DeviceKind::kCpu) {
    std::memset(data_, 0, size_);
  } else {
    device_memory::cuda_memset_zero(data_, size_, device_.index);
  }
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  if (n == 0) return;
  count_synchronous_call();
  if (dst_device.kind == DeviceKind::kCpu && src_device.kind == DeviceKind::kCpu) {
    std::memcpy(dst, src, n);
    return;
  }
  device_memory::cuda_memcpy(dst, src, n);
}

void copy_async(const ExecContext& ctx, void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  if (n == 0) return;
  const profiler::Scope prof(ctx, "copy_async", 0, 2.0 * static_cast<double>(n));
  if (dst_device.kind == DeviceKind::kCpu && src_device.kind == DeviceKind::kCpu) {
    std::memcpy(dst, src, n);
    return;
  }
  OM_CHECK((dst_device.kind == DeviceKind::kCpu || dst_device == ctx.device) &&
               (src_device.kind == DeviceKind::kCpu || src_device == ctx.device),
           "copy_async: %s -> %s on a %s context; every device end must be the context's device",
           device_name(src_device).c_str(), device_name(dst_device).c_str(), device_name(ctx.device).c_str());
  device_memory::cuda_memcpy_async(dst, src, n, ctx.stream.handle);
}

void zero_async(const ExecContext& ctx, void* dst, size_t n) {
  if (n == 0) return;
  const profiler::Scope prof(ctx, "zero_async", 0, static_cast<double>(n));
  if (ctx.device.kind == DeviceKind::kCpu) {
    std::memset(dst, 0, n);
    return;
  }
  device_memory::cuda_memset_zero_async(dst, n, ctx.device.index, ctx.stream.handle);
}

void synchronize(const ExecContext& ctx) {
  count_synchronous_call();
  if (ctx.device.kind != DeviceKind::kCpu) device_memory::cuda_stream_synchronize(ctx.device.index, ctx.stream.handle);
}

uint64_t synchronous_calls() { return g_synchronous_calls.load(std::memory_order_relaxed); }

namespace {

// The first whitespace-separated number of `path`, or nullopt ("max", missing, unreadable).
std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// The value of the `want value [unit]` line of `path` (/proc/meminfo, a cgroup's memory.stat), or nullopt.
std::optional<uint64_t> keyed_value(const std::string& path, const std::string& want) {
  std::ifstream in(path);
  std::string key, rest;
  uint64_t v = 0;
  while (in >> key >> v) {
    if (key == want) return v;
    std::getline(in, rest);  // a unit ("kB"), if any
  }
  return std::nullopt;
}

// What this process's memory cgroup still allows: its limit − its usage, the usage less the inactive
// file cache, which the kernel reclaims before it refuses (the "working set" of container runtimes).
// cgroup v2 ("0::/path" in /proc/self/cgroup): memory.max, memory.current, memory.stat inactive_file.
// v1 ("N:memory:/path"): memory.limit_in_bytes, memory.usage_in_bytes, memory.stat total_inactive_file.
// The path is tried under the mount, then the mount itself (a container's own cgroup under a cgroup
// namespace). nullopt without a limit ("max" in v2, 2^63 rounded down to a page in v1) or a readable one.
std::optional<uint64_t> cgroup_headroom() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const bool v2 = line.rfind("0::", 0) == 0;
    const size_t memory = line.find(":memory:");
    if (!v2 && memory == std::string::npos) continue;
    const std::string mount = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    const std::string path = v2 ? line.substr(3) : line.substr(memory + 8);
    for (const std::string& dir : {mount + path, mount}) {
      const std::optional<uint64_t> max = read_number(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
      const std::optional<uint64_t> used = read_number(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
      if (!max || !used) continue;
      if (*max >= (uint64_t{1} << 62)) return std::nullopt;  // no limit
      const uint64_t inactive =
          keyed_value(dir + "/memory.stat", v2 ? "inactive_file" : "total_inactive_file").value_or(0);
      const uint64_t working = *used > inactive ? *used - inactive : 0;
      return *max > working ? *max - working : 0;
    }
  }
  return std::nullopt;
}

}  // namespace

StatusOr<size_t> available_bytes(Device device) {
  if (device.kind == DeviceKind::kCuda) {
    size_t free_bytes = 0, total_bytes = 0;
    OM_RETURN_IF_ERROR(device_memory::cuda_mem_get_info(device.index, &free_bytes, &total_bytes));
    return free_bytes;
  }
  std::optional<uint64_t> host = keyed_value("/proc/meminfo", "MemAvailable:");  // kB
  if (host) *host *= 1024;
  const std::optional<uint64_t> cgroup = cgroup_headroom();
  if (!host && !cgroup) return Status::Unavailable("neither /proc/meminfo nor this process's cgroup can be read");
  return static_cast<size_t>(std::min(host.value_or(UINT64_MAX), cgroup.value_or(UINT64_MAX)));
}

}  // namespace om
