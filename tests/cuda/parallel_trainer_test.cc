// The GPU trainer at tp2·dp2: 4 ranks on one host, rank r on cuda:r, the model's tp all-reduces and
// ZeRO-1's reduce-scatter / all-gather of GPU tensors over the NCCL communicators of ProcessGroups, the
// host scalars over MPI. Run under `mpirun -np 4` (ctest does); skipped (exit 77) on a host with fewer
// than 4 GPUs (tests/support/cuda_mpi_test_main.cc). In CI it runs on the CUDA emulator, whose NCCL is
// MPI underneath (cuda_emu/README.md), so this is where the multi-rank GPU path is tested without GPUs.
//   - f32 AdamW: the losses and gradient norms of 5 steps equal the CPU trainer's at the same layout
//     (MpiComm) within the f32 reduction bound of tests/parallel/train_equivalence_test.cc: both compute
//     the same functions, only the summation orders differ (cuBLAS vs oneDNN, NCCL vs MPI sums);
//   - bf16 OrthoAdam + softmax-1 + RMSNorm-S: the losses within the bf16 bound of tests/cuda/trainer_test.cc
//     of the CPU f32 run at the same layout (same optimizer units and rotations), and the run learns;
//   - a checkpoint saved from GPU memory at tp2·dp2 resumes there with the same losses bit for bit, and
//     loads into a one-process CPU trainer (tp1·dp1, every rank alone) whose next loss agrees within the
//     bf16 bound;
//   - a step makes the host wait for the GPU once, as at one rank: the collectives are stream-ordered;
//   - with --cuda-graphs (tp collectives captured with the kernels) the same bits as without.
// Only EXPECTs: an ASSERT failing on one rank would leave the others in a collective.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "kernels/check/tolerance.h"
#include "launch/trainer.h"
#include "parallel/process_groups.h"
#include "tests/support/host_waits.h"
#include "tests/support/mpi_support.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr int64_t kTp = 2, kDp = 2, kSteps = 5;

std::string dataset() { return shared_synthetic_dataset(::testing::TempDir() + "/om_cuda_parallel_trainer", 40, 200); }

// The tp2·dp2 run's options (a one-process trainer sets tp = dp = 1 itself).
TrainOptions options(const std::string& device, const std::string& dtype, bool orthoadam) {
  TrainOptions o;
  o.model = "tiny";
  o.seq_length = 32;
  o.data_path = dataset();
  o.tp = kTp;
  o.dp = kDp;
  o.micro_batch_size = 2;
  o.global_batch_size = 8;  // accumulation 2 at dp 2
  o.train_iters = kSteps;
  o.lr = 1e-3f;  // the stable rate of tests/cuda/trainer_test.cc
  o.lr_decay_iters = kSteps;
  o.clip_grad = 1.0f;
  o.weight_decay = 0.1f;
  o.threads = 1;
  o.device = device;
  o.dtype = dtype;
  if (orthoadam) {
    // tests/cuda/trainer_test.cc's settings, where the bf16 bound was derived and holds: micro-batch 4 (no
    // accumulation at dp 2; the f32 AdamW case has it), no clipping or weight decay. With micro-batch 2,
    // clipping at 1 and weight decay 0.1, step 4 of this corpus brings a gradient spike (norm 42 after
    // 7.7) that carries the bf16 roundings past the bound at one rank as at four (measured: 0.019 and
    // 0.022 against 0.017), which is the regime, not the layout.
    o.micro_batch_size = 4;
    o.clip_grad = 0.0f;
    o.weight_decay = 0.0f;
    o.optimizer = "orthoadam";
    o.ortho_block = 64;
    o.attention = "softmax1";
    o.norm = "rmsnorm-s";
  }
  return o;
}

// The process groups of the tp2·dp2 job with the training tensors on `device`.
ProcessGroups groups_on(Device device) {
  StatusOr<ProcessGroups> g = ProcessGroups::Create(ParallelDims::Make(kTp, kDp, kTp * kDp).value(), device);
  OM_CHECK(g.ok(), "%s", g.status().ToString().c_str());
  return std::move(g.value());
}

Device my_gpu() { return Device::Cuda(mpi_world_rank()); }

// Every test needs the 4-rank job (ctest runs it so); run alone (bench/gpu_check.sh does not) or at another
// size, each test is skipped with the command to use.
class ParallelTrainerCuda : public testing::Test {
 protected:
  void SetUp() override {
    int n = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (n != kTp * kDp) GTEST_SKIP() << "tp2·dp2 needs 4 ranks, one GPU each: mpirun -np 4 cuda_parallel_trainer_test";
  }
};

std::vector<StepStats> train(const TrainOptions& o, ProcessGroups* groups, int64_t steps) {
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o, groups);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  std::vector<StepStats> out;
  for (int64_t i = 0; i < steps; ++i) {
    StatusOr<StepStats> s = t.value()->TrainStep();
    OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
    out.push_back(*s);
  }
  return out;
}

// f32 bound (train_equivalence_test.cc step_tolerance): rule 2 with the reduction chain of the tiny model,
// R = 2·(L·(3C + T + F) + C + Vp), terms bounded by 1 + |v|: atol + rtol·|v|.
double f32_tolerance(double v) {
  LlamaConfig c = LlamaConfig::Preset("tiny").value();
  c.seq_length = 32;
  const int64_t R = 2 * (c.n_layers * (3 * c.hidden + c.seq_length + c.ffn) + c.hidden + 128 * kTp);
  const Tolerance t = for_reduction(DType::kF32, R, 1.0 + std::abs(v));
  return t.atol + t.rtol * std::abs(v);
}

// bf16 bound (tests/cuda/trainer_test.cc bf16_tolerance and its derivation): 2·eps_bf16·|cpu|.
double bf16_tolerance(double want) { return 2.0 * dtype_eps(DType::kBF16) * std::fabs(want); }

// kSteps of the tp2·dp2 trainer on the GPU at `gpu_dtype` and on the CPU at f32 (MpiComm), the same
// optimizer; rank 0 prints both curves.
std::pair<std::vector<StepStats>, std::vector<StepStats>> gpu_and_cpu_curves(const std::string& gpu_dtype,
                                                                             bool orthoadam) {
  ProcessGroups cpu_groups = groups_on(Device::Cpu());
  const std::vector<StepStats> cpu = train(options("cpu", "f32", orthoadam), &cpu_groups, kSteps);
  ProcessGroups gpu_groups = groups_on(my_gpu());
  const std::vector<StepStats> gpu = train(options("cuda", gpu_dtype, orthoadam), &gpu_groups, kSteps);
  if (mpi_world_rank() == 0) {
    for (size_t i = 0; i < gpu.size(); ++i) {
      std::printf("%s %s tp2·dp2 step %zu: loss gpu %.6f cpu %.6f | grad norm gpu %.6f cpu %.6f\n", gpu_dtype.c_str(),
                  orthoadam ? "orthoadam" : "adamw", i + 1, gpu[i].loss, cpu[i].loss, gpu[i].grad_norm,
                  cpu[i].grad_norm);
    }
  }
  return {gpu, cpu};
}

TEST_F(ParallelTrainerCuda, F32AdamWFollowsTheCpuAtTheSameLayout) {
  const auto [gpu, cpu] = gpu_and_cpu_curves("f32", false);
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_NEAR(gpu[i].loss, cpu[i].loss, f32_tolerance(cpu[i].loss)) << "step " << i + 1;
    EXPECT_NEAR(gpu[i].grad_norm, cpu[i].grad_norm, f32_tolerance(cpu[i].grad_norm)) << "step " << i + 1;
  }
}

TEST_F(ParallelTrainerCuda, Bf16OrthoAdamFollowsTheCpuAtTheSameLayout) {
  const auto [gpu, cpu] = gpu_and_cpu_curves("bf16", true);
  double cpu_min = cpu.front().loss, gpu_min = gpu.front().loss;
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(std::isfinite(gpu[i].loss)) << "step " << i + 1;
    EXPECT_LE(std::fabs(gpu[i].loss - cpu[i].loss), bf16_tolerance(cpu[i].loss)) << "step " << i + 1;
    cpu_min = std::min(cpu_min, cpu[i].loss);
    gpu_min = std::min(gpu_min, gpu[i].loss);
  }
  // It learns (trainer_test.cc: the lowest loss, not the last).
  EXPECT_GT(cpu.front().loss - cpu_min, 1.0);
  EXPECT_GE(gpu.front().loss - gpu_min, 0.5 * (cpu.front().loss - cpu_min));
}

TEST_F(ParallelTrainerCuda, CheckpointResumesBitwiseAndLoadsAtTp1Dp1OnTheCpu) {
  ProcessGroups groups = groups_on(my_gpu());
  TrainOptions o = options("cuda", "bf16", false);
  o.train_iters = 4;
  o.lr_decay_iters = 4;
  const std::vector<StepStats> straight = train(o, &groups, 4);

  o.save = ::testing::TempDir() + "/om_cuda_parallel_ckpt";
  if (mpi_world_rank() == 0) std::filesystem::remove_all(o.save);
  MPI_Barrier(MPI_COMM_WORLD);
  o.save_interval = 2;
  o.train_iters = 2;  // the schedule is fixed by lr_decay_iters
  {
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o, &groups);
    OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
    EXPECT_TRUE(t.value()->Run().ok());
  }
  TrainOptions r = o;
  r.load = o.save;
  r.save.clear();
  r.save_interval = 0;
  r.train_iters = 4;
  {
    StatusOr<std::unique_ptr<Trainer>> resumed = Trainer::Create(r, &groups);
    OM_CHECK(resumed.ok(), "%s", resumed.status().ToString().c_str());
    EXPECT_EQ(resumed.value()->step(), 2);
    for (int64_t k = 2; k < 4; ++k) {
      StatusOr<StepStats> s = resumed.value()->TrainStep();
      OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
      EXPECT_EQ(s.value().loss, straight[static_cast<size_t>(k)].loss) << "step " << k + 1 << " after resume";
      EXPECT_EQ(s.value().grad_norm, straight[static_cast<size_t>(k)].grad_norm) << "step " << k + 1;
    }
  }
  // The tp2·dp2 GPU checkpoint in a one-process CPU trainer (every rank alone, no communicator).
  TrainOptions c = r;
  c.device = "cpu";
  c.dtype = "f32";
  c.tp = 1;
  c.dp = 1;
  StatusOr<std::unique_ptr<Trainer>> on_cpu = Trainer::Create(c);
  OM_CHECK(on_cpu.ok(), "%s", on_cpu.status().ToString().c_str());
  StatusOr<StepStats> s = on_cpu.value()->TrainStep();
  OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
  EXPECT_LE(std::fabs(s.value().loss - straight[2].loss), bf16_tolerance(straight[2].loss)) << "tp1·dp1 on the CPU";
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_F(ParallelTrainerCuda, TheHostWaitsOncePerStep) {
  // As at one rank (trainer_test.cc): the norm. The tp all-reduces, the dp reduce-scatter
  // and all-gather are ordered on the GPU, not by the host (parallel/nccl_comm.h).
  ProcessGroups groups = groups_on(my_gpu());
  for (bool orthoadam : {false, true}) {
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(options("cuda", "bf16", orthoadam), &groups);
    OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
    OM_CHECK(t.value()->TrainStep().ok(), "step 1");
    const HostWaits before = host_waits_now();
    OM_CHECK(t.value()->TrainStep().ok(), "step 2");
    const HostWaits after = host_waits_now();
    EXPECT_EQ(after.counted - before.counted, 1u) << (orthoadam ? "orthoadam" : "adamw");
    EXPECT_EQ(after.runtime - before.runtime, 1u) << (orthoadam ? "orthoadam" : "adamw") << ": CUDA runtime waits";
  }
}

// want.size() steps of `t`: each loss is want's bit for bit, each gradient norm within norm_rtol (0: the
// same bits), and every step after the first waits for the device once (counted in the project and in
// the CUDA runtime).
void expect_same_steps_waiting_once(Trainer& t, const std::vector<StepStats>& want, double norm_rtol) {
  for (size_t k = 0; k < want.size(); ++k) {
    const HostWaits before = host_waits_now();
    StatusOr<StepStats> s = t.TrainStep();
    const HostWaits after = host_waits_now();
    OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
    EXPECT_EQ(s->loss, want[k].loss) << "step " << k + 1;
    if (norm_rtol == 0.0) {
      EXPECT_EQ(s->grad_norm, want[k].grad_norm) << "step " << k + 1;
    } else {
      EXPECT_NEAR(s->grad_norm, want[k].grad_norm, norm_rtol * want[k].grad_norm) << "step " << k + 1;
    }
    if (k > 0) {
      EXPECT_EQ(after.counted - before.counted, 1u) << "step " << k + 1;
      EXPECT_EQ(after.runtime - before.runtime, 1u) << "CUDA runtime waits, step " << k + 1;
    }
  }
}

TEST_F(ParallelTrainerCuda, CudaGraphsReplayTheTpCollectivesBitForBit) {
  // --cuda-graphs at tp2·dp2 (model/llama_graph.cc): the tp all-reduces of forward and backward are
  // captured with the kernels; the graphed run's losses and norms are the eager run's bits (same
  // kernels, same collectives, in the same order), and a step of replays still waits once.
  ProcessGroups groups = groups_on(my_gpu());
  TrainOptions o = options("cuda", "bf16", false);
  o.train_iters = 3;
  o.lr_decay_iters = 3;
  const std::vector<StepStats> eager = train(o, &groups, 3);
  o.cuda_graphs = true;
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o, &groups);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  expect_same_steps_waiting_once(*t.value(), eager, 0.0);
  // Step 1: the first micro-batch eager, the second captured; then replays only.
  const Llama::GraphCounts n = t.value()->model().graph_counts();
  EXPECT_EQ(n.eager, 1);
  EXPECT_EQ(n.captures, 1);
  EXPECT_EQ(n.launches, 5);
}

TEST_F(ParallelTrainerCuda, OverlappedGradientReductionTrainsBitForBitAndWaitsOnce) {
  // --overlap-grad-reduce at tp2·dp2 (bf16 AdamW, accumulation 2): each bucket's reduce_scatter runs on
  // the dp NcclComm's own stream during the last backward, beside the tp all-reduces. At dp 2 a sum is
  // a + b whichever rank reduces it, and AdamW is element-wise, so the update is the bits of the run
  // without overlap; the norm (f64 sums over other shards) within 1e-12, so no clipping. The deferred
  // reductions add no host wait. With --cuda-graphs as well: the first micro-batch of a step replays its
  // graph, the last (which reports its gradients to the optimizer part-way) runs eagerly.
  ProcessGroups groups = groups_on(my_gpu());
  TrainOptions o = options("cuda", "bf16", false);
  o.clip_grad = 0.0f;
  o.train_iters = 3;
  o.lr_decay_iters = 3;
  const std::vector<StepStats> plain = train(o, &groups, 3);
  o.overlap_grad_reduce = true;
  o.ddp_bucket_size = 40000;
  o.cuda_graphs = true;
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o, &groups);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  expect_same_steps_waiting_once(*t.value(), plain, 1e-12);
  const DistributedOptimizer& opt = t.value()->optimizer();
  EXPECT_GT(opt.buckets(), 4u);
  EXPECT_EQ(opt.buckets_overlapped(), 3 * static_cast<int64_t>(opt.buckets()));
  EXPECT_EQ(opt.buckets_after_backward(), 0);
  const Llama::GraphCounts n = t.value()->model().graph_counts();
  EXPECT_EQ(n.eager, 1 + 3);  // step 1's first micro-batch (the warm-up), every step's last
  EXPECT_EQ(n.captures, 1);
  EXPECT_EQ(n.launches, 2);
}

}  // namespace
}  // namespace om
