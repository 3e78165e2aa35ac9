// The CUDA emulator's runtime (cuda_emu/README.md, model in cuda_emu/emu.h): the deferred work queue,
// guarded device allocations and the fault reports, and the fiber scheduler that runs a kernel's blocks
// (emu.h's interface); the CUDA runtime API over them is cudart.cc. Thread-safe under one lock (work runs
// on the thread that waits).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_emu/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define OM_EMU_ASAN 1
#else
#define OM_EMU_ASAN 0
#endif

namespace om_emu {

Mapping map_guarded(size_t bytes, Kind kind) {
  const size_t body = (std::max<size_t>(bytes, 1) + kPage - 1) / kPage * kPage;
  Mapping m;
  m.region = body + 2 * kPage;
  void* p = mmap(nullptr, m.region, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Mapping{};
  m.base = static_cast<char*>(p);
  const size_t rounded = (bytes + 255) / 256 * 256;
  m.data = m.base + kPage + body - rounded;
  m.bytes = bytes;
  m.kind = kind;
  mprotect(m.base + kPage, body, PROT_READ | PROT_WRITE);
  std::memset(m.base + kPage, kUninitialised, body);
  return m;
}

State& state() {
  static State* s = [] {  // never destroyed: allocations may be freed during static destruction
    auto* st = new State;
    const char* order = std::getenv("OM_EMU_STREAM_ORDER");
    st->early_streams = order != nullptr && std::string(order) == "early";
    return st;
  }();
  return *s;
}

void set_device_protection(State& s, bool open) {
  for (auto& [addr, m] : s.allocations) {
    if (m.kind != Kind::kDevice) continue;
    mprotect(m.base + kPage, m.region - 2 * kPage, open ? PROT_READ | PROT_WRITE : PROT_NONE);
  }
  s.device_open = open;
}

const Mapping* find_mapping(State& s, const void* p, bool with_guards) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (with_guards) {
    for (const auto& [addr, m] : s.allocations) {
      const auto lo = reinterpret_cast<uintptr_t>(m.base);
      if (a >= lo && a < lo + m.region) return &m;
    }
    return nullptr;
  }
  auto it = s.allocations.upper_bound(a);
  if (it == s.allocations.begin()) return nullptr;
  --it;
  const Mapping& m = it->second;
  return a <= it->first + m.bytes ? &m : nullptr;
}

namespace {

size_t g_static_shared_bytes = 0;  // reserved by static __shared__ declarations so far

// ---- What is running, for fault reports --------------------------------------------------------------
thread_local const char* t_running = nullptr;  // the queued op running on this thread
struct BlockRun;
thread_local BlockRun* t_run = nullptr;        // the block being run on this thread (inside a kernel)

void describe_running(char* buf, size_t n) {
  if (t_running == nullptr) {
    std::snprintf(buf, n, "host code (no GPU work running)");
  } else if (t_run != nullptr) {
    std::snprintf(buf, n, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u)", t_running, blockIdx.x, blockIdx.y,
                  blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  } else {
    std::snprintf(buf, n, "%s", t_running);
  }
}

void on_segv(int sig, siginfo_t* info, void*) {
  State& s = state();
  const Mapping* m = find_mapping(s, info->si_addr, true);
  char where[512];
  describe_running(where, sizeof where);
  if (m != nullptr) {
    const auto a = reinterpret_cast<intptr_t>(info->si_addr), d = reinterpret_cast<intptr_t>(m->data);
    const char* why = !s.device_open && a >= d && a < d + static_cast<intptr_t>(m->bytes)
                          ? "host code dereferenced device memory (a GPU faults on that too)"
                          : "access outside the allocation (an illegal address on a GPU)";
    std::fprintf(stderr,
                 "cuda_emu: %s at %p: byte %ld of a %zu-byte %s allocation at %p; in %s\n", why, info->si_addr,
                 static_cast<long>(a - d), m->bytes, m->kind == Kind::kDevice ? "device" : "page-locked", m->data,
                 where);
  } else {
    std::fprintf(stderr, "cuda_emu: segmentation fault at %p in %s\n", info->si_addr, where);
  }
  std::fflush(stderr);
  signal(sig, SIG_DFL);
  std::abort();
}

// The fault handler runs on an alternate stack: a fault may be a fiber's stack overflow.
void ensure_signal_stack() {
  thread_local bool done = false;
  if (done) return;
  static constexpr size_t kAlt = 256 * 1024;
  stack_t ss{};
  ss.ss_sp = mmap(nullptr, kAlt, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // kept for the thread
  if (ss.ss_sp == MAP_FAILED) return;
  ss.ss_size = kAlt;
  sigaltstack(&ss, nullptr);
  done = true;
}

}  // namespace

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  });
}

void set_running(const char* what) { t_running = what; }

namespace {

// ---- The block scheduler: one fiber per thread of the block ------------------------------------------
// A fiber switch saves the callee-saved registers on the old stack and loads the new stack's, with no
// system call (swapcontext makes one for the signal mask at every switch, and a warp shuffle is 32
// switches). This switch and one wait per shuffle (below) took cuda_attention_test from past its 600 s
// timeout (swapcontext, two waits) to 146 s on this 2-core machine.
#if defined(__x86_64__)
extern "C" void om_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl om_emu_switch
    .type om_emu_switch, @function
om_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size om_emu_switch, .-om_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");
#else
#error "cuda_emu: the fiber switch is written for x86-64 only"
#endif

enum class FiberState { kRunnable, kBlockWait, kWarpWait, kDone };

constexpr size_t kFiberStack = OM_EMU_ASAN ? 1024 * 1024 : 256 * 1024;

// One cp.async of this thread, not yet performed: bytes from src (zero-filled past src_bytes) into dst.
struct AsyncCopy {
  unsigned char* dst = nullptr;
  const unsigned char* src = nullptr;
  size_t bytes = 0, src_bytes = 0;
};

struct Fiber {
  void* sp = nullptr;     // saved stack pointer while switched out
  char* stack = nullptr;  // kFiberStack bytes above a guard page
  FiberState st = FiberState::kDone;
  uint32_t shuffles = 0;  // shuffles this thread has made in the block (picks the exchange slot)
  // cp.async: the copies issued since the last commit, and the committed groups not yet waited for
  // (oldest first). Performed at cp_async_wait, as late as the PTX memory model allows.
  std::vector<AsyncCopy> async_open;
  std::vector<std::vector<AsyncCopy>> async_groups;
};

struct BlockRun {
  const char* name = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<Fiber>* fibers = nullptr;
  int n = 0;
  int current = 0;
  void* sched_sp = nullptr;
  unsigned char* smem = nullptr;
  unsigned char* static_smem = nullptr;  // kStaticSmemLimit bytes
  bool trapped = false;
  // Two exchange slots per lane: shuffle k writes slot k mod 2, waits for its warp, reads. A lane can
  // write that slot again (shuffle k + 2) only after every lane has passed shuffle k + 1's wait, that
  // is after every lane has read shuffle k's values: one wait per shuffle.
  uint64_t slots[2][32][32] = {};
  uint32_t slot_shuffle[2][32][32] = {};  // which shuffle (per-thread count) wrote each slot
#if OM_EMU_ASAN
  void* fake_stack = nullptr;
#endif
};

std::vector<Fiber>& fiber_pool(int n) {
  thread_local std::vector<Fiber> pool;
  while (static_cast<int>(pool.size()) < n) {
    Fiber f;
    void* p = mmap(nullptr, kFiberStack + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) fail("cannot map a %zu-byte fiber stack", kFiberStack);
    mprotect(p, kPage, PROT_NONE);
    f.stack = static_cast<char*>(p) + kPage;
    pool.push_back(f);
  }
  return pool;
}

void set_thread_index(int t) {
  const unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx.x = static_cast<unsigned>(t) % bx;
  threadIdx.y = static_cast<unsigned>(t) / bx % by;
  threadIdx.z = static_cast<unsigned>(t) / (bx * by);
}

// Switches from the running fiber to the scheduler.
void to_scheduler(Fiber& f, BlockRun* r, bool exiting) {
#if OM_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, nullptr, 0);
  om_emu_switch(&f.sp, r->sched_sp);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  (void)exiting;
  om_emu_switch(&f.sp, r->sched_sp);
#endif
}

// A fiber's first frame: runs the kernel body for its thread, then leaves for good.
[[noreturn]] void fiber_main() {
  BlockRun* r = t_run;
#if OM_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  (*r->body)();
  Fiber& f = (*r->fibers)[static_cast<size_t>(r->current)];
  f.st = FiberState::kDone;
  to_scheduler(f, r, true);
  __builtin_unreachable();
}

// A fresh fiber's stack: six zero registers for om_emu_switch to pop, then fiber_main as the return
// address, then a zero "return address" so fiber_main starts with the stack alignment of a call.
void* initial_sp(char* stack) {
  auto top = reinterpret_cast<uintptr_t>(stack + kFiberStack) & ~uintptr_t{15};
  auto* words = reinterpret_cast<uintptr_t*>(top);
  words[-1] = 0;
  words[-2] = reinterpret_cast<uintptr_t>(&fiber_main);
  for (int i = 3; i <= 8; ++i) words[-i] = 0;
  return words - 8;
}

// Switches from the running fiber back to the scheduler, leaving it in state `st`.
void yield(FiberState st) {
  BlockRun* r = t_run;
  if (r == nullptr) fail("__syncthreads, __syncwarp or a shuffle outside a kernel");
  Fiber& f = (*r->fibers)[static_cast<size_t>(r->current)];
  f.st = st;
  to_scheduler(f, r, false);
}

const char* state_name(FiberState s) {
  switch (s) {
    case FiberState::kRunnable: return "runnable";
    case FiberState::kBlockWait: return "__syncthreads";
    case FiberState::kWarpWait: return "__syncwarp/shuffle";
    case FiberState::kDone: return "exited";
  }
  return "?";
}

// The order in which a block's runnable threads run between barriers. A missing barrier shows when a
// reader runs before its writer (it reads the fresh NaN bytes or a stale value), so first-to-last
// catches a thread reading what a higher-numbered thread wrote and last-to-first the other direction.
// OM_EMU_THREAD_ORDER: "forward" (every block first to last), "reverse" (every block last to first), or
// unset / "alternate" (the default): block b of the k-th launch in this process runs last to first
// when k + b is odd (b the block's linear index), so every multi-block launch, and successive launches
// of a one-block kernel, meet both orders in one test run. Any other value is a fatal error.
enum class ThreadOrder { kForward, kReverse, kAlternate };

ThreadOrder thread_order() {
  static const ThreadOrder order = [] {
    const char* v = std::getenv("OM_EMU_THREAD_ORDER");
    if (v == nullptr || std::strcmp(v, "alternate") == 0) return ThreadOrder::kAlternate;
    if (std::strcmp(v, "forward") == 0) return ThreadOrder::kForward;
    if (std::strcmp(v, "reverse") == 0) return ThreadOrder::kReverse;
    fail("OM_EMU_THREAD_ORDER=%s: expected forward, reverse or alternate (the default)", v);
  }();
  return order;
}

bool reverse_block(uint64_t launch, uint64_t block) {
  switch (thread_order()) {
    case ThreadOrder::kForward: return false;
    case ThreadOrder::kReverse: return true;
    case ThreadOrder::kAlternate: return ((launch + block) & 1u) != 0;
  }
  return false;
}

void run_block(BlockRun& r, bool reverse) {
  std::vector<Fiber>& fibers = *r.fibers;
  for (int t = 0; t < r.n; ++t) {
    Fiber& f = fibers[static_cast<size_t>(t)];
    f.sp = initial_sp(f.stack);
    f.st = FiberState::kRunnable;
    f.shuffles = 0;
    f.async_open.clear();  // a block's copies never outlive it (the last block's unwaited ones are dropped)
    f.async_groups.clear();
    for (int k = 0; k < 2; ++k) r.slot_shuffle[k][t / 32][t % 32] = ~0u;
  }
  const int warps = (r.n + 31) / 32;
  for (;;) {
    for (int i = 0; i < r.n; ++i) {
      const int t = reverse ? r.n - 1 - i : i;
      Fiber& f = fibers[static_cast<size_t>(t)];
      if (f.st != FiberState::kRunnable) continue;
      r.current = t;
      set_thread_index(t);
#if OM_EMU_ASAN
      __sanitizer_start_switch_fiber(&r.fake_stack, f.stack, kFiberStack);
      om_emu_switch(&r.sched_sp, f.sp);
      __sanitizer_finish_switch_fiber(r.fake_stack, nullptr, nullptr);
#else
      om_emu_switch(&r.sched_sp, f.sp);
#endif
      if (r.trapped) return;  // __trap: the grid stops (its other threads are abandoned)
    }
    int live = 0, at_block = 0;
    for (int t = 0; t < r.n; ++t) {
      const FiberState st = fibers[static_cast<size_t>(t)].st;
      live += st != FiberState::kDone;
      at_block += st == FiberState::kBlockWait;
    }
    if (live == 0) return;
    bool released = false;
    for (int w = 0; w < warps; ++w) {
      int lanes = 0, waiting = 0;
      for (int t = 32 * w; t < std::min(r.n, 32 * w + 32); ++t) {
        const FiberState st = fibers[static_cast<size_t>(t)].st;
        lanes += st != FiberState::kDone;
        waiting += st == FiberState::kWarpWait;
      }
      if (lanes > 0 && waiting == lanes) {
        for (int t = 32 * w; t < std::min(r.n, 32 * w + 32); ++t) {
          Fiber& f = fibers[static_cast<size_t>(t)];
          if (f.st == FiberState::kWarpWait) f.st = FiberState::kRunnable;
        }
        released = true;
      }
    }
    if (!released && at_block == live) {
      for (int t = 0; t < r.n; ++t) {
        Fiber& f = fibers[static_cast<size_t>(t)];
        if (f.st == FiberState::kBlockWait) f.st = FiberState::kRunnable;
      }
      released = true;
    }
    if (!released) {
      char who[768] = "";
      size_t used = 0;
      for (int t = 0; t < r.n && used < 600; ++t) {
        used += static_cast<size_t>(std::snprintf(who + used, sizeof who - used, " %d:%s", t,
                                                  state_name(fibers[static_cast<size_t>(t)].st)));
      }
      fail("kernel %s, block (%u, %u, %u): the threads wait at different barriers (a hang or undefined behaviour "
           "on a GPU):%s",
           r.name, blockIdx.x, blockIdx.y, blockIdx.z, who);
    }
  }
}

void run_grid(const char* name, const LaunchConfig& cfg, const std::function<void()>& body) {
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  BlockRun r;
  r.name = name;
  r.body = &body;
  r.fibers = &fiber_pool(n);
  r.n = n;
  Mapping smem;
  if (cfg.smem > 0) {
    smem = map_guarded(cfg.smem, Kind::kPinned);
    // Shared memory starts at the mapping's data; make it 128-byte aligned as the GPU's.
    r.smem = reinterpret_cast<unsigned char*>(smem.data);
  }
  Mapping static_smem = map_guarded(kStaticSmemLimit, Kind::kPinned);
  if (static_smem.base == nullptr) fail("cannot map %zu bytes of static shared memory", kStaticSmemLimit);
  r.static_smem = reinterpret_cast<unsigned char*>(static_smem.data);
  BlockRun* saved = t_run;
  t_run = &r;
  blockDim = cfg.block;
  gridDim = cfg.grid;
  static uint64_t launches = 0;  // this process's kernel launches (they run one at a time, under the queue's lock)
  const uint64_t launch = launches++;
  uint64_t block = 0;
  for (unsigned z = 0; z < cfg.grid.z; ++z) {
    for (unsigned y = 0; y < cfg.grid.y; ++y) {
      for (unsigned x = 0; x < cfg.grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        if (r.smem != nullptr) std::memset(r.smem, kUninitialised, cfg.smem);
        std::memset(r.static_smem, kUninitialised, g_static_shared_bytes);  // the reserved part (the rest is fresh)
        run_block(r, reverse_block(launch, block++));
        if (r.trapped) break;
      }
      if (r.trapped) break;
    }
    if (r.trapped) break;
  }
  t_run = saved;
  if (smem.base != nullptr) munmap(smem.base, smem.region);
  munmap(static_smem.base, static_smem.region);
}

}  // namespace

// ---- emu.h -------------------------------------------------------------------------------------------
void fail(const char* fmt, ...) {
  char where[512];
  describe_running(where, sizeof where);
  std::fprintf(stderr, "cuda_emu: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, " [in %s]\n", where);
  std::fflush(stderr);
  std::abort();
}

void sync_block() { yield(FiberState::kBlockWait); }

void sync_warp(unsigned mask) {
  if (mask != 0xffffffffu) fail("__syncwarp(0x%x): the emulator supports the full mask only", mask);
  yield(FiberState::kWarpWait);
}

uint64_t shuffle(unsigned mask, uint64_t bits, int src_lane) {
  if (mask != 0xffffffffu) fail("shuffle with mask 0x%x: the emulator supports the full mask only", mask);
  BlockRun* r = t_run;
  if (r == nullptr) fail("a warp shuffle outside a kernel");
  const int t = r->current, warp = t / 32, lane = t % 32;
  const uint32_t k = (*r->fibers)[static_cast<size_t>(t)].shuffles++;
  r->slots[k % 2][warp][lane] = bits;
  r->slot_shuffle[k % 2][warp][lane] = k;
  yield(FiberState::kWarpWait);
  // The source lane must have made this same shuffle (not exited before it, not elsewhere).
  if (src_lane < 0 || src_lane >= 32 || 32 * warp + src_lane >= r->n || r->slot_shuffle[k % 2][warp][src_lane] != k) {
    fail("lane %d of warp %d reads lane %d in its shuffle #%u, which that lane did not make (it exited or "
         "diverged: undefined on a GPU)",
         lane, warp, src_lane, k);
  }
  return r->slots[k % 2][warp][src_lane];
}

namespace {
Fiber& running_fiber(const char* what) {
  BlockRun* r = t_run;
  if (r == nullptr) fail("%s outside a kernel", what);
  return (*r->fibers)[static_cast<size_t>(r->current)];
}
}  // namespace

void cp_async(void* dst, const void* src, size_t bytes, size_t src_bytes) {
  Fiber& f = running_fiber("cp.async");
  if (src_bytes > bytes) fail("cp.async of %zu bytes with a source size of %zu", bytes, src_bytes);
  const bool src_misaligned = src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % bytes != 0;
  if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 || src_misaligned) {
    fail("cp.async of %zu bytes from %p to %p: both addresses must be %zu-byte aligned", bytes, src, dst, bytes);
  }
  if (is_device(dst)) fail("cp.async to %p: the destination is global memory, not shared memory", dst);
  if (src_bytes > 0 && !device_accessible(src, src_bytes)) {
    fail("cp.async from %p: the source is not memory a kernel may read (device or page-locked host)", src);
  }
  f.async_open.push_back({static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes, src_bytes});
}

void cp_async_commit() {
  Fiber& f = running_fiber("cp.async.commit_group");
  f.async_groups.push_back(std::move(f.async_open));
  f.async_open.clear();
}

void cp_async_wait(int pending) {
  Fiber& f = running_fiber("cp.async.wait_group");
  const size_t keep = static_cast<size_t>(pending < 0 ? 0 : pending);
  size_t done = 0;
  for (; f.async_groups.size() - done > keep; ++done) {
    for (const AsyncCopy& c : f.async_groups[done]) {
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, c.src_bytes);
      std::memset(c.dst + c.src_bytes, 0, c.bytes - c.src_bytes);
    }
  }
  f.async_groups.erase(f.async_groups.begin(), f.async_groups.begin() + static_cast<std::ptrdiff_t>(done));
}

void* dynamic_smem() {
  BlockRun* r = t_run;
  if (r == nullptr || r->smem == nullptr) fail("extern __shared__ memory used by a kernel launched with 0 bytes of it");
  return r->smem;
}

size_t reserve_static_shared(size_t bytes, size_t align) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const size_t offset = (g_static_shared_bytes + align - 1) / align * align;
  if (offset + bytes > kStaticSmemLimit) {
    fail("static __shared__ declarations need more than %zu bytes in all (the emulator gives every kernel one "
         "48 KiB area)",
         kStaticSmemLimit);
  }
  g_static_shared_bytes = offset + bytes;
  return offset;
}

void* static_shared_base() {
  BlockRun* r = t_run;
  if (r == nullptr) fail("a __shared__ variable used outside a kernel");
  return r->static_smem;
}

void trap() {
  BlockRun* r = t_run;
  char where[512];
  describe_running(where, sizeof where);
  std::fprintf(stderr, "cuda_emu: __trap() in %s: unspecified launch failure\n", where);
  std::fflush(stderr);
  if (r == nullptr) std::abort();
  state().sticky = cudaErrorLaunchFailure;
  r->trapped = true;
  Fiber& f = (*r->fibers)[static_cast<size_t>(r->current)];
  f.st = FiberState::kDone;
  to_scheduler(f, r, true);
  __builtin_unreachable();
}

void check_wmma_pointer(const void* p, size_t ldm_bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm_bytes % 16 != 0) {
    fail("wmma::%s at %p with a %zu-byte leading dimension: WMMA needs a 32-byte-aligned pointer and a leading "
         "dimension that is a multiple of 16 bytes",
         what, p, ldm_bytes);
  }
}

void enqueue(std::function<void()> op, const char* what, cudaStream_t stream, bool launch) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.capture != nullptr) {  // recorded into the graph, queued at each of its launches
    if (!captured_stream(s, stream)) {
      fail("%s issued on stream %p while stream %p is being captured, and that stream takes no part in the "
           "capture (join it with an event recorded on a capturing stream): a GPU would run it once, now (or "
           "refuse it: the legacy default stream), not at each launch of the graph",
           what, static_cast<void*>(stream), s.capture->stream);
    }
    s.capture->ops.emplace_back(std::move(op), what);
    ++s.capture->issued[stream_key(stream)];
    return;
  }
  s.issued_since_wait = true;
  if (launch) ++s.launches;
  const uint64_t id = s.next_id++;
  s.last_id = id;
  const void* key = stream_key(stream);
  if (key != nullptr) {
    if (auto it = s.late.find(key); it != s.late.end()) {
      LateStream& l = it->second;
      if (!s.early_streams) {  // held back until something waits for it
        l.ops.emplace_back(std::move(op), what);
        ++l.issued;
        return;
      }
      // As early as allowed: right after the later of its stream's previous work and what it waited for.
      const auto at = std::max(queue_position(s, l.after), queue_position(s, l.last));
      s.queue.insert(s.queue.begin() + (at + 1), Queued{std::move(op), what, id});
      l.last = id;
      return;
    }
  }
  s.queue.push_back(Queued{std::move(op), what, id});
}

std::ptrdiff_t queue_position(State& s, uint64_t id) {
  if (id == 0) return -1;
  for (size_t i = 0; i < s.queue.size(); ++i) {
    if (s.queue[i].id == id) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;  // already run
}

bool set_early_streams(bool early) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  release_all_late(s);
  for (auto& [key, l] : s.late) l.after = l.last = 0;
  const bool was = s.early_streams;
  s.early_streams = early;
  return was;
}

void early_wait(State& s, const void* stream, uint64_t id) {
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const auto it = s.late.find(stream);
  if (it == s.late.end() || !s.early_streams) return;
  if (queue_position(s, id) > queue_position(s, it->second.after)) it->second.after = id;
}

void release_late(State& s, const void* from, uint64_t through, const void* into) {
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const auto src = s.late.find(from);
  if (src == s.late.end()) return;
  const auto dst = into != nullptr && into != from ? s.late.find(into) : s.late.end();
  LateStream& l = src->second;
  while (!l.ops.empty() && l.moved < through) {
    if (dst != s.late.end()) {
      dst->second.ops.push_back(std::move(l.ops.front()));
      ++dst->second.issued;
    } else {
      s.queue.push_back(Queued{std::move(l.ops.front().first), std::move(l.ops.front().second), s.next_id++});
    }
    l.ops.pop_front();
    ++l.moved;
  }
}

void release_all_late(State& s) {
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  for (auto& [key, l] : s.late) release_late(s, key, UINT64_MAX, nullptr);
}

const void* stream_key(cudaStream_t stream) { return stream == cudaStreamLegacy ? nullptr : stream; }

bool captured_stream(State& s, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  return s.capture != nullptr && s.capture->streams.count(stream_key(stream)) != 0;
}

cudaError_t forbidden_in_capture(State& s) {
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.capture == nullptr) return cudaSuccess;
  s.capture->error = cudaErrorStreamCaptureUnsupported;
  return cudaErrorStreamCaptureUnsupported;
}

cudaError_t flush() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.queue.empty()) return s.sticky;
  install_fault_handler();
  ensure_signal_stack();
  DeviceOpen open(s);
  while (!s.queue.empty()) {
    Queued q = std::move(s.queue.front());
    s.queue.pop_front();
    t_running = q.what.c_str();
    q.op();
    t_running = nullptr;
    if (s.sticky != cudaSuccess) s.queue.clear();
  }
  return s.sticky;
}

bool device_accessible(const void* p, size_t bytes) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const Mapping* m = find_mapping(s, p, false);
  if (m == nullptr) return false;
  const auto a = reinterpret_cast<uintptr_t>(p), d = reinterpret_cast<uintptr_t>(m->data);
  return bytes == 0 ? a <= d + m->bytes : a + bytes <= d + m->bytes;
}

bool is_device(const void* p) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  const Mapping* m = find_mapping(s, p, false);
  return m != nullptr && m->kind == Kind::kDevice;
}

void set_last_error(cudaError_t e) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  s.last_error = e;
}

void submit(const char* name, const void* fn, const LaunchConfig& cfg, cudaStream_t stream, std::function<void()> body) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mu);
  if (s.sticky != cudaSuccess) {
    s.last_error = s.sticky;
    return;
  }
  const dim3 g = cfg.grid, b = cfg.block;
  const uint64_t threads = uint64_t{b.x} * b.y * b.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
    s.last_error = cudaErrorInvalidConfiguration;
    return;
  }
  if (cfg.smem > kStaticSmemLimit) {
    const auto it = s.max_dynamic_smem.find(fn);
    if (cfg.smem > kOptInSmemLimit || it == s.max_dynamic_smem.end() || static_cast<size_t>(it->second) < cfg.smem) {
      s.last_error = cudaErrorInvalidValue;
      return;
    }
  }
  enqueue([name, cfg, body = std::move(body)] { run_grid(name, cfg, body); }, name, stream);
}

}  // namespace om_emu
