#include "parallel/process_groups.h"

#include <utility>

#include "core/check.h"
#include "parallel/mpi_comm.h"
#if OM_WITH_CUDA
#include "parallel/nccl_comm.h"
#endif

namespace om {

namespace {

// This process's rank among the ranks of `comm` on its node, and their number (MPI_COMM_TYPE_SHARED).
// Collective over `comm`.
struct NodePlace {
  int rank = 0, size = 1;
};
NodePlace node_place(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  OM_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  NodePlace place;
  OM_MPI_CHECK(MPI_Comm_rank(node, &place.rank));
  OM_MPI_CHECK(MPI_Comm_size(node, &place.size));
  OM_MPI_CHECK(MPI_Comm_free(&node));
  return place;
}

}  // namespace

int ProcessGroups::LocalRank() { return node_place(MPI_COMM_WORLD).rank; }

StatusOr<ProcessGroups> ProcessGroups::Create(const ParallelDims& dims, Device device) {
#if !OM_WITH_CUDA
  if (device.kind == DeviceKind::kCuda) {
    return Status::Unavailable("process groups on " + device_name(device) + ": this build has no CUDA (rebuild with "
                               "-DOM_WITH_CUDA=ON, or use --device cpu)");
  }
#endif
  int initialized = 0;
  OM_MPI_CHECK(MPI_Initialized(&initialized));
  OM_CHECK(initialized, "ProcessGroups::Create before MPI_Init");
  int world_size = 0, rank = 0;
  OM_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size));
  OM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  if (dims.world_size != world_size) {
    // Every rank sees the same sizes, so every rank returns here and none waits in a collective.
    return Status::InvalidArgument(format_message(
        "tp(%ld) * dp(%ld) = %ld processes expected but the job has world_size(%d): start it with mpirun -np %ld "
        "(or srun -n %ld), or change --tp/--dp",
        static_cast<long>(dims.tp), static_cast<long>(dims.dp), static_cast<long>(dims.world_size), world_size,
        static_cast<long>(dims.world_size), static_cast<long>(dims.world_size)));
  }
  // Re-validate: a ParallelDims can be built by hand, bypassing Make.
  OM_ASSIGN_OR_RETURN(ParallelDims checked, ParallelDims::Make(dims.tp, dims.dp, dims.world_size));

  ProcessGroups groups;
  groups.dims_ = checked;
  groups.device_ = device;
  groups.rank_ = rank;
  const int tp_rank = checked.tp_rank(rank), dp_rank = checked.dp_rank(rank);

  MPI_Comm world = MPI_COMM_NULL, tp = MPI_COMM_NULL, dp = MPI_COMM_NULL;
  OM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  groups.world_ = std::make_unique<MpiComm>(world, "world", CommOwnership::kOwned);
  groups.local_size_ = node_place(world).size;
  // Split by colour (which group) and key (the order inside it): the key is the group rank we want,
  // so MPI's numbering of each group matches the layout's tp_rank / dp_rank.
  OM_MPI_CHECK(MPI_Comm_split(world, /*color=*/dp_rank, /*key=*/tp_rank, &tp));
  groups.tp_ = std::make_unique<MpiComm>(tp, "tp", CommOwnership::kOwned);
  OM_MPI_CHECK(MPI_Comm_split(world, /*color=*/tp_rank, /*key=*/dp_rank, &dp));
  groups.dp_ = std::make_unique<MpiComm>(dp, "dp", CommOwnership::kOwned);

  OM_CHECK(groups.world_->rank() == rank && groups.world_->size() == world_size, "world dup: rank %d size %d",
           groups.world_->rank(), groups.world_->size());
  OM_CHECK(groups.tp_->rank() == tp_rank && groups.tp_->size() == checked.tp,
           "tp group: rank %d size %d, expected tp_rank %d of tp(%ld)", groups.tp_->rank(), groups.tp_->size(),
           tp_rank, static_cast<long>(checked.tp));
  OM_CHECK(groups.dp_->rank() == dp_rank && groups.dp_->size() == checked.dp,
           "dp group: rank %d size %d, expected dp_rank %d of dp(%ld)", groups.dp_->rank(), groups.dp_->size(),
           dp_rank, static_cast<long>(checked.dp));
#if OM_WITH_CUDA
  if (device.kind == DeviceKind::kCuda) {
    // Over the same MPI groups, so NCCL's ranks are the tp_rank / dp_rank above.
    groups.tp_device_ = std::make_unique<NcclComm>(tp, device, "tp");
    groups.dp_device_ = std::make_unique<NcclComm>(dp, device, "dp");
  }
#endif
  return groups;
}

}  // namespace om
