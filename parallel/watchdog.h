// Hang watchdog (--comm-timeout-s): a job whose ranks stop communicating is aborted with a message from
// every rank that says where it is, instead of hanging until the scheduler's time limit.
//
// Every Comm collective records itself here (comm name, op, bytes, the trainer's current step, start
// time) while it runs and as "last completed" when it returns; the trainer sets the step. A
// CollectiveWatchdog thread checks once per tick (≤ 1 s) and fires when
//   in a collective:   the current collective has run for more than timeout_s (another rank is dead,
//                      stuck or far behind), or
//   armed and idle:    the trainer is inside a training step (arm()/disarm() around it) and no collective
//                      has started for more than timeout_s since the last one ended (this rank is stuck
//                      outside communication: a hung kernel, a dead file system, a debugger).
// Firing prints one line to stderr, tagged with rank and host:
//   the stuck collective (or "none in flight") and the last completed one, each as
//   '<comm> <op>' of N bytes at step S, and how long it has waited,
// waits min(timeout_s, 5 s) and ends the process with kCommTimeoutExitCode (std::_Exit: no MPI call
// from this thread, no destructors that could block). With one timeout on every rank, the ranks waiting
// in a collective and the rank that keeps them waiting all fire within about one tick of each other,
// so the wait lets every rank print before mpirun, seeing the first exit, stops the others (under srun
// each rank's own watchdog ends it).
// Between steps (logging, validation, checkpoint saves) only the in-collective rule applies, so a slow
// save does not trip the idle rule; the in-collective rule covers a save whose ranks disagree.
// On the GPU the tp and dp collectives are NCCL's, stream-ordered (parallel/nccl_comm.h): the
// in-collective rule sees only their enqueue, and a peer that never joins them shows as this rank's one
// wait of the step (for the gradient norm) lasting past timeout_s, which the idle rule catches; the
// message then names the last collective enqueued as the last completed. A step whose GPU work alone
// takes longer than timeout_s would trip it too: keep --comm-timeout-s well above the step time.
// Thread safety: the record functions take a mutex (a handful of collectives per layer and step);
// one watchdog per process.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace om {

// Exit status of a process stopped by the watchdog (launch/train_main.cc lists every exit status).
inline constexpr int kCommTimeoutExitCode = 3;

namespace collective_record {
void begin(const std::string& comm, const char* op, uint64_t bytes);  // called by Comm
void end();
void set_step(int64_t step);  // the step the trainer is working on (1-based), for the messages
void arm();                   // inside a training step: the idle rule applies
void disarm();
}  // namespace collective_record

class CollectiveWatchdog {
 public:
  // Starts the thread. REQUIRES timeout_s > 0. `identity`: "rank 3 (host node7)" for the message.
  CollectiveWatchdog(double timeout_s, std::string identity);
  ~CollectiveWatchdog();  // stops and joins the thread
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

 private:
  void Loop();
  double timeout_s_;
  std::string identity_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace om
