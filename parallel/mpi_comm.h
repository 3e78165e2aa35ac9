// MpiComm: the Comm backend for CPU tensors (f32, f64, i32, i64) over an MPI communicator.
// Determinism: sums are computed by this code, not by MPI. MPI_Allreduce's combination order is
// implementation-defined (Open MPI picks the algorithm by message size and group size), so its float
// result can change with the library version or the message size, and the standard does not
// promise every rank the same bits. Instead:
//   reduce_scatter = MPI_Alltoall (rank r receives chunk r from every rank) + a local sum of the
//                    size() received chunks in rank order: ((x_0 + x_1) + x_2) + …
//   all_reduce     = the same reduce-scatter on chunks of ⌈N/n⌉ or ⌊N/n⌋ elements, then MPI_Allgatherv.
// So every rank holds identical bits, the result is a documented function of the inputs (the same
// for any MPI algorithm), and all_reduce(x)[chunk r] == reduce_scatter(x) on rank r bit for bit when
// n divides N. The traffic equals the ring model in comm.h (all-to-all: (n−1)/n·B per rank).
// Max uses the same path (NaN propagates). Integer sums must not overflow.
// Ownership: kOwned frees the communicator in the destructor (skipped if MPI is already finalized);
// kOwned also installs MPI_ERRORS_RETURN so failures reach OM_MPI_CHECK, which reports rank and host.
// REQUIRES: MPI initialised; one collective at a time (not thread-safe).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/check.h"
#include "parallel/comm.h"

namespace om {

// MPI_Error_string of an MPI return code, with the code: "MPI_ERR_COMM: invalid communicator (5)".
std::string mpi_error_string(int code);
// This process's rank in `comm` and the number of ranks in it (OM_MPI_CHECKed).
int mpi_comm_rank(MPI_Comm comm);
int mpi_comm_size(MPI_Comm comm);

}  // namespace om

// Fatal on any MPI return code but MPI_SUCCESS; the message names rank, host and the call.
#define OM_MPI_CHECK(expr) OM_CHECK_GEN(expr, MPI_SUCCESS, ::om::mpi_error_string)

namespace om {

enum class CommOwnership : uint8_t { kBorrowed, kOwned };

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm comm, std::string name, CommOwnership ownership);
  ~MpiComm() override;

  MPI_Comm handle() const { return comm_; }

 private:
  void do_all_reduce(TensorView buf, ReduceOp op) override;
  void do_reduce_scatter(ConstTensorView in, TensorView out) override;
  void do_all_gather(ConstTensorView in, TensorView out) override;
  void do_broadcast(TensorView buf, int root) override;
  void do_barrier() override;

  // size() received chunks for the local rank-order reduction; grows to the largest call, kept.
  // uint64_t elements keep it aligned for every supported dtype.
  void* scratch(size_t bytes);

  MPI_Comm comm_ = MPI_COMM_NULL;
  CommOwnership ownership_ = CommOwnership::kBorrowed;
  std::vector<uint64_t> scratch_;
};

}  // namespace om
