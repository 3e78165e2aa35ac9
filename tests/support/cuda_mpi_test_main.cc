// main() for CUDA test binaries that also need MPI (NcclComm exchanges its id over MPI). Run as a single
// process (MPI singleton: a one-rank NCCL communicator on cuda:0) or under mpirun on one host, one GPU per
// rank (rank r takes cuda:r; the emulator shows several with OM_EMU_DEVICES, cuda_emu/README.md).
// Exits with kSkipReturnCode (ctest: skipped) when no CUDA device is usable, or when the host has fewer
// GPUs than the job has ranks, after finalizing MPI, so a GPU-less host still proves the binary links,
// loads and initialises MPI. Every rank sees the same device count, so every rank takes the same branch.
#include <mpi.h>

#include <cstdio>

#include "core/buffer.h"
#include "core/check.h"
#include "core/device.h"
#include "tests/support/test_support.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  om::set_process_rank(rank);
  const int gpus = om::cuda_available() ? om::device_memory::cuda_device_count() : 0;
  if (gpus < size) {
    if (rank == 0) {
      std::printf("%d CUDA device(s) on this host for %d rank(s) (one GPU per rank): skipping %s\n", gpus, size,
                  argv[0]);
    }
    MPI_Finalize();
    return om::kSkipReturnCode;
  }
  testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  // One verdict for the job: a rank whose test failed fails every rank's exit status.
  int worst = result;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
