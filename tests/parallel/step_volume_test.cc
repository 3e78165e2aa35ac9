// The bytes one whole training step sends (Comm::bytes_sent, the ring model of parallel/comm.h) equal
// the analytic per-step volume of DESIGN.md "Tensor parallel" and "ZeRO-1", exactly, on the tp and the
// dp Comm of every rank: tp2·dp4, tp4·dp2, tp1·dp8 at np 8; tp2·dp2, tp1·dp4 at np 4.
// Setup: the synthetic dataset of train_equivalence_test.cc (vocabulary 64), the `tiny` preset at
// --seq-length 32, global batch 8, micro-batch 2 (1 at dp 8), so N = 64 or 32 tokens per micro-batch
// and accumulation 8 / (mb·dp) = 2 or 1 micro-batches per step, both exercised. Two steps: the volume is per step, so
// the second (after the optimizer's first all_gather) must repeat it.
// Only EXPECTs: an ASSERT failing on one rank would leave the others in a collective.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/check.h"
#include "data/dataset_info.h"
#include "data/indexed_dataset.h"
#include "launch/trainer.h"
#include "optim/optimizer_units.h"
#include "parallel/comm.h"
#include "parallel/process_groups.h"
#include "tests/support/mpi_support.h"

namespace om {
namespace {

constexpr int64_t kSeq = 32, kGlobal = 8;

// Micro-batch 2 where the global batch allows (accumulation ≥ 1), else 1 (dp 8).
int64_t micro_batch(int64_t dp) { return std::min<int64_t>(2, kGlobal / dp); }

// Rank 0 writes the synthetic dataset, then all ranks use it.
std::string shared_dataset() {
  return shared_synthetic_dataset(::testing::TempDir() + "/om_step_volume", 40, 200);
}

TrainOptions options(const std::string& data, int64_t tp, int64_t dp) {
  TrainOptions o;
  o.model = "tiny";
  o.attention = "softmax1";
  o.seq_length = kSeq;
  o.data_path = data;
  o.tp = tp;
  o.dp = dp;
  o.micro_batch_size = micro_batch(dp);
  o.global_batch_size = kGlobal;
  o.train_iters = 2;
  o.lr = 1e-3f;
  o.min_lr = 1e-4f;
  o.lr_warmup_iters = 1;
  o.lr_decay_iters = 2;
  o.clip_grad = 1.0f;
  o.weight_decay = 0.1f;
  o.threads = 1;
  return o;
}

struct StepVolume {
  uint64_t tp = 0, dp = 0;
};

// Analytic bytes one rank sends per optimizer step, derived from what the code calls (f32
// activations and gradients, 4 bytes; the norm and the loss are f64 scalars, 8 bytes). Notation:
// N = mb·T tokens per micro-batch, C hidden, F ffn, L layers, Vp the padded vocabulary, A = G / (mb·dp)
// micro-batches per step; ar(B, n), rs(B, n), ag(B, n) the ring formulas of parallel/comm.h.
//
// tp group (Llama with the tp Comm; tensor_parallel.h lists each op's collective), per micro-batch:
//   forward   vocab_parallel_embedding_forward          all_reduce (N, C)        1
//             per layer: reduce_from_tp_region after o  all_reduce (N, C)        L
//                        reduce_from_tp_region after down all_reduce (N, C)      L
//             (copy_to_tp_region_forward of attn_norm, mlp_norm and final_norm is the identity: 0)
//             vocab_parallel_cross_entropy_forward      all_reduce (N) ×3 (max, sum_exp, target logit)
//   backward  LM head: copy_to_tp_region_backward of dfinal_norm   all_reduce (N, C)   1
//             per layer: copy_to_tp_region_backward of dmlp_norm (gate_up input grad)  L
//                        copy_to_tp_region_backward of dattn_norm (qkv input grad)     L
//             (vocab-parallel CE and embedding backward, row-parallel backward: local, 0)
//   per step  DistributedOptimizer::ReduceGradients: the f64 norm partial and the f64 finiteness check
//             (CheckFinite), one 2-element all_reduce over tp                                   1
//   ⇒ tp = A·((4L + 2)·ar(4·N·C, tp) + 3·ar(4·N, tp)) + ar(16, tp)
// The ring formula floors per call, so each call's count is taken separately (here every term divides).
// dp group (ZeRO-1, optim/distributed_optimizer.h), per step:
//   reduce_scatter of the padded flat gradient (P f32)  rs(4·P, dp)
//   all_reduce of the f64 norm partial and check        ar(16, dp)
//   all_gather of the updated flat parameters (P f32)   ag(4·P, dp)
//   Trainer::MeanOverDp of the f64 loss                 ar(8, dp)
//   P = dp·S, S the largest dp shard of whole optimizer units (optim/optimizer_units.h: ShardPlan of
//     this tp rank's units, which cover its parameters except vocabulary padding rows)
//   n = this tp rank's parameter count (padding included; checked against the model)
//     = Vp·C/tp (embed) + L·(2C + 3C·C/tp + C·C/tp + 2F·C/tp + F·C/tp) + C + Vp·C/tp (lm_head)
//   ⇒ dp = rs(4P, dp) + ag(4P, dp) + ar(16, dp) + ar(8, dp)
// A tp or dp group of size 1 sends nothing (every formula has the factor n − 1).
StepVolume analytic_step_volume(const LlamaConfig& c, int64_t tp, int64_t dp, int64_t shard_size) {
  const int64_t N = micro_batch(dp) * c.seq_length, C = c.hidden, L = c.n_layers;
  const int64_t A = kGlobal / (micro_batch(dp) * dp);
  const int t = static_cast<int>(tp), d = static_cast<int>(dp);
  StepVolume v;
  const uint64_t per_micro = static_cast<uint64_t>(4 * L + 2) * ring_all_reduce_bytes(4 * N * C, t) +
                             3 * ring_all_reduce_bytes(4 * N, t);
  v.tp = static_cast<uint64_t>(A) * per_micro + ring_all_reduce_bytes(16, t);
  const int64_t P = shard_size * dp;
  v.dp = ring_reduce_scatter_bytes(4 * P, d) + ring_all_gather_bytes(4 * P, d) + ring_all_reduce_bytes(16, d) +
         ring_all_reduce_bytes(8, d);
  return v;
}

TEST(StepVolume, BytesSentPerStepEqualTheAnalyticVolume) {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  ASSERT_TRUE(n == 4 || n == 8) << "run under mpirun -np 4 or -np 8";  // the same on every rank
  const std::string data = shared_dataset();
  const std::vector<int64_t> tps = n == 8 ? std::vector<int64_t>{2, 4, 1} : std::vector<int64_t>{2, 1};
  for (int64_t tp : tps) {
    const int64_t dp = n / tp;
    const std::string layout = "tp" + std::to_string(tp) + "·dp" + std::to_string(dp);
    StatusOr<ProcessGroups> groups = ProcessGroups::Create(ParallelDims::Make(tp, dp, n).value());
    OM_CHECK(groups.ok(), "%s", groups.status().ToString().c_str());
    StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(options(data, tp, dp), &*groups);
    OM_CHECK(trainer.ok(), "%s", trainer.status().ToString().c_str());
    const Llama& model = trainer.value()->model();

    // The parameter count in the formula is this rank's actual one (guards the derivation of n).
    int64_t local_numel = 0;
    for (const Parameter& p : model.parameters()) local_numel += p.value.numel();
    const LlamaConfig& c = trainer.value()->config();
    // The units and their balanced shards: every parameter element except padding rows, S within one
    // unit of the even split.
    const std::vector<OptimizerUnit> units = make_units(model.parameters(), kDefaultOrthoBlock);
    const ShardPlan plan = assign_units(units, static_cast<int>(dp));
    int64_t unit_numel = 0, largest = 0;
    for (const OptimizerUnit& u : units) {
      unit_numel += u.numel();
      largest = std::max(largest, u.numel());
    }
    const int64_t padding_rows = model.local_vocab() - std::clamp<int64_t>(c.vocab_size - groups->tp_rank() *
                                                                              model.local_vocab(), 0, model.local_vocab());
    EXPECT_EQ(unit_numel, local_numel - 2 * padding_rows * c.hidden) << layout;
    EXPECT_GE(plan.shard_size * dp, unit_numel) << layout;
    EXPECT_LE(plan.shard_size, (unit_numel + dp - 1) / dp + largest) << layout;
    const StepVolume want = analytic_step_volume(c, tp, dp, plan.shard_size);
    const int64_t formula_numel = 2 * model.padded_vocab() * c.hidden / tp +
                                  c.n_layers * (2 * c.hidden + (4 * c.hidden * c.hidden + 3 * c.ffn * c.hidden) / tp) +
                                  c.hidden;
    EXPECT_EQ(local_numel, formula_numel) << layout;
    // The test can fail: the tp side is nonzero exactly when tp > 1, the dp side when dp > 1.
    EXPECT_EQ(want.tp > 0, tp > 1) << layout;
    EXPECT_EQ(want.dp > 0, dp > 1) << layout;

    for (int step = 1; step <= 2; ++step) {
      groups->tp().reset_bytes();
      groups->dp().reset_bytes();
      groups->world().reset_bytes();
      StatusOr<StepStats> s = trainer.value()->TrainStep();
      OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
      EXPECT_EQ(groups->tp().bytes_sent(), want.tp) << layout << " step " << step << ", tp rank "
                                                    << groups->tp().rank();
      EXPECT_EQ(groups->dp().bytes_sent(), want.dp) << layout << " step " << step << ", dp rank "
                                                    << groups->dp().rank();
      EXPECT_EQ(groups->world().bytes_sent(), 0u) << layout << ": a step uses only the tp and dp groups";
    }
    if (mpi_world_rank() == 0) {
      std::printf("%s: per step tp %llu B (A = %ld micro-batches of N = %ld), dp %llu B (n = %ld parameters)\n",
                  layout.c_str(), static_cast<unsigned long long>(want.tp),
                  static_cast<long>(kGlobal / (micro_batch(dp) * dp)), static_cast<long>(micro_batch(dp) * kSeq),
                  static_cast<unsigned long long>(want.dp), static_cast<long>(local_numel));
    }
  }
}

}  // namespace
}  // namespace om
