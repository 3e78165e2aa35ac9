// The training loop end to end on a small synthetic dataset: the loss falls, metrics.jsonl is
// written, runs are reproducible, accumulation matches one big micro-batch, bad data is refused.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "core/profiler.h"
#include "data/dataset_info.h"
#include "data/indexed_dataset.h"
#include "launch/trainer.h"
#include "tests/support/synthetic_dataset.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr int32_t kVocab = kSyntheticVocab;

// The synthetic period-8 dataset (tests/support/synthetic_dataset.h): learnable in a few dozen
// steps by the `tiny` preset at T = 32.
std::string make_dataset(const std::string& name, int64_t docs, int64_t doc_len) {
  return write_synthetic_dataset(::testing::TempDir() + "/" + name, docs, doc_len);
}

TrainOptions small_options(const std::string& data) {
  TrainOptions o;
  o.model = "tiny";
  o.attention = "softmax1";
  o.seq_length = 32;
  o.data_path = data;
  o.micro_batch_size = 4;
  o.global_batch_size = 4;
  o.train_iters = 40;
  o.lr = 3e-3f;
  o.min_lr = 3e-4f;
  o.lr_warmup_iters = 4;
  o.lr_decay_iters = 40;
  return o;
}

std::vector<StepStats> train(const TrainOptions& o, int64_t steps) {
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  std::vector<StepStats> out;
  for (int64_t i = 0; i < steps; ++i) {
    StatusOr<StepStats> s = t.value()->TrainStep();
    OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
    out.push_back(s.value());
  }
  return out;
}

TEST(Trainer, LossFallsAndMetricsAreWritten) {
  TrainOptions o = small_options(make_dataset("falls", 40, 200));
  o.valid_data_path = make_dataset("falls_valid", 4, 100);
  o.eval_interval = 20;
  o.eval_iters = 1;
  o.log_dir = ::testing::TempDir() + "/falls_run";
  std::filesystem::remove_all(o.log_dir);
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t.value()->Run().ok());
  std::ifstream in(o.log_dir + "/metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 40u);
  for (const char* field : {"\"step\"", "\"loss\"", "\"lr\"", "\"grad_norm\"", "\"tokens_per_s\"", "\"tflops\"",
                            "\"mfu\"", "\"elapsed_s\""})
    EXPECT_NE(lines[0].find(field), std::string::npos) << field;
  EXPECT_EQ(lines[0].find("val_loss"), std::string::npos);
  // The first step's line alone carries the time to first step, its phases in the order they ran.
  const nlohmann::json startup = nlohmann::json::parse(lines[0]).at("startup");
  std::vector<std::string> phases;
  double sum = 0;
  for (const auto& p : startup.at("phases")) {
    phases.push_back(p.at(0).get<std::string>());
    sum += p.at(1).get<double>();
    EXPECT_GE(p.at(1).get<double>(), 0.0) << p.dump();
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"exec", "device", "data", "model", "weights", "optimizer", "first step"}));
  EXPECT_NEAR(startup.at("total_s").get<double>(), sum, 1e-3);
  for (size_t i = 1; i < lines.size(); ++i) EXPECT_EQ(lines[i].find("startup"), std::string::npos) << i;
  EXPECT_NE(lines[19].find("\"val_loss\""), std::string::npos);  // step 20
  EXPECT_NE(lines[39].find("\"val_loss\""), std::string::npos);  // the last step
  auto loss_of = [](const std::string& l) { return std::stod(l.substr(l.find("\"loss\": ") + 8)); };
  const double first = loss_of(lines[0]), last = loss_of(lines[39]);
  EXPECT_NEAR(first, std::log(kVocab), 0.2);  // at initialisation: ~ ln V
  EXPECT_LT(last, 0.5) << "first " << first;  // a period-8 pattern is easy to learn
  EXPECT_LT(t.value()->Validate(), 0.5);
}

TEST(Trainer, SameSeedSameLossesOnAnyThreadCount) {
  const TrainOptions o = small_options(make_dataset("repro", 20, 200));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<StepStats> a = train(o, 5);
  omp_set_num_threads(2);
  const std::vector<StepStats> b = train(o, 5);
  omp_set_num_threads(saved);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].loss, b[i].loss) << "step " << i + 1;
    EXPECT_EQ(a[i].grad_norm, b[i].grad_norm) << "step " << i + 1;
  }
  TrainOptions other = o;
  other.seed = o.seed + 1;
  EXPECT_NE(train(other, 1)[0].loss, a[0].loss);
}

TEST(Trainer, AccumulationMatchesOneLargeMicroBatch) {
  // Global batch 8 as one micro-batch of 8, or as 2 x 4 accumulated: the same samples, so the
  // first step's loss and gradient norm agree up to f32 summation order. Bound (rule 2): the loss
  // is a mean of 8·32 per-token losses of size <= ~ln V, the norm a sum over ~5M squared
  // gradient elements; both reorder one level of a sum -> 2·eps·|value| is ample, eps = 2^-23.
  TrainOptions one = small_options(make_dataset("accum", 20, 200));
  one.micro_batch_size = 8;
  one.global_batch_size = 8;
  TrainOptions two = one;
  two.micro_batch_size = 4;
  const StepStats a = train(one, 1)[0], b = train(two, 1)[0];
  const double eps = std::ldexp(1.0, -23);
  EXPECT_NEAR(a.loss, b.loss, 8 * eps * a.loss);
  EXPECT_NEAR(a.grad_norm, b.grad_norm, 64 * eps * a.grad_norm);
}

// The host waits for the device a fixed number of times per step (launch/trainer.h TrainStep): once,
// for the gradient norm (the losses land before it; their finiteness is checked on the device). copy_bytes, Buffer::Zero and synchronize count on the
// CPU as on a GPU (core/buffer.h synchronous_calls), so a per-layer, per-parameter, per-unit or
// per-micro-batch wait in model/, optim/ or launch/ shows up here as a count that grows with the
// depth (tiny: 4 layers, small: 6), the optimizer units or the accumulation (1 vs 4 micro-batches).
TEST(Trainer, TheHostWaitsOncePerStepWhateverTheDepthAndAccumulation) {
  const std::string data = make_dataset("syncs", 20, 200);
  const auto calls_in_second_step = [&](const char* model, const char* optimizer, int64_t accumulation) {
    TrainOptions o = small_options(data);
    o.model = model;
    o.optimizer = optimizer;
    o.global_batch_size = o.micro_batch_size * accumulation;
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
    OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
    OM_CHECK(t.value()->TrainStep().ok(), "first step");
    const uint64_t before = synchronous_calls();
    OM_CHECK(t.value()->TrainStep().ok(), "second step");
    return synchronous_calls() - before;
  };
  EXPECT_EQ(calls_in_second_step("tiny", "adamw", 1), 1u);
  EXPECT_EQ(calls_in_second_step("small", "adamw", 4), 1u);
  EXPECT_EQ(calls_in_second_step("small", "orthoadam", 4), 1u);
}

// --profile-steps (core/profiler.h): one profiled step of `tiny` (L = 4) counts every op of the model
// once per use, and the GEMMs' FLOPs are exactly 3 × 2·N·W (forward, input gradient and weight
// gradient of every Linear: W = L·(4C² + 3CF) + Vp·C weights, N = micro-batch tokens).
TEST(Trainer, ProfileStepsCountsEveryOpOfTheModelOnce) {
  TrainOptions o = small_options(make_dataset("profile", 20, 200));
  o.train_iters = 3;
  o.profile_steps = 1;
  o.log_dir = ::testing::TempDir() + "/profile_run";
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t.value()->Run().ok());
  const std::vector<profiler::OpStats> ops = profiler::Collect();
  const auto calls = [&](const std::string& name) {
    for (const profiler::OpStats& s : ops)
      if (s.name == name) return s.calls;
    return int64_t{0};
  };
  const LlamaConfig& c = t.value()->config();
  const int64_t L = c.n_layers, C = c.hidden, F = c.ffn, Vp = t.value()->model().padded_vocab();
  EXPECT_EQ(calls("matmul"), 3 * (4 * L + 1));  // qkv, o, gate_up, down per layer and the LM head, ×3
  EXPECT_EQ(calls("attention_forward"), L);
  EXPECT_EQ(calls("attention_backward"), L);
  EXPECT_EQ(calls("rmsnorm_forward"), 2 * L + 1);
  EXPECT_EQ(calls("rmsnorm_backward"), 2 * L + 1);
  EXPECT_EQ(calls("swiglu_forward"), L);
  EXPECT_EQ(calls("rope_forward"), L);
  EXPECT_EQ(calls("rope_backward"), 0) << "RoPE's backward runs inside attention_backward (its rope_theta)";
  // Training's cross-entropy is one op (forward and backward, Llama::ForwardBackward at tp = 1).
  EXPECT_EQ(calls("cross_entropy_forward_backward"), 1);
  EXPECT_EQ(calls("cross_entropy_forward"), 0) << "the fused op's pieces were counted on their own";
  EXPECT_EQ(calls("cross_entropy_backward"), 0);
  EXPECT_EQ(calls("embedding_backward"), 1);
  EXPECT_EQ(calls("cross_entropy_row_max"), 0) << "the pieces of the forward were counted on their own";
  // The optimizer's per-parameter work is one grouped call per kind and step (optim/distributed_optimizer.h):
  // tiny's 6L + 3 parameters (39 units at B = 1024) cost one AdamW update and one gradient copy, not one of
  // each per parameter (before: 27 calls of each); at dp = 1 the update writes the values itself (the fused
  // publish, kernels/adamw.h), so no cast of the master follows it.
  EXPECT_EQ(static_cast<int64_t>(t.value()->model().parameters().size()), 6 * L + 3);
  EXPECT_EQ(calls("adamw_update_group"), 1);
  EXPECT_EQ(calls("adamw_update"), 0);
  EXPECT_EQ(calls("cast_group"), 1) << "the gradients into the flat buffer (the values: adamw_update_group)";
  EXPECT_EQ(calls("cast"), 0);
  EXPECT_EQ(calls("copy_async"), 3) << "tokens, targets, losses";
  double matmul_flops = 0;
  for (const profiler::OpStats& s : ops)
    if (s.name == "matmul") matmul_flops = s.flops;
  const double N = static_cast<double>(o.micro_batch_size * c.seq_length);
  const double W = static_cast<double>(L * (4 * C * C + 3 * C * F) + Vp * C);
  EXPECT_EQ(matmul_flops, 3 * 2 * N * W);
  // The detail rows split matmul by shape: together its calls and FLOPs; the LM head's forward (tokens ×
  // padded vocabulary × hidden, x·Wᵀ) one call of its own; and every Linear's three GEMMs apart (5 × 3).
  const std::vector<profiler::OpStats> details = profiler::CollectDetails();
  int64_t detail_calls = 0;
  double detail_flops = 0;
  for (const profiler::OpStats& s : details) {
    EXPECT_EQ(s.name.rfind("matmul ", 0), 0u) << s.name;
    detail_calls += s.calls;
    detail_flops += s.flops;
  }
  EXPECT_EQ(detail_calls, calls("matmul"));
  EXPECT_EQ(detail_flops, matmul_flops);
  EXPECT_EQ(details.size(), 15u);
  const std::string lm_head = format_message("matmul %ldx%ldx%ld NT f32", static_cast<long>(N), static_cast<long>(Vp),
                                             static_cast<long>(C));
  const auto lm = std::find_if(details.begin(), details.end(), [&](const auto& s) { return s.name == lm_head; });
  ASSERT_NE(lm, details.end()) << lm_head;
  EXPECT_EQ(lm->calls, 1);
  std::ifstream f(o.log_dir + "/profile.txt");
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_NE(text.str().find("matmul"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("outside ops"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(lm_head), std::string::npos) << text.str();
}

TEST(Trainer, NonFiniteLossStopsWithoutUpdating) {
  const TrainOptions o = small_options(make_dataset("nan", 20, 200));
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok());
  const Parameter& p = t.value()->model().parameters()[1];  // layers.0.attn_norm.weight
  p.value.data_as<float>()[0] = NAN;
  StatusOr<StepStats> s = t.value()->TrainStep();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("step 1"), std::string::npos) << s.status().ToString();
  EXPECT_NE(s.status().message().find("no update was applied"), std::string::npos);
  EXPECT_TRUE(std::isnan(p.value.data_as<float>()[0]));
  EXPECT_EQ(p.value.data_as<float>()[1], 1.0f);  // untouched
}

// A micro-batch no host holds (2^20 sequences of 32 tokens: ~2.5 TB of tiny's activations) is refused
// by the memory plan before any Buffer is allocated, with the flag to lower (launch/memory_plan.h).
TEST(Trainer, ARunLargerThanTheHostIsRefusedBeforeItAllocates) {
  TrainOptions o = small_options(make_dataset("too_big", 20, 200));
  o.micro_batch_size = o.global_batch_size = int64_t{1} << 20;
  Buffer::reset_peak(DeviceKind::kCpu);
  const size_t before = Buffer::live_bytes(DeviceKind::kCpu);
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kResourceExhausted) << t.status().ToString();
  EXPECT_NE(t.status().message().find("--micro-batch-size 1048576 x --seq-length 32"), std::string::npos)
      << t.status().ToString();
  EXPECT_NE(t.status().message().find("cpu has"), std::string::npos) << t.status().ToString();
  EXPECT_EQ(Buffer::peak_bytes(DeviceKind::kCpu), before);  // nothing was allocated on the way
}

TEST(Trainer, BadDataIsAStatusNamingTheFlag) {
  TrainOptions o = small_options("/nonexistent/prefix");
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("/nonexistent/prefix"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("short", 1, 10));  // 11 tokens < T + 1
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--seq-length"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("vocab", 20, 200));
  o.vocab_size = 10;  // smaller than the dataset's 64
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--vocab-size 10"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("batch", 20, 200));
  o.global_batch_size = 6;  // not a multiple of micro-batch 4 x dp 1
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--global-batch-size (6)"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("layout", 20, 200));
  o.tp = 2;  // one process cannot hold tp 2
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--tp (2)"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("model", 20, 200));
  o.model = "llama-7b";
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("llama-7b"), std::string::npos) << t.status().ToString();

  o = small_options(make_dataset("tf32", 20, 200));
  o.optimizer = "orthoadam";
  o.ortho_precision = "tf32";  // tensor cores only
  o.device = "cpu";
  t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--ortho-precision tf32"), std::string::npos) << t.status().ToString();
  StatusOr<Device> automatic = resolve_device("auto", 0);
  if (automatic.ok() && automatic->kind == DeviceKind::kCpu) {  // --device auto on a machine without a GPU
    o.device = "auto";
    t = Trainer::Create(o);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("--ortho-precision tf32 needs a GPU's tensor cores, but this rank trains on "
                                        "cpu (--device auto)"),
              std::string::npos)
        << t.status().ToString();
  }
}

// --bos: "<s>" first in every sequence. Refused (naming the flag) when the tokenizer has none; with
// one, training learns the pattern after it and the checkpoint records bos, which ortho_eval follows.
TEST(Trainer, BosNeedsATokenizerWithBosAndIsRecordedInTheCheckpoint) {
  TrainOptions o = small_options(make_dataset("bos_none", 40, 200));  // the synthetic tokenizer: no <s>
  o.bos = true;
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("--bos"), std::string::npos) << t.status().ToString();

  // The same tokens with a tokenizer whose <s> is id 1 (never in the synthetic stream).
  const std::string data = make_dataset("bos", 40, 200);
  StatusOr<DatasetInfo> info = read_dataset_info(data);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  info->bos_id = 1;
  ASSERT_TRUE(write_dataset_info(data, *info).ok());
  o = small_options(data);
  o.bos = true;
  // Position 0 predicts a stream token after "<s>" at a random phase of the period-8 pattern (ln 8
  // nats), the other 31 positions are determined: the mean loss can reach ln(8)/32 ≈ 0.065.
  const std::vector<StepStats> steps = train(o, 40);
  EXPECT_NEAR(steps.front().loss, std::log(kVocab), 0.2);
  EXPECT_LT(steps.back().loss, 0.5);

  o.save = ::testing::TempDir() + "/bos_run";
  o.train_iters = 1;
  std::filesystem::remove_all(o.save);
  t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t.value()->Run().ok());
  StatusOr<nlohmann::json> manifest = read_manifest(o.save + "/" + checkpoint_dir_name(1));
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ((*manifest)["data"].value("bos", false), true);
}

// --nan-policy (issue 9): a NaN injected into step 3's loss and gradient.
TEST(Trainer, NonFiniteStepAbortsNamingStepAndRankOrIsSkippedWithoutAnUpdate) {
  TrainOptions o = small_options(make_dataset("nan", 40, 200));
  o.inject_fault = "nan@3";
  {
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ASSERT_TRUE(t.value()->TrainStep().ok());
    ASSERT_TRUE(t.value()->TrainStep().ok());
    StatusOr<StepStats> s = t.value()->TrainStep();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("step 3: loss nan"), std::string::npos) << s.status().ToString();
    EXPECT_NE(s.status().message().find("rank(s) 0"), std::string::npos) << s.status().ToString();
    EXPECT_NE(s.status().message().find("--nan-policy skip"), std::string::npos) << s.status().ToString();
  }
  o.nan_policy = "skip";
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t.value()->TrainStep().ok());
  ASSERT_TRUE(t.value()->TrainStep().ok());
  auto snapshot = [&] {
    std::vector<float> all;
    for (const Parameter& p : t.value()->model().parameters()) {
      const float* v = p.value.data_as<const float>();
      all.insert(all.end(), v, v + p.value.numel());
    }
    return all;
  };
  const std::vector<float> before = snapshot();
  StatusOr<StepStats> s = t.value()->TrainStep();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s.value().skipped);
  EXPECT_EQ(s.value().step, 3);
  EXPECT_EQ(t.value()->step(), 3);
  EXPECT_EQ(t.value()->skipped_steps(), 1);
  EXPECT_EQ(t.value()->consumed_samples(), 3 * o.global_batch_size);  // the skipped batch is consumed
  const std::vector<float> after = snapshot();
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)), 0) << "a skipped step changed weights";
  StatusOr<StepStats> next = t.value()->TrainStep();
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_FALSE(next.value().skipped);
  EXPECT_TRUE(std::isfinite(next.value().loss));
  EXPECT_NE(std::memcmp(before.data(), snapshot().data(), before.size() * sizeof(float)), 0) << "step 4 updated nothing";
}

}  // namespace
}  // namespace om
