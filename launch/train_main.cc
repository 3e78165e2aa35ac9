// ortho_megatron: train a Llama model. parse options → init MPI (under a launcher) → build → train → close.
// Exit status: 0 done, 1 a runtime failure (bad data, non-finite loss, bad checkpoint), 2 a bad flag,
// 3 the hang watchdog stopped a rank (--comm-timeout-s; parallel/watchdog.h),
// 75 stopped by SIGTERM/SIGUSR1 or --exit-duration-in-mins after saving a checkpoint (requeue and resume).
// Multi-rank (mpirun -np tp·dp ... --tp T --dp D): every rank parses the same flags (so a bad flag
// fails on every rank alike and they all exit 2); a failure after that may hit one rank only, so it
// is printed with that rank and host and the whole job is stopped with MPI_Abort (exit 1).
#include <mpi.h>

#include <cstdio>
#include <optional>

#include "core/check.h"
#include "core/log.h"
#include "launch/memory_plan.h"
#include "launch/mpi_session.h"
#include "launch/preemption.h"
#include "launch/train_options.h"
#include "launch/trainer.h"
#include "parallel/process_groups.h"

namespace {

// Prints the error tagged with rank and host; stops every rank of a multi-rank job (the others may
// be waiting in a collective), returns `code` for a single process.
int fail(const om::MpiSession& mpi, const om::Status& s, int code) {
  std::fprintf(stderr, "ortho_megatron [%s]: %s\n", om::process_identity().c_str(), s.ToString().c_str());
  std::fflush(stderr);
  if (mpi.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Before MPI_Init starts its threads: they inherit the block, and a SIGTERM/SIGUSR1 that arrives
  // before the handlers are installed stays pending until then.
  om::StartupTimeline startup;  // the process's age now: exec, the loader, static constructors
  om::block_preemption_signals();
  om::MpiSession mpi(&argc, &argv);  // MPI only under a launcher
  startup.Mark("mpi");
  om::set_process_rank(mpi.rank);
  om::TrainOptions options;
  om::StatusOr<om::ParseOutcome> parsed = om::parse_train_options(argc, argv, mpi.size, &options);
  if (!parsed.ok()) {
    std::fprintf(stderr, "ortho_megatron [%s]: %s\n", om::process_identity().c_str(),
                 parsed.status().ToString().c_str());
    return 2;
  }
  if (parsed.value() == om::ParseOutcome::kHelpShown) return 0;
  if (options.dry_run) {
    // The plan for the device the job would use. --device cuda plans for a GPU even where none is
    // visible (planning on a login node); auto plans for what this machine has.
    om::Device device = om::Device::Cpu();
    if (options.device == "cuda") {
      device = om::Device::Cuda(0);
    } else if (om::StatusOr<om::Device> d = om::resolve_device(options.device, 0); d.ok()) {
      device = *d;
    }
    om::StatusOr<om::MemoryPlan> plan = om::plan_training_memory(options, device);
    if (!plan.ok()) {
      std::fprintf(stderr, "ortho_megatron --dry-run: %s\n", plan.status().ToString().c_str());
      return 2;
    }
    if (mpi.rank == 0) std::printf("%s", om::format_memory_plan(*plan).c_str());
    return 0;
  }
  // Declared after `mpi`, so the communicators are freed before MPI_Finalize.
  std::optional<om::ProcessGroups> groups;
  if (mpi.size > 1) {
    om::StatusOr<om::ParallelDims> dims = om::ParallelDims::Make(options.tp, options.dp, mpi.size);
    if (!dims.ok()) return fail(mpi, dims.status(), 2);
    // One GPU per rank: the rank's index among the ranks of its node.
    om::StatusOr<om::Device> device = om::resolve_device(options.device, om::ProcessGroups::LocalRank());
    if (!device.ok()) return fail(mpi, device.status(), 2);
    // --device auto must pick one kind for the whole job: the GPU only where every rank has one.
    const int on_gpu = device->kind == om::DeviceKind::kCuda ? 1 : 0;
    int all_on_gpu = 0, any_on_gpu = 0;
    MPI_Allreduce(&on_gpu, &all_on_gpu, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&on_gpu, &any_on_gpu, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_on_gpu && !all_on_gpu) {
      if (mpi.rank == 0) {
        std::fprintf(stderr, "ortho_megatron: --device auto: some ranks see no GPU of their own; the whole job "
                             "trains on the CPU (--device cuda makes that an error)\n");
      }
      *device = om::Device::Cpu();
    }
    om::StatusOr<om::ProcessGroups> created = om::ProcessGroups::Create(*dims, *device);
    if (!created.ok()) return fail(mpi, created.status(), 2);
    groups.emplace(std::move(*created));
    startup.Mark("process groups");  // each rank's GPU, the MPI and NCCL communicators
  }
  om::install_preemption_handlers();  // SIGTERM / SIGUSR1: save after the current step, exit 75
  om::StatusOr<std::unique_ptr<om::Trainer>> trainer =
      om::Trainer::Create(options, groups ? &*groups : nullptr, std::move(startup));
  if (!trainer.ok()) return fail(mpi, trainer.status(), 1);
  const om::Status s = trainer.value()->Run();
  if (!s.ok()) return fail(mpi, s, 1);
  return trainer.value()->preempted() ? om::kPreemptedExitCode : 0;
}
