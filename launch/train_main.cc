// ortho_megatron: train a Llama model. parse options → init MPI → build → train → close.
// Exit status: 0 done, 1 a runtime failure (bad data, non-finite loss), 2 a bad flag.
#include <mpi.h>

#include <cstdio>

#include "core/check.h"
#include "core/log.h"
#include "launch/train_options.h"
#include "launch/trainer.h"

namespace {

// MPI for the whole process: a single process runs as an MPI singleton (no mpirun needed).
struct MpiSession {
  MpiSession(int* argc, char*** argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  ~MpiSession() { MPI_Finalize(); }
  int rank = 0, size = 1;
};

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  om::set_process_rank(mpi.rank);
  om::TrainOptions options;
  om::StatusOr<om::ParseOutcome> parsed = om::parse_train_options(argc, argv, mpi.size, &options);
  if (!parsed.ok()) {
    std::fprintf(stderr, "ortho_megatron [%s]: %s\n", om::process_identity().c_str(),
                 parsed.status().ToString().c_str());
    return 2;
  }
  if (parsed.value() == om::ParseOutcome::kHelpShown) return 0;
  if (mpi.size > 1) {
    OM_LOG_ERROR("multi-rank training (--tp/--dp > 1) is not implemented in this version; run one process");
    return 2;
  }
  om::StatusOr<std::unique_ptr<om::Trainer>> trainer = om::Trainer::Create(options);
  if (!trainer.ok()) {
    OM_LOG_ERROR("%s", trainer.status().ToString().c_str());
    return 1;
  }
  om::Status s = trainer.value()->Run();
  if (!s.ok()) {
    OM_LOG_ERROR("%s", s.ToString().c_str());
    return 1;
  }
  return 0;
}
