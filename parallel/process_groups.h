// ProcessGroups: the communicators of one process for a ParallelDims layout, held as a value and
// passed to the layers and the optimizer that need them (DESIGN.md invariant 7, STYLE.md §12:
// nothing calls a global get_tp_group()).
//   world  all world_size ranks (a duplicate of MPI_COMM_WORLD, so our traffic never matches
//          another library's messages), rank = dp_rank · tp + tp_rank
//   tp     the tp ranks of this model replica: {dp_rank · tp + t : t = 0..tp−1}, group rank = t
//   dp     the replicas of this tp rank:       {d · tp + tp_rank : d = 0..dp−1}, group rank = d
// Ownership: move-only; owns the three communicators and frees them on destruction (which, like
// MPI_Comm_free, every rank should reach). REQUIRES: MPI initialised before Create and finalised
// only after every ProcessGroups is destroyed.
#pragma once

#include <memory>

#include "core/status.h"
#include "parallel/comm.h"
#include "parallel/parallel_dims.h"

namespace om {

class ProcessGroups {
 public:
  // Collective over MPI_COMM_WORLD. InvalidArgument when dims.world_size differs from the number of
  // processes the job was started with (the message names both and the mpirun -np to use).
  static StatusOr<ProcessGroups> Create(const ParallelDims& dims);

  ProcessGroups(ProcessGroups&&) noexcept = default;
  ProcessGroups& operator=(ProcessGroups&&) noexcept = default;
  ProcessGroups(const ProcessGroups&) = delete;
  ProcessGroups& operator=(const ProcessGroups&) = delete;
  ~ProcessGroups() = default;

  const ParallelDims& dims() const { return dims_; }
  int rank() const { return rank_; }  // in the world
  int tp_rank() const { return dims_.tp_rank(rank_); }
  int dp_rank() const { return dims_.dp_rank(rank_); }

  Comm& world() { return *world_; }
  Comm& tp() { return *tp_; }
  Comm& dp() { return *dp_; }
  const Comm& world() const { return *world_; }
  const Comm& tp() const { return *tp_; }
  const Comm& dp() const { return *dp_; }

 private:
  ProcessGroups() = default;

  ParallelDims dims_;
  int rank_ = 0;
  std::unique_ptr<Comm> world_, tp_, dp_;
};

}  // namespace om
