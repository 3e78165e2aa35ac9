// Step time and communication share of the tp·dp Trainer (DESIGN.md "Tensor parallel", "ZeRO-1").
//   mpirun -np P parallel_step_bench TP DP DATA_PREFIX [STEPS=8] [SEQ=256] [GLOBAL_BATCH=8] [THREADS=1]
// P = TP·DP (1: the single-process path). Trains the `tiny` preset (softmax-1, micro-batch G/DP, so
// one micro-batch per step) for STEPS steps; per step it records the wall time, the seconds each rank
// spent inside tp and dp collectives (Comm::seconds_in_collectives: transfer plus waiting for peers)
// and the bytes each rank sent (Comm::bytes_sent), and prints on rank 0 the medians over steps 3..STEPS
// (steps 1–2 warm up), the collective share on rank 0 and its maximum over ranks, and the measured bytes
// next to the analytic ring volume of tests/parallel/step_volume_test.cc.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/check.h"
#include "launch/trainer.h"
#include "parallel/comm.h"
#include "parallel/process_groups.h"

namespace om {
namespace {

// Per-step analytic bytes (tp + dp) of one rank; the derivation is in tests/parallel/step_volume_test.cc.
uint64_t analytic_bytes(const LlamaConfig& c, int64_t Vp, int64_t tp, int64_t dp, int64_t mb, int64_t accumulation) {
  const int64_t N = mb * c.seq_length, C = c.hidden, F = c.ffn, L = c.n_layers;
  const int t = static_cast<int>(tp), d = static_cast<int>(dp);
  const uint64_t tp_bytes =
      static_cast<uint64_t>(accumulation) * (static_cast<uint64_t>(4 * L + 2) * ring_all_reduce_bytes(4 * N * C, t) +
                                             3 * ring_all_reduce_bytes(4 * N, t)) +
      ring_all_reduce_bytes(8, t);
  const int64_t n = 2 * Vp * C / tp + L * (2 * C + (4 * C * C + 3 * F * C) / tp) + C;
  const int64_t P = (n + dp - 1) / dp * dp;
  const uint64_t dp_bytes =
      ring_reduce_scatter_bytes(4 * P, d) + ring_all_gather_bytes(4 * P, d) + 2 * ring_all_reduce_bytes(8, d);
  return tp_bytes + dp_bytes;
}

int run(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: parallel_step_bench TP DP DATA_PREFIX [STEPS] [SEQ] [GLOBAL_BATCH] [THREADS]\n");
    return 2;
  }
  const int64_t tp = std::atol(argv[1]), dp = std::atol(argv[2]);
  const int64_t steps = argc > 4 ? std::atol(argv[4]) : 8, seq = argc > 5 ? std::atol(argv[5]) : 256;
  const int64_t global = argc > 6 ? std::atol(argv[6]) : 8, threads = argc > 7 ? std::atol(argv[7]) : 1;
  int world = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (tp * dp != world || global % dp != 0 || steps < 3) {
    if (rank == 0) std::fprintf(stderr, "need TP·DP = %d ranks, GLOBAL_BATCH divisible by DP, STEPS >= 3\n", world);
    return 2;
  }
  StatusOr<ProcessGroups> groups = ProcessGroups::Create(ParallelDims::Make(tp, dp, world).value());
  OM_CHECK(groups.ok(), "%s", groups.status().ToString().c_str());
  TrainOptions o;
  o.model = "tiny";
  o.attention = "softmax1";
  o.seq_length = seq;
  o.data_path = argv[3];
  o.tp = tp;
  o.dp = dp;
  o.micro_batch_size = global / dp;
  o.global_batch_size = global;
  o.train_iters = steps;
  o.lr_decay_iters = steps;
  o.lr_warmup_iters = 1;
  o.threads = static_cast<int>(threads);
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(o, world > 1 ? &*groups : nullptr);
  if (!trainer.ok()) {
    std::fprintf(stderr, "%s\n", trainer.status().ToString().c_str());
    return 1;
  }
  Comm* comms[] = {&groups->tp(), &groups->dp()};
  std::vector<double> step_s, share0, share_max, bytes_max;
  for (int64_t i = 0; i < steps; ++i) {
    for (Comm* c : comms) c->reset_bytes(), c->reset_seconds();
    MPI_Barrier(MPI_COMM_WORLD);  // every rank starts the step together
    StatusOr<StepStats> s = trainer.value()->TrainStep();
    OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
    double local[3] = {s->seconds, 0, 0};
    for (const Comm* c : comms) local[1] += c->seconds_in_collectives(), local[2] += static_cast<double>(c->bytes_sent());
    const double share = local[1] / local[0];
    double maxima[3], max_share = 0;
    MPI_Allreduce(local, maxima, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&share, &max_share, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (i < 2) continue;
    step_s.push_back(maxima[0]);  // the step ends when the slowest rank does
    share0.push_back(share);
    share_max.push_back(max_share);
    bytes_max.push_back(maxima[2]);
  }
  if (rank == 0) {
    const LlamaConfig& c = trainer.value()->config();
    const double t = bench::median(step_s);
    const uint64_t want = analytic_bytes(c, trainer.value()->model().padded_vocab(), tp, dp, global / dp, 1);
    std::printf("tp%ld·dp%ld threads %ld: step %.3f s (median of %zu), %.0f tok/s, collectives %.1f%% (rank 0) "
                "%.1f%% (max rank), bytes/step/rank measured %.0f analytic %llu\n",
                static_cast<long>(tp), static_cast<long>(dp), static_cast<long>(threads), t, step_s.size(),
                static_cast<double>(global * seq) / t, 100 * bench::median(share0), 100 * bench::median(share_max),
                bench::median(bytes_max), static_cast<unsigned long long>(want));
  }
  return 0;
}

}  // namespace
}  // namespace om

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int rc = om::run(argc, argv);
  MPI_Finalize();
  return rc;
}
