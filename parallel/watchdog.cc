#include "parallel/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/check.h"

namespace om {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kGraceSeconds = 5.0;

struct Record {
  std::string comm;
  const char* op = "";
  uint64_t bytes = 0;
  int64_t step = 0;
};

struct State {
  std::mutex mu;
  bool in_flight = false;
  bool have_last = false;
  bool armed = false;
  Record current, last;
  int64_t step = 0;
  Clock::time_point started = Clock::now();   // of the current collective
  Clock::time_point idle_since = Clock::now(); // end of the last collective, or arm()
};

State& state() {
  static State s;
  return s;
}

std::string describe(const Record& r) {
  return format_message("'%s %s' of %llu bytes at step %lld", r.comm.c_str(), r.op,
                        static_cast<unsigned long long>(r.bytes), static_cast<long long>(r.step));
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

namespace collective_record {

void begin(const std::string& comm, const char* op, uint64_t bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.in_flight = true;
  s.current = Record{comm, op, bytes, s.step};
  s.started = Clock::now();
}

void end() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.in_flight = false;
  s.last = s.current;
  s.have_last = true;
  s.idle_since = Clock::now();
}

void set_step(int64_t step) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.step = step;
}

void arm() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.armed = true;
  s.idle_since = Clock::now();
}

void disarm() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.armed = false;
}

}  // namespace collective_record

CollectiveWatchdog::CollectiveWatchdog(double timeout_s, std::string identity)
    : timeout_s_(timeout_s), identity_(std::move(identity)) {
  OM_CHECK(timeout_s > 0, "CollectiveWatchdog: timeout %g s must be > 0", timeout_s);
  thread_ = std::thread([this] { Loop(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  stop_ = true;
  thread_.join();
}

void CollectiveWatchdog::Loop() {
  // Checked every tick; a firing comes at most one tick after the timeout.
  const auto tick = std::chrono::duration<double>(std::clamp(timeout_s_ / 10.0, 0.05, 1.0));
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::duration_cast<Clock::duration>(tick));
    State& s = state();
    std::string message;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      const std::string last = s.have_last ? describe(s.last) : "none";
      if (s.in_flight && seconds_since(s.started) > timeout_s_) {
        message = format_message(
            "collective %s has not finished after %.0f s (--comm-timeout-s %g): another rank is dead, stuck or far "
            "behind. Last completed collective: %s",
            describe(s.current).c_str(), seconds_since(s.started), timeout_s_, last.c_str());
      } else if (!s.in_flight && s.armed && seconds_since(s.idle_since) > timeout_s_) {
        message = format_message(
            "no collective started for %.0f s during step %lld (--comm-timeout-s %g): this rank is stuck outside "
            "communication and keeps the others waiting. Last completed collective: %s",
            seconds_since(s.idle_since), static_cast<long long>(s.step), timeout_s_, last.c_str());
      }
    }
    if (message.empty()) continue;
    std::fprintf(stderr, "ortho_megatron [%s]: hang watchdog: %s. Aborting the job (exit %d).\n", identity_.c_str(),
                 message.c_str(), kCommTimeoutExitCode);
    std::fflush(stderr);
    // A grace period before exiting: the other ranks' watchdogs fire within about a tick and print
    // theirs before mpirun, seeing this exit, stops the job.
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(timeout_s_, kGraceSeconds)));
    std::_Exit(kCommTimeoutExitCode);
  }
}

}  // namespace om
