// CUDA graphs for the training step's micro-batch (model/llama.h ForwardBackward, --cuda-graphs):
//   - a model replaying its micro-batches from graphs computes the same bits as the eager model fed the
//     same micro-batches (per-token losses after each, every gradient after all), f32 and bf16, through
//     graph kinds that differ in B and in the loss gradient (masked targets), and through eviction;
//   - the kinds are counted as documented: the first micro-batch of a kind eager, the second captured,
//     later ones replayed; a kind evicted (more than kMaxCudaGraphs) starts over; the op profiler and a
//     probe run eagerly;
//   - the trainer with --cuda-graphs: losses, gradient norms and the final parameters equal the run
//     without, bit for bit, and a step still waits for the GPU once.
// Skipped (exit 77) without a GPU, like every CUDA test (tests/support/cuda_test_main.cc).
#include <cstring>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/profiler.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "kernels/cross_entropy.h"
#include "launch/trainer.h"
#include "model/llama.h"
#include "tests/support/host_waits.h"
#include "tests/support/llama_config.h"
#include "tests/support/synthetic_dataset.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

LlamaConfig small_config() {
  LlamaConfig c = test_llama_config(384, 64, 176, 4, 2, 32, "graph-test");
  c.attention = AttentionKind::kSoftmax1;
  return c;
}

struct MicroBatch {
  HostTensor tokens, targets;  // (B, T) i32
};

// Random tokens; with `masked`, every 5th target is ignored (a smaller target count: another loss
// gradient, so another graph kind).
MicroBatch micro_batch(int64_t B, int64_t T, int64_t V, uint64_t seed, bool masked) {
  MicroBatch m{HostTensor("tokens", DType::kI32, {B, T}), HostTensor("targets", DType::kI32, {B, T})};
  const Rng rng(seed, "test/graph_tokens");
  for (int64_t i = 0; i < B * T; ++i) {
    m.tokens.data<int32_t>()[i] = static_cast<int32_t>(rng.Uniform(2 * i) * V) % V;
    m.targets.data<int32_t>()[i] = static_cast<int32_t>(rng.Uniform(2 * i + 1) * V) % V;
    if (masked && i % 5 == 0) m.targets.data<int32_t>()[i] = kIgnoreTarget;
  }
  return m;
}

std::vector<char> bytes_of(ConstTensorView v) {
  std::vector<char> out(v.nbytes());
  copy_bytes(out.data(), Device::Cpu(), v.data, v.device, v.nbytes());
  return out;
}

// One micro-batch through ForwardBackward; returns the per-token losses' bytes.
std::vector<char> step(Llama& m, const MicroBatch& b, float loss_scale) {
  HostTensor losses("losses", DType::kF32, b.tokens.shape());
  m.ForwardBackward(b.tokens.cview(), b.targets.cview(), losses.view(), loss_scale);
  return bytes_of(losses.cview());
}

void expect_same_gradients(const Llama& a, const Llama& b, const std::string& when) {
  for (size_t i = 0; i < a.parameters().size(); ++i) {
    EXPECT_TRUE(bytes_of(a.parameters()[i].grad) == bytes_of(b.parameters()[i].grad))
        << a.parameters()[i].name << " gradient " << when;
  }
}

struct Kind {
  int64_t B;
  bool masked;
};

// Feeds `kinds` (micro-batch i: seed i) to an eager model and a graphed one; every loss and, at the
// end, every gradient must be the same bits. Returns the graphed model's counts.
Llama::GraphCounts run_both(DType dtype, const std::vector<Kind>& kinds) {
  const LlamaConfig c = small_config();
  Llama eager(c, 4, Device::Cuda(0), dtype), graphed(c, 4, Device::Cuda(0), dtype);
  eager.Initialize(11);
  graphed.Initialize(11);
  graphed.set_cuda_graphs(true);
  eager.ZeroGrad();
  graphed.ZeroGrad();
  for (size_t i = 0; i < kinds.size(); ++i) {
    const MicroBatch b = micro_batch(kinds[i].B, c.seq_length, c.vocab_size, 100 + i, kinds[i].masked);
    const std::vector<char> want = step(eager, b, 0.5f), got = step(graphed, b, 0.5f);
    EXPECT_TRUE(got == want) << "losses of micro-batch " << i << " (B = " << kinds[i].B << ")";
    EXPECT_EQ(graphed.target_count(), eager.target_count());
  }
  expect_same_gradients(eager, graphed, "after " + std::to_string(kinds.size()) + " micro-batches");
  return graphed.graph_counts();
}

TEST(LlamaCudaGraphs, ReplaysComputeTheEagerBitsPerKind) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    // A: B = 4, all targets; M: B = 4, masked (another loss gradient); S: B = 2.
    const Kind A{4, false}, M{4, true}, S{2, false};
    const Llama::GraphCounts n = run_both(dtype, {A, A, A, M, M, M, S, S, A});
    EXPECT_EQ(n.eager, 3);     // the first A, M, S
    EXPECT_EQ(n.captures, 3);  // the second of each
    EXPECT_EQ(n.launches, 6);
  }
}

TEST(LlamaCudaGraphs, AKindBeyondTheCacheEvictsTheLeastRecentlyUsed) {
  static_assert(Llama::kMaxCudaGraphs == 4, "the kinds below assume 4 kept graphs");
  // Five kinds, each twice (captured), then the first again: it was evicted, so it is eager once more;
  // then the fifth (kept) replays.
  std::vector<Kind> kinds;
  for (Kind k : {Kind{1, false}, Kind{2, false}, Kind{3, false}, Kind{4, false}, Kind{4, true}}) {
    kinds.push_back(k);
    kinds.push_back(k);
  }
  kinds.push_back(Kind{1, false});
  kinds.push_back(Kind{4, true});
  const Llama::GraphCounts n = run_both(DType::kF32, kinds);
  EXPECT_EQ(n.eager, 6);
  EXPECT_EQ(n.captures, 5);
  EXPECT_EQ(n.launches, 6);
}

TEST(LlamaCudaGraphs, TheProfilerRunsEagerly) {
  const LlamaConfig c = small_config();
  Llama m(c, 4, Device::Cuda(0), DType::kF32);
  m.Initialize(3);
  m.set_cuda_graphs(true);
  m.ZeroGrad();
  const MicroBatch b = micro_batch(4, c.seq_length, c.vocab_size, 1, false);
  step(m, b, 1.0f);
  profiler::set_enabled(true);
  step(m, b, 1.0f);  // would be the capture: eager instead, per-op times
  profiler::set_enabled(false);
  profiler::Reset();
  EXPECT_EQ(m.graph_counts().eager, 2);
  EXPECT_EQ(m.graph_counts().captures, 0);
  step(m, b, 1.0f);
  EXPECT_EQ(m.graph_counts().captures, 1);
  EXPECT_EQ(m.graph_counts().launches, 1);
}

TEST(LlamaCudaGraphs, ACpuModelRefusesGraphs) {
  Llama cpu(small_config(), 2);
  EXPECT_DEATH(cpu.set_cuda_graphs(true), "CUDA graphs need a CUDA model");
}

TrainOptions trainer_options(const std::string& name, bool graphs) {
  TrainOptions o;
  o.model = "tiny";
  o.seq_length = 32;
  o.data_path = write_synthetic_dataset(::testing::TempDir() + "/" + name + "_data", 40, 200);
  o.micro_batch_size = 4;
  o.global_batch_size = 8;  // two micro-batches per step
  o.train_iters = 3;
  o.lr_decay_iters = 3;
  o.lr = 1e-3f;
  o.device = "cuda";
  o.dtype = "bf16";
  o.cuda_graphs = graphs;
  return o;
}

TEST(LlamaCudaGraphs, TheTrainerWithGraphsMatchesTheTrainerWithoutBitForBit) {
  StatusOr<std::unique_ptr<Trainer>> plain = Trainer::Create(trainer_options("graphs_off", false));
  StatusOr<std::unique_ptr<Trainer>> graphs = Trainer::Create(trainer_options("graphs_on", true));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  ASSERT_TRUE(graphs.ok()) << graphs.status().ToString();
  for (int k = 0; k < 3; ++k) {
    const HostWaits before = host_waits_now();
    StatusOr<StepStats> g = graphs.value()->TrainStep();
    const HostWaits after = host_waits_now();
    StatusOr<StepStats> p = plain.value()->TrainStep();
    ASSERT_TRUE(g.ok() && p.ok());
    EXPECT_EQ(g->loss, p->loss) << "step " << k + 1;
    EXPECT_EQ(g->grad_norm, p->grad_norm) << "step " << k + 1;
    if (k == 2) {  // replays only: still the step's one wait
      EXPECT_EQ(after.counted - before.counted, 1u);
      EXPECT_EQ(after.runtime - before.runtime, 1u) << "CUDA runtime waits (tests/support/host_waits.h)";
    }
  }
  const Llama& a = plain.value()->model();
  const Llama& b = graphs.value()->model();
  for (size_t i = 0; i < a.parameters().size(); ++i) {
    EXPECT_TRUE(bytes_of(a.parameters()[i].value) == bytes_of(b.parameters()[i].value)) << a.parameters()[i].name;
  }
  const Llama::GraphCounts n = b.graph_counts();
  EXPECT_EQ(n.eager, 1);
  EXPECT_EQ(n.captures, 1);
  EXPECT_EQ(n.launches, 5);
  EXPECT_FALSE(a.cuda_graphs());
}

}  // namespace
}  // namespace om
