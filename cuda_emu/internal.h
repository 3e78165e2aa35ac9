// The CUDA emulator's internals shared by its runtime (runtime.cc: the work queue, the block scheduler,
// emu.h) and its CUDA runtime API (cudart.cc: devices, memory, copies, streams, events). Not for project
// code, not for the rewritten kernels (they see emu.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cuda_emu/emu.h"

namespace om_emu {

constexpr size_t kPage = 4096;
constexpr size_t kStaticSmemLimit = 48 * 1024;   // without cudaFuncAttributeMaxDynamicSharedMemorySize
constexpr size_t kOptInSmemLimit = 227 * 1024;   // sm_90's opt-in maximum per block
constexpr unsigned char kUninitialised = 0xff;   // fresh device and shared memory: NaN as f32, bf16, f64

enum class Kind { kDevice, kPinned };

// A guarded mapping: [guard page][pages holding the bytes, ending at the guard][guard page]. Device
// memory starts at a 256-byte boundary (cudaMalloc's alignment) as close to the trailing guard as that
// allows, so an overrun by more than the alignment slack faults.
struct Mapping {
  char* base = nullptr;  // the whole region, guards included
  size_t region = 0;
  char* data = nullptr;
  size_t bytes = 0;
  Kind kind = Kind::kDevice;
};

// A fresh guarded mapping of `bytes` (kUninitialised-filled, accessible); base == nullptr if mmap failed.
Mapping map_guarded(size_t bytes, Kind kind);

struct Event {
  std::chrono::steady_clock::time_point at{};
  bool recorded = false;
  bool timing = true;  // false: cudaEventDisableTiming (no elapsed time)
  // Where the last cudaEventRecord was issued: inside capture `capture_id` (0: outside any) on `stream`,
  // after that stream's first `seq` pieces of captured work (the record included).
  uint64_t capture_id = 0;
  const void* stream = nullptr;
  uint64_t seq = 0;
  // Recorded outside a capture on a non-blocking stream (State::late): that stream's first `late_seq`
  // pieces of work, the record included, are what a wait for the event must see. nullptr: recorded on
  // a stream whose work is queued at once.
  const void* late_stream = nullptr;
  uint64_t late_seq = 0;
  uint64_t id = 0;  // OM_EMU_STREAM_ORDER=early: the queued record's id (Queued::id)
};

// The work of a non-blocking stream (cudaStreamCreateWithFlags(cudaStreamNonBlocking)) held back: a GPU
// may run it as late as nothing waits for it, so the emulator does (the latest legal schedule), and a
// missing event wait shows as stale memory. `issued` counts the stream's work so far, `moved` what left.
// With OM_EMU_STREAM_ORDER=early the opposite schedule: nothing is held back, and each piece of its work
// is queued as EARLY as CUDA allows instead, right after the later of its stream's previous work and the
// last event it waited for (`after`, `last`: Queued ids), so a missing wait BEFORE work on the stream shows
// as the work reading its inputs too early.
struct LateStream {
  std::deque<std::pair<std::function<void()>, std::string>> ops;
  uint64_t issued = 0, moved = 0;
  uint64_t after = 0, last = 0;  // early order only
};

// A piece of queued work; ids grow in issue order (early order inserts, so the queue is not sorted by id).
struct Queued {
  std::function<void()> op;
  std::string what;
  uint64_t id = 0;
};

// A stream capture in progress (cudaStreamBeginCapture .. cudaStreamEndCapture, cudart.cc): the work
// issued meanwhile on the capturing streams is recorded here instead of queued, to be queued again at
// every cudaGraphLaunch. The capturing streams are the origin and every stream that waited for an event
// recorded on a capturing stream (a fork); each fork must be joined back before the end: the origin waits
// for an event recorded on it after its last work (else cudaErrorStreamCaptureUnjoined, as on a GPU).
// Streams are keys only (the legacy default stream is nullptr).
struct Capture {
  uint64_t id = 0;               // which capture (events recorded in it carry it)
  const void* stream = nullptr;  // the origin
  std::set<const void*> streams;             // the origin and its forks
  std::map<const void*, uint64_t> issued;    // work recorded per capturing stream
  std::map<const void*, uint64_t> joined;    // per fork: the origin waited for its first N pieces of work
  std::vector<std::pair<std::function<void()>, std::string>> ops;
  std::vector<void*> allocations;   // cudaMallocAsync'd inside it: the graph's own, freed with the graph
  cudaError_t error = cudaSuccess;  // a call the capture does not allow: cudaStreamEndCapture fails
};

struct State {
  std::recursive_mutex mu;
  std::map<uintptr_t, Mapping> allocations;  // by data address
  std::deque<Queued> queue;
  uint64_t next_id = 1;       // of the next queued work; last_id: the latest queued (0: none)
  uint64_t last_id = 0;
  bool early_streams = false;  // OM_EMU_STREAM_ORDER=early (LateStream)
  bool device_open = false;  // device mappings accessible (work is running)
  bool issued_since_wait = false;  // work was queued since the host last waited (host_waits)
  uint64_t launches = 0;           // device work the host issued outside a capture (device_launches)
  cudaError_t last_error = cudaSuccess;
  std::map<const void*, int> max_dynamic_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize
  // Set by __trap (cudaErrorLaunchFailure): like a GPU's sticky error, every later call returns it and
  // queued work is dropped; the process cannot recover (CUDA needs a new process too).
  cudaError_t sticky = cudaSuccess;
  std::unique_ptr<Capture> capture;  // while a stream is being captured
  uint64_t captures = 0;             // captures begun so far (Capture::id)
  std::map<const void*, LateStream> late;  // every live non-blocking stream, by key
};

State& state();

// During a capture: marks it failed (what a GPU does for a call that would wait for the device or that
// the capture cannot record) and returns cudaErrorStreamCaptureUnsupported; else cudaSuccess.
cudaError_t forbidden_in_capture(State& s);
// The stream as a capture's key: the legacy default stream (nullptr, cudaStreamLegacy) is nullptr.
const void* stream_key(cudaStream_t stream);
// True when a capture is in progress and `stream` takes part in it.
bool captured_stream(State& s, cudaStream_t stream);
// Non-blocking streams' held-back work (LateStream) joins the queue when something waits for it: the
// first `through` pieces of `from`'s work (all of it: UINT64_MAX) go to the end of `into`'s work (a
// non-blocking stream's held-back work, or else the queue). release_all_late: every stream's, to the queue.
void release_late(State& s, const void* from, uint64_t through, const void* into);
void release_all_late(State& s);
// The index of queued work `id` in State::queue; -1 when it ran already (or id is 0).
std::ptrdiff_t queue_position(State& s, uint64_t id);
// Early order: after `stream` waits for an event recorded as queued work `id`.
void early_wait(State& s, const void* stream, uint64_t id);

// ---- Opening device memory while work runs ----------------------------------------------------------
void set_device_protection(State& s, bool open);

struct DeviceOpen {
  State& s;
  bool was;
  explicit DeviceOpen(State& st) : s(st), was(st.device_open) {
    if (!was) set_device_protection(s, true);
  }
  ~DeviceOpen() {
    if (!was) set_device_protection(s, false);
  }
};

// The allocation holding p: its bytes (and, for bytes = 0 style checks, its end), or with `with_guards`
// anywhere in its region, guard pages included (the fault handler's question).
const Mapping* find_mapping(State& s, const void* p, bool with_guards);

// Reports faults in device memory with what was running (once per process; idempotent).
void install_fault_handler();
// Names the queued op running on this thread for fault reports (nullptr: host code).
void set_running(const char* what);

}  // namespace om_emu
