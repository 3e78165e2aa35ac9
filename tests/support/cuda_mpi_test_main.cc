// main() for CUDA test binaries that also need MPI (NcclComm exchanges its id over MPI). Run as a
// single process (MPI singleton): with the one GPU of a host, a one-rank NCCL communicator is what
// can run here; multi-rank NCCL tests come with the CUDA trainer and run under mpirun.
// Exits with kSkipReturnCode (ctest: skipped) when no CUDA device is usable, after finalizing MPI,
// so a GPU-less host still proves the binary links, loads and initialises MPI.
#include <mpi.h>

#include <cstdio>

#include "core/check.h"
#include "core/device.h"
#include "tests/support/test_support.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  om::set_process_rank(rank);
  if (!om::cuda_available()) {
    std::printf("no CUDA device on this host: skipping %s\n", argv[0]);
    MPI_Finalize();
    return om::kSkipReturnCode;
  }
  testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  MPI_Finalize();
  return result;
}
