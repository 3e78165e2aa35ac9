// StartupTimeline: where the time to the first training step goes (issue 11's "time to first step ≤ 5 s";
// README "Time to first step"). Built at main's entry, it records the process's age then (exec, the
// dynamic loader, static constructors: /proc/self/stat's start time against /proc/uptime, 10 ms
// resolution on Linux; 0 where /proc is missing) and then the wall time of each named phase, in order,
// each Mark closing the phase that began at the previous one.
//   StartupTimeline t;                       // main's entry
//   t.Mark("mpi");                           // MPI_Init took ...
//   t.Mark("model");  ...  t.Mark("first step");  // Trainer: allocation, weights, optimizer, step
//   t.Summary()  → "4.21 s: exec 0.20, mpi 0.31, ..., first step 0.80"
//   t.Json()     → {"total_s": 4.21, "phases": [["exec", 0.20], ["mpi", 0.31], ...]}
// Notes are work that ran inside or beside the phases, timed on its own and not added to the total
// (OrthoAdam's rotation draw on a thread of its own, and how long the first step waited for it):
//   t.Note("rotations drawn", 3.10)  → Summary "... first step 1.20 (rotations drawn 3.10)",
//                                      Json adds "notes": [["rotations drawn", 3.10]] (only with notes)
// Phase names are plain words (written into JSON unescaped). Not thread-safe; one per process.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/timer.h"

namespace om {

class StartupTimeline {
 public:
  StartupTimeline();
  void Mark(const char* phase);
  void Note(const char* what, double seconds);
  double Total() const;  // the process's age at the last Mark
  const std::vector<std::pair<std::string, double>>& phases() const { return phases_; }
  const std::vector<std::pair<std::string, double>>& notes() const { return notes_; }
  std::string Summary() const;
  std::string Json() const;

 private:
  Timer since_mark_;
  std::vector<std::pair<std::string, double>> phases_;  // ("exec", age at construction) first
  std::vector<std::pair<std::string, double>> notes_;
};

// The age of this process in seconds from /proc (see above), or 0 when it cannot be read.
double process_age_seconds();

}  // namespace om
