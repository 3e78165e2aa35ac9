// Preemption: SIGTERM and SIGUSR1 (SLURM's --signal, a scheduler's kill) only set a flag here; the
// Trainer polls it after every step, all ranks agree on it (an all-reduce), and the job saves a
// checkpoint and exits with kPreemptedExitCode. Async-signal-safe: the handler writes one sig_atomic_t.
#pragma once

namespace om {

// sysexits' EX_TEMPFAIL: "try again later" — a batch script requeues the job on it (slurm/).
inline constexpr int kPreemptedExitCode = 75;

// Blocks SIGTERM and SIGUSR1 in the calling thread, so that every thread it creates afterwards (MPI's
// progress and PMIx threads, NCCL's proxies) inherits the block. Call first thing in main.
void block_preemption_signals();
// Installs the handlers for SIGTERM and SIGUSR1 and unblocks them in the calling thread (idempotent):
// a signal then runs the handler on this thread and no other.
void install_preemption_handlers();
// True once either signal arrived (or request_preemption was called).
bool preemption_requested();
// Sets the flag as a signal would (tests; the wall-clock limit).
void request_preemption();
// Clears it (tests).
void clear_preemption();

}  // namespace om
