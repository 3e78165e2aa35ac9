// ProcessGroups: the communicators of one process for a ParallelDims layout, held as a value and
// passed to the layers and the optimizer that need them (DESIGN.md invariant 7, STYLE.md §12:
// nothing calls a global get_tp_group()).
//   world  all world_size ranks (a duplicate of MPI_COMM_WORLD, so our traffic never matches
//          another library's messages), rank = dp_rank · tp + tp_rank
//   tp     the tp ranks of this model replica: {dp_rank · tp + t : t = 0..tp−1}, group rank = t
//   dp     the replicas of this tp rank:       {d · tp + tp_rank : d = 0..dp−1}, group rank = d
// On CUDA (Create with a CUDA device) the tp and dp groups also get NCCL communicators over the same
// ranks, device_tp() / device_dp(), which carry the model's and the optimizer's GPU tensors; world,
// tp() and dp() stay MPI and carry host scalars (the loss, the stop flag, checkpoint agreement).
// On the CPU device_tp() / device_dp() are tp() / dp().
// Ownership: move-only; owns the communicators and frees them on destruction (which, like
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
  // `device`: where the training tensors live (CUDA: also the NCCL communicators, on that GPU;
  // Unavailable in a build without CUDA).
  static StatusOr<ProcessGroups> Create(const ParallelDims& dims, Device device = Device::Cpu());

  // This process's rank among the ranks on its node (MPI_COMM_TYPE_SHARED), for picking its GPU.
  // Collective over MPI_COMM_WORLD; REQUIRES MPI initialised.
  static int LocalRank();

  ProcessGroups(ProcessGroups&&) noexcept = default;
  ProcessGroups& operator=(ProcessGroups&&) noexcept = default;
  ProcessGroups(const ProcessGroups&) = delete;
  ProcessGroups& operator=(const ProcessGroups&) = delete;
  ~ProcessGroups() = default;

  const ParallelDims& dims() const { return dims_; }
  Device device() const { return device_; }  // the training tensors' device given to Create
  int rank() const { return rank_; }  // in the world
  int local_size() const { return local_size_; }  // the job's ranks on this node (MPI_COMM_TYPE_SHARED)
  int tp_rank() const { return dims_.tp_rank(rank_); }
  int dp_rank() const { return dims_.dp_rank(rank_); }

  Comm& world() { return *world_; }
  Comm& tp() { return *tp_; }
  Comm& dp() { return *dp_; }
  const Comm& world() const { return *world_; }
  const Comm& tp() const { return *tp_; }
  const Comm& dp() const { return *dp_; }
  // The groups for tensors on the training device (see above).
  Comm& device_tp() { return tp_device_ ? *tp_device_ : *tp_; }
  Comm& device_dp() { return dp_device_ ? *dp_device_ : *dp_; }

 private:
  ProcessGroups() = default;

  ParallelDims dims_;
  Device device_;
  int rank_ = 0;
  int local_size_ = 1;
  std::unique_ptr<Comm> world_, tp_, dp_;
  std::unique_ptr<Comm> tp_device_, dp_device_;  // NCCL on CUDA; declared last, destroyed first
};

}  // namespace om
