// Op profiler (ortho_megatron --profile-steps N, bench/gpu_perf.sh): what each kind of op costs in a
// training step, so that performance work starts from a measurement even on a node without nsys or ncu.
//
// Every op dispatch of kernels/*.cc, every Comm collective and copy_async / zero_async open a
// profiler::Scope that names the op and its least work: FLOPs (2·M·N·K for a GEMM, 0 where negligible)
// and bytes (every input read once and every output written once: the least memory traffic the op can
// have, so bytes / time is a lower bound on the bandwidth it reached).
// Off (the default) a Scope costs one relaxed atomic load. On, each op adds a little host time (two event
// records, a map update), so profiled steps run a bit slower than others: bench/gpu_perf.sh profiles
// warm-up steps only. On:
//   CUDA         two CUDA events recorded on the op's stream around it (the host does not wait);
//                Collect() waits for the device and reads the elapsed device time of each pair.
//   CPU          the wall time of the scope (CPU ops are done when they return).
//   collectives  in the Comm's profile_context(): the host's wall time for MpiComm (it returns when its
//                result is ready), the device time on the comm's stream for NcclComm (stream-ordered);
//                bytes = the message size, so their GB/s is nccl-tests' algbw.
// Nesting: only the outermost Scope of a thread records (an op built from other ops, such as a
// vocab-parallel cross-entropy's pieces, is counted once per leaf the caller opened, never twice).
// So Σ seconds over ops is the time the device spent inside ops; the step's wall time minus that sum is
// what the device spent waiting for the host (launch overhead, host work, synchronisation).
// Detail: a Scope may also name a finer row (matmul passes its shape, transposes and types), recorded beside
// its op's: CollectDetails() returns those rows, each named "op detail", and FormatTable prints them under
// the op table, so a step's GEMM time shows per shape. Their sums are the op's (never added to it twice).
// Thread safety: Scopes may be opened from any thread; the records are behind a mutex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"

namespace om::profiler {

bool enabled();
void set_enabled(bool on);

class Scope {
 public:
  // `name` is the row of the table (e.g. "matmul", "attention_backward", "comm:all_reduce"); `detail`, if
  // not empty, the finer row under it (build it only when enabled(): it costs a string otherwise).
  // A CPU `ctx` (or kind collective) is timed by the wall clock.
  Scope(const ExecContext& ctx, const char* name, double flops, double bytes, std::string detail = {});
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool active_ = false;
  ExecContext ctx_;
  const char* name_ = nullptr;
  std::string detail_;
  double flops_ = 0, bytes_ = 0;
  double start_s_ = 0;        // wall clock (CPU ops)
  void* start_event_ = nullptr;  // CUDA ops
};

struct OpStats {
  std::string name;
  int64_t calls = 0;
  double seconds = 0;  // device time (CUDA) or wall time (CPU, collectives)
  double flops = 0, bytes = 0;
};

// Waits for every recorded CUDA event, then returns the totals since the last Reset, sorted by time
// (largest first). Does not reset.
std::vector<OpStats> Collect();
// The detail rows (names "op detail"), sorted as Collect's; they split rows of Collect, not add to them.
std::vector<OpStats> CollectDetails();
void Reset();  // both

// A table of `ops` over `steps` steps of `step_seconds` wall time each (the mean): per op the calls and
// milliseconds per step, its share of the step, TFLOP/s and the % of `peak_flops`, GB/s and the % of
// `peak_bytes_per_s`; then the sum and the rest of the step ("outside ops": the device idle, waiting
// for the host); then, if `details` is not empty, a blank line, a header and the detail rows, in the
// same columns with a wider name. Lines end with '\n'.
std::string FormatTable(const std::vector<OpStats>& ops, int64_t steps, double step_seconds, double peak_flops,
                        double peak_bytes_per_s, const std::vector<OpStats>& details = {});

}  // namespace om::profiler
