// Helpers for MPI tests: the world rank, and the synthetic dataset (synthetic_dataset.h) written once
// by world rank 0 with every rank waiting until it is complete.
#pragma once

#include <mpi.h>

#include <string>

#include "tests/support/synthetic_dataset.h"

namespace om {

inline int mpi_world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

inline std::string shared_synthetic_dataset(const std::string& prefix, int64_t docs, int64_t doc_len) {
  if (mpi_world_rank() == 0) write_synthetic_dataset(prefix, docs, doc_len);
  MPI_Barrier(MPI_COMM_WORLD);
  return prefix;
}

}  // namespace om
