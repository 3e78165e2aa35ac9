// MPI for a whole process, shared by the mains that may run under mpirun (ortho_megatron, ortho_eval).
// Started by a launcher (Open MPI's mpirun, PMIx, PMI-1/2: MPICH's Hydra, srun --mpi=pmi2|pmix): MPI_Init
// at construction, MPI_Finalize at destruction, rank and size of MPI_COMM_WORLD. Started directly (one
// process): no MPI at all, rank 0 of 1. A single process needs none, and an Open MPI singleton's MPI_Init
// costs ~0.6 s of start-up (it starts a helper daemon).
#pragma once

#include <mpi.h>

#include <cstdlib>

namespace om {

// True when an MPI launcher started this process, whatever the number of ranks.
inline bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

struct MpiSession {
  MpiSession(int* argc, char*** argv) : initialized(launched_by_mpi()) {
    if (!initialized) return;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  ~MpiSession() {
    if (initialized) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  bool initialized = false;
  int rank = 0, size = 1;
};

}  // namespace om
