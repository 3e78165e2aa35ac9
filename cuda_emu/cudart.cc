// The CUDA emulator's CUDA runtime API (cuda_emu/README.md, model in cuda_emu/emu.h): the subset the
// project calls (devices, memory, copies, memsets, streams, events, function attributes) over the queue
// and guarded mappings of runtime.cc. Thread-safe under the state's one lock.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cuda_emu/internal.h"

namespace om_emu {

// ---- Memory for the API below ------------------------------------------------------------------------
namespace {

// The emulated device memory's size: OM_EMU_DEVICE_MEMORY_MIB, else an H200's 143771 MiB or the host's
// MemAvailable at the first call if that is less (the emulated memory is host memory, touched as it is
// allocated: filled with the uninitialised pattern). cudaMalloc fails past it, as on a GPU, and
// cudaMemGetInfo reports it less the device memory allocated.
size_t device_memory_bytes() {
  static const size_t bytes = [] {
    const char* v = std::getenv("OM_EMU_DEVICE_MEMORY_MIB");
    if (v != nullptr) {
      const long long mib = std::atoll(v);
      if (mib < 1) fail("OM_EMU_DEVICE_MEMORY_MIB=%s: give the device memory in MiB (>= 1)", v);
      return static_cast<size_t>(mib) << 20;
    }
    size_t limit = size_t{143771} << 20;
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    size_t kib = 0;
    while (meminfo >> key >> kib) {
      if (key == "MemAvailable:") limit = std::min(limit, kib * 1024);
      meminfo.ignore(64, '\n');
    }
    return limit;
  }();
  return bytes;
}

size_t device_bytes_allocated() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  size_t used = 0;
  for (const auto& [addr, m] : s.allocations) used += m.kind == Kind::kDevice ? m.bytes : 0;
  return used;
}

cudaError_t allocate(void** ptr, size_t bytes, Kind kind) {
  if (ptr == nullptr) return cudaErrorInvalidValue;
  install_fault_handler();  // a host dereference of this memory must be reported, not only a kernel's
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (kind == Kind::kDevice) {
    const size_t total = device_memory_bytes(), used = std::min(total, device_bytes_allocated());
    if (bytes > total - used) return cudaErrorMemoryAllocation;
  }
  Mapping m = map_guarded(bytes, kind);
  if (m.base == nullptr) return cudaErrorMemoryAllocation;
  if (kind == Kind::kDevice && !s.device_open) mprotect(m.base + kPage, m.region - 2 * kPage, PROT_NONE);
  s.allocations[reinterpret_cast<uintptr_t>(m.data)] = m;
  *ptr = m.data;
  return cudaSuccess;
}

cudaError_t release(void* ptr, Kind kind) {
  if (ptr == nullptr) return cudaSuccess;
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const auto it = s.allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == s.allocations.end() || it->second.kind != kind) return cudaErrorInvalidValue;
  munmap(it->second.base, it->second.region);
  s.allocations.erase(it);
  return cudaSuccess;
}

// Where a copy's side lives: device, page-locked host, or pageable host.
enum class Side { kDevice, kPinned, kPageable };
Side side_of(const void* p) {
  State& s = state();
  const Mapping* m = find_mapping(s, p, false);
  if (m == nullptr) return Side::kPageable;
  return m->kind == Kind::kDevice ? Side::kDevice : Side::kPinned;
}

// Runs `op` now, after everything queued (a synchronous call).
cudaError_t run_now(const std::function<void()>& op, const char* what) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (const cudaError_t e = forbidden_in_capture(s); e != cudaSuccess) return e;  // it would wait
  if (flush() != cudaSuccess) return s.sticky;
  install_fault_handler();
  DeviceOpen open(s);
  set_running(what);
  op();
  set_running(nullptr);
  return cudaSuccess;
}

cudaError_t check_range(const void* p, size_t bytes, Side side) {
  if (side == Side::kPageable || bytes == 0) return cudaSuccess;
  return device_accessible(p, bytes) ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind, bool async, cudaStream_t stream) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.sticky != cudaSuccess) return s.sticky;
  if (!async) {  // a synchronous copy waits for the device: not inside a capture
    if (const cudaError_t e = forbidden_in_capture(s); e != cudaSuccess) return e;
  }
  if (n == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return cudaErrorInvalidValue;
  const Side ds = side_of(dst), ss = side_of(src);
  if (check_range(dst, n, ds) != cudaSuccess || check_range(src, n, ss) != cudaSuccess) return cudaErrorInvalidValue;
  // A stated direction must match the pointers (cudaMemcpyDefault infers it).
  const bool dst_dev = ds == Side::kDevice, src_dev = ss == Side::kDevice;
  if ((kind == cudaMemcpyHostToDevice && (!dst_dev || src_dev)) || (kind == cudaMemcpyDeviceToHost && (dst_dev || !src_dev)) ||
      (kind == cudaMemcpyDeviceToDevice && (!dst_dev || !src_dev)) || (kind == cudaMemcpyHostToHost && (dst_dev || src_dev))) {
    return cudaErrorInvalidValue;
  }
  auto op = [dst, src, n] { std::memmove(dst, src, n); };
  if (!dst_dev && !src_dev && ds == Side::kPageable && ss == Side::kPageable) {
    return run_now(op, "cudaMemcpy (host to host)");
  }
  if (ds == Side::kPageable) {  // to pageable host memory: the call returns when the bytes have landed
    return run_now(op, "cudaMemcpy to pageable host memory");
  }
  if (ss == Side::kPageable) {  // from pageable host memory: staged now, so the caller may reuse it
    if (!async) {
      return run_now(op, "cudaMemcpy from pageable host memory");
    }
    // A graph would copy the memory as it is at each launch, not as it was at the capture.
    if (const cudaError_t e = forbidden_in_capture(s); e != cudaSuccess) return e;
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + n);
    enqueue([dst, staged] { std::memcpy(dst, staged->data(), staged->size()); }, "cudaMemcpyAsync from pageable host memory",
            stream);
    return cudaSuccess;
  }
  if (!async && (ds == Side::kPinned || ss == Side::kPinned)) {
    return run_now(op, "cudaMemcpy with page-locked host memory");
  }
  enqueue(op, async ? "cudaMemcpyAsync" : "cudaMemcpy (device to device)", stream);
  return cudaSuccess;
}

cudaError_t fill(void* ptr, int value, size_t n, cudaStream_t stream) {
  if (state().sticky != cudaSuccess) return state().sticky;
  if (n == 0) return cudaSuccess;
  if (!device_accessible(ptr, n)) return cudaErrorInvalidValue;
  enqueue([ptr, value, n] { std::memset(ptr, value, n); }, "cudaMemset", stream);
  return cudaSuccess;
}

// A captured graph (cudaGraph_t) and its executable form (cudaGraphExec_t) share the recorded work and
// the graph's own allocations; the last of them to go frees the allocations, after the queued work.
struct GraphBody {
  std::vector<std::pair<std::function<void()>, std::string>> ops;
  std::vector<void*> allocations;
  ~GraphBody() {
    if (allocations.empty()) return;
    flush();
    for (void* p : allocations) release(p, Kind::kDevice);
  }
};
struct Graph {
  std::shared_ptr<const GraphBody> body;
};

int g_stream_tag = 0;      // cudaStreamCreate hands out addresses of distinct bytes below
char g_streams[1 << 16];   // (never dereferenced)
int g_pool_tag = 0;

}  // namespace
}  // namespace om_emu

// ---- The CUDA runtime API ----------------------------------------------------------------------------
using om_emu::state;

namespace {

// OM_EMU_DEVICES=N (1 to 64, default 1) makes N devices visible, so N ranks of a job on one host take
// cuda:0 .. cuda:N-1 as on an N-GPU node. Each process has one emulated memory: the ordinal is recorded,
// not separate memory (ranks are processes, and one rank uses one device).
int visible_devices() {
  static const int n = [] {
    const char* v = std::getenv("OM_EMU_DEVICES");
    const int parsed = v != nullptr ? std::atoi(v) : 1;
    if (parsed < 1 || parsed > 64) om_emu::fail("OM_EMU_DEVICES=%s: give a device count from 1 to 64", v);
    return parsed;
  }();
  return n;
}

thread_local int t_device = 0;

std::atomic<uint64_t> g_host_waits{0};

// The host waits for the device: counted (om_emu::host_waits) when work was issued since its last wait,
// whether or not the emulator has run it already (a multi-rank NCCL collective runs at its issue).
void count_wait() {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.issued_since_wait) g_host_waits.fetch_add(1, std::memory_order_relaxed);
  s.issued_since_wait = false;
}

cudaError_t host_wait() {
  if (const cudaError_t e = om_emu::forbidden_in_capture(state()); e != cudaSuccess) return e;
  count_wait();
  return om_emu::flush();
}

// A wait for every stream (cudaDeviceSynchronize, cudaFree): the non-blocking streams' work too.
cudaError_t device_wait() {
  if (const cudaError_t e = om_emu::forbidden_in_capture(state()); e != cudaSuccess) return e;
  om_emu::release_all_late(state());
  return host_wait();
}

}  // namespace

uint64_t om_emu::host_waits() { return g_host_waits.load(std::memory_order_relaxed); }

uint64_t om_emu::device_launches() {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  return s.launches;
}

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return cudaErrorInvalidValue;
  *count = visible_devices();
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= visible_devices()) return cudaErrorInvalidDevice;
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return cudaErrorInvalidValue;
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return device_wait(); }

cudaError_t cudaGetLastError(void) {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const cudaError_t e = s.sticky != cudaSuccess ? s.sticky : s.last_error;
  s.last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void) {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  return s.sticky != cudaSuccess ? s.sticky : s.last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnjoined: return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    default: return "cudaError (emulated)";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    // The driver's texts (CUDA 12/13).
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnjoined: return "capture sequence contains a fork that was not joined to the primary stream";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    default: return "unknown error (emulated)";
  }
}

cudaError_t cudaMalloc(void** ptr, size_t size) { return om_emu::allocate(ptr, size, om_emu::Kind::kDevice); }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return cudaErrorInvalidValue;
  *total_bytes = om_emu::device_memory_bytes();
  *free_bytes = *total_bytes - std::min(*total_bytes, om_emu::device_bytes_allocated());
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t e = device_wait(); e != cudaSuccess) return e;  // cudaFree waits for the device
  return om_emu::release(ptr, om_emu::Kind::kDevice);
}

// Inside a capture the allocation is the graph's: at one address for every launch, freed with the graph
// (a GPU's graph memory nodes keep one virtual address too), and its cudaFreeAsync in the capture is
// the graph's free node (nothing to do here).
cudaError_t cudaMallocAsync(void** ptr, size_t size, cudaStream_t) {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const cudaError_t e = om_emu::allocate(ptr, size, om_emu::Kind::kDevice);
  if (e == cudaSuccess && s.capture != nullptr) s.capture->allocations.push_back(*ptr);
  return e;
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (ptr == nullptr) return cudaSuccess;
  if (!om_emu::is_device(ptr)) return cudaErrorInvalidValue;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.capture != nullptr) {
    const auto& own = s.capture->allocations;
    if (std::find(own.begin(), own.end(), ptr) != own.end()) return cudaSuccess;
    return om_emu::forbidden_in_capture(s);  // memory from before the capture: not supported here
  }
  om_emu::enqueue([ptr] { om_emu::release(ptr, om_emu::Kind::kDevice); }, "cudaFreeAsync", stream, /*launch=*/false);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) { return om_emu::allocate(ptr, size, om_emu::Kind::kPinned); }

cudaError_t cudaFreeHost(void* ptr) {
  if (const cudaError_t e = om_emu::forbidden_in_capture(state()); e != cudaSuccess) return e;
  om_emu::release_all_late(state());  // it waits for the device, every stream
  om_emu::flush();
  return om_emu::release(ptr, om_emu::Kind::kPinned);
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (pool == nullptr || device < 0 || device >= visible_devices()) return cudaErrorInvalidValue;
  *pool = reinterpret_cast<cudaMemPool_t>(&om_emu::g_pool_tag);
  return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, enum cudaMemPoolAttr, void* value) {
  return pool != nullptr && value != nullptr ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  count_wait();
  return om_emu::copy(dst, src, count, kind, false, nullptr);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
  // Into pageable memory the call returns only when the bytes have landed: a host wait, as on a GPU.
  if (count > 0 && dst != nullptr && om_emu::side_of(dst) == om_emu::Side::kPageable) count_wait();
  return om_emu::copy(dst, src, count, kind, true, stream);
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) { return om_emu::fill(ptr, value, count, nullptr); }

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  return om_emu::fill(ptr, value, count, stream);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return cudaErrorInvalidValue;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  *stream = reinterpret_cast<cudaStream_t>(&om_emu::g_streams[om_emu::g_stream_tag++ % sizeof om_emu::g_streams]);
  return cudaSuccess;
}

// A non-blocking stream's work is held back until something waits for it (internal.h LateStream).
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (const cudaError_t e = cudaStreamCreate(stream); e != cudaSuccess) return e;
  if ((flags & cudaStreamNonBlocking) != 0) {
    auto& s = state();
    std::lock_guard<std::recursive_mutex> lock(s.mu);
    s.late[*stream] = om_emu::LateStream{};
  }
  return cudaSuccess;
}

// Its work still runs (queued now); the handle may be handed out again, as a blocking stream.
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const void* key = om_emu::stream_key(stream);
  om_emu::release_late(s, key, UINT64_MAX, nullptr);
  s.late.erase(key);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  om_emu::release_late(state(), om_emu::stream_key(stream), UINT64_MAX, nullptr);
  return host_wait();
}

cudaError_t cudaStreamQuery(cudaStream_t) { return om_emu::flush(); }

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return cudaErrorInvalidValue;
  *event = reinterpret_cast<cudaEvent_t>(new om_emu::Event);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (event == nullptr) return cudaErrorInvalidValue;
  auto* e = new om_emu::Event;
  e->timing = (flags & cudaEventDisableTiming) == 0;
  *event = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  om_emu::flush();
  delete reinterpret_cast<om_emu::Event*>(event);
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return cudaErrorInvalidValue;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  auto* e = reinterpret_cast<om_emu::Event*>(event);
  om_emu::enqueue(
      [e] {
        e->at = std::chrono::steady_clock::now();
        e->recorded = true;
      },
      "cudaEventRecord", stream, /*launch=*/false);
  const bool in_capture = om_emu::captured_stream(s, stream);
  e->capture_id = in_capture ? s.capture->id : 0;
  e->stream = om_emu::stream_key(stream);
  e->seq = in_capture ? s.capture->issued[e->stream] : 0;
  const auto late = in_capture || s.early_streams ? s.late.end() : s.late.find(e->stream);
  e->late_stream = late != s.late.end() ? e->stream : nullptr;
  e->late_seq = late != s.late.end() ? late->second.issued : 0;
  e->id = in_capture ? 0 : s.last_id;  // the record just queued (early order)
  return cudaSuccess;
}

// Every stream shares the one queue, which already runs the event's work before anything issued after
// this call: the wait has nothing to add to the execution. In a capture it forks (a stream waiting for an
// event recorded in the capture joins it) and joins (the origin waiting for a fork's event); a capturing
// stream waiting for an event from outside the capture is refused, as on a GPU.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const auto* e = reinterpret_cast<const om_emu::Event*>(event);
  if (s.capture == nullptr) {
    // The held-back work the event follows joins the waiting stream's (or the queue) here.
    if (e->late_stream != nullptr) om_emu::release_late(s, e->late_stream, e->late_seq, om_emu::stream_key(stream));
    if (s.early_streams) om_emu::early_wait(s, om_emu::stream_key(stream), e->id);
    return cudaSuccess;
  }
  om_emu::Capture& c = *s.capture;
  const void* key = om_emu::stream_key(stream);
  if (e->capture_id != c.id) {
    if (c.streams.count(key) == 0) return cudaSuccess;  // neither side in the capture
    c.error = cudaErrorStreamCaptureIsolation;
    return cudaErrorStreamCaptureIsolation;
  }
  c.streams.insert(key);
  if (key == c.stream && e->stream != c.stream) c.joined[e->stream] = std::max(c.joined[e->stream], e->seq);
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return cudaErrorInvalidValue;
  const auto* e = reinterpret_cast<const om_emu::Event*>(event);
  if (e->late_stream != nullptr) om_emu::release_late(state(), e->late_stream, e->late_seq, nullptr);
  return host_wait();
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr || start == nullptr || end == nullptr) return cudaErrorInvalidValue;
  const auto* a = reinterpret_cast<const om_emu::Event*>(start);
  const auto* b = reinterpret_cast<const om_emu::Event*>(end);
  if (!a->timing || !b->timing) return cudaErrorInvalidResourceHandle;  // made with cudaEventDisableTiming
  if (!a->recorded || !b->recorded) return cudaErrorNotReady;  // not yet run: the caller did not wait
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
  if (func == nullptr) return cudaErrorInvalidValue;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > om_emu::kOptInSmemLimit) return cudaErrorInvalidValue;
    auto& s = state();
    std::lock_guard<std::recursive_mutex> lock(s.mu);
    s.max_dynamic_smem[func] = value;
  }
  return cudaSuccess;
}

// ---- Stream capture and graphs: capture records instead of queueing (runtime.cc's enqueue); a launch
// queues the recorded work again, in its order. Only what the project uses: one capture at a time, on a
// created stream (the legacy default stream cannot be captured), replayed as it was recorded.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode) {
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) {
    return cudaErrorStreamCaptureUnsupported;
  }
  if (s.capture != nullptr) return cudaErrorIllegalState;
  s.capture = std::make_unique<om_emu::Capture>();
  s.capture->id = ++s.captures;
  s.capture->stream = stream;
  s.capture->streams.insert(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* status) {
  if (status == nullptr) return cudaErrorInvalidValue;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const bool on = om_emu::captured_stream(s, stream);
  *status = !on ? cudaStreamCaptureStatusNone
                : s.capture->error == cudaSuccess ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusInvalidated;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  *graph = nullptr;
  if (s.capture == nullptr || s.capture->stream != stream) return cudaErrorIllegalState;
  std::unique_ptr<om_emu::Capture> c = std::move(s.capture);
  auto body = std::make_shared<om_emu::GraphBody>();
  body->ops = std::move(c->ops);
  body->allocations = std::move(c->allocations);
  if (c->error != cudaSuccess) return cudaErrorStreamCaptureInvalidated;  // body frees the allocations
  for (const void* fork : c->streams) {
    if (fork != c->stream && c->issued[fork] > c->joined[fork]) return cudaErrorStreamCaptureUnjoined;
  }
  *graph = reinterpret_cast<cudaGraph_t>(new om_emu::Graph{std::move(body)});
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (exec == nullptr || graph == nullptr) return cudaErrorInvalidValue;
  *exec = reinterpret_cast<cudaGraphExec_t>(new om_emu::Graph{reinterpret_cast<om_emu::Graph*>(graph)->body});
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return cudaErrorInvalidResourceHandle;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.sticky != cudaSuccess) return s.sticky;
  if (s.capture != nullptr) return om_emu::forbidden_in_capture(s);  // a graph inside a capture: not emulated
  ++s.launches;
  for (const auto& [op, what] : reinterpret_cast<const om_emu::Graph*>(exec)->body->ops) {
    om_emu::enqueue(op, what.c_str(), stream, /*launch=*/false);
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<om_emu::Graph*>(exec);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<om_emu::Graph*>(graph);
  return cudaSuccess;
}

}  // extern "C"

