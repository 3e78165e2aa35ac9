// ortho_megatron's flags: help, aliases, config files and the errors for bad input.
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "core/buffer.h"
#include "launch/train_options.h"
#include "launch/trainer.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Parsed {
  StatusOr<ParseOutcome> outcome;
  TrainOptions options;
  std::string out;  // what was printed to stdout
};

Parsed parse(std::vector<std::string> args, int world_size = 1) {
  args.insert(args.begin(), "ortho_megatron");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream captured;
  std::streambuf* saved = std::cout.rdbuf(captured.rdbuf());
  TrainOptions o;
  StatusOr<ParseOutcome> r = parse_train_options(static_cast<int>(argv.size()), argv.data(), world_size, &o);
  std::cout.rdbuf(saved);
  return Parsed{std::move(r), o, captured.str()};
}

void expect_status_mentions(const Status& s, const std::string& text) {
  ASSERT_FALSE(s.ok()) << "expected an error mentioning " << text;
  EXPECT_NE(s.message().find(text), std::string::npos) << s.ToString();
}

void expect_error_mentions(const Parsed& p, const std::string& text) {
  ASSERT_FALSE(p.outcome.ok()) << "expected an error mentioning " << text;
  EXPECT_NE(p.outcome.status().message().find(text), std::string::npos) << p.outcome.status().ToString();
}

TEST(TrainOptions, HelpListsEveryFlag) {
  Parsed p = parse({"--help"});
  ASSERT_TRUE(p.outcome.ok());
  EXPECT_EQ(p.outcome.value(), ParseOutcome::kHelpShown);
  for (const char* flag :
       {"--model", "--attention", "--norm", "--vocab-size", "--seq-length", "--tp", "--dp", "--micro-batch-size",
        "--global-batch-size", "--train-iters", "--lr", "--min-lr", "--lr-warmup-iters", "--lr-decay-iters",
        "--optimizer", "--clip-grad", "--weight-decay", "--adam-beta1", "--adam-beta2", "--adam-eps", "--seed",
        "--data-path", "--valid-data-path", "--eval-interval", "--eval-iters", "--log-interval", "--save",
        "--log-dir", "--peak-tflops", "--device", "--threads", "--cuda-graphs", "--config", "--help",
        "--overlap-grad-reduce", "--ddp-bucket-size",
        "tensor-model-parallel-size", "data-parallel-size"}) {
    EXPECT_NE(p.out.find(flag), std::string::npos) << flag << " missing from --help";
  }
  for (const char* group : {"Model:", "Parallelism:", "Batch and schedule:", "Optimizer:", "Data:"})
    EXPECT_NE(p.out.find(group), std::string::npos) << group;
}

TEST(TrainOptions, DefaultsAndDerivedValues) {
  Parsed p = parse({"--data-path", "d", "--micro-batch-size", "4", "--train-iters", "50"});
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_EQ(p.options.global_batch_size, 4);  // micro x dp
  EXPECT_EQ(p.options.lr_decay_iters, 50);    // = train iters
  EXPECT_EQ(p.options.accumulation_steps(), 1);
  Parsed q = parse({"--data-path", "d", "--micro-batch-size", "4", "--global-batch-size", "12"});
  ASSERT_TRUE(q.outcome.ok());
  EXPECT_EQ(q.options.accumulation_steps(), 3);
}

TEST(TrainOptions, MegatronAliases) {
  Parsed p = parse({"--data-path", "d", "--tensor-model-parallel-size", "2", "--data-parallel-size=4"}, 8);
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_EQ(p.options.tp, 2);
  EXPECT_EQ(p.options.dp, 4);
}

TEST(TrainOptions, ConfigFileWithCommandLineWinning) {
  const std::string path = ::testing::TempDir() + "/train.cfg";
  std::ofstream(path) << "data-path = from_file\nlr = 0.01\ntensor-model-parallel-size = 1\ntrain-iters = 7\n";
  Parsed p = parse({"--config", path, "--lr", "0.002"});
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_EQ(p.options.data_path, "from_file");
  EXPECT_FLOAT_EQ(p.options.lr, 0.002f);
  EXPECT_EQ(p.options.train_iters, 7);
  std::ofstream(path) << "data-path = x\nbogus-flag = 1\n";
  expect_error_mentions(parse({"--config", path}), "bogus-flag");
  expect_error_mentions(parse({"--config", "/nonexistent/cfg"}), "--config '/nonexistent/cfg'");
}

TEST(TrainOptions, BadInputNamesTheFlag) {
  expect_error_mentions(parse({"--data-path", "d", "--bogus", "1"}), "--bogus");
  expect_error_mentions(parse({}), "--data-path");
  expect_error_mentions(parse({"--data-path", "d", "--micro-batch-size", "4", "--global-batch-size", "10"}),
                        "--global-batch-size (10) must be a multiple of --micro-batch-size (4)");
  expect_error_mentions(parse({"--data-path", "d", "--tp", "2"}), "--tp (2) * --dp (1) = 2 but the job has 1 rank");
  expect_error_mentions(parse({"--data-path", "d", "--train-iters", "0"}), "--train-iters");
  expect_error_mentions(parse({"--data-path", "d", "--lr", "abc"}), "lr");
  expect_error_mentions(parse({"--data-path", "d", "--optimizer", "sgd"}), "--optimizer 'sgd'");
  expect_error_mentions(parse({"--data-path", "d", "--device", "tpu"}), "--device 'tpu'");
  expect_error_mentions(parse({"--data-path", "d", "--nan-policy", "ignore"}), "--nan-policy 'ignore'");
  expect_error_mentions(parse({"--data-path", "d", "--comm-timeout-s", "-1"}), "--comm-timeout-s");
  expect_error_mentions(parse({"--data-path", "d", "--inject-fault", "nan"}), "--inject-fault 'nan'");
  expect_error_mentions(parse({"--data-path", "d", "--inject-fault", "oops@3"}), "--inject-fault 'oops@3'");
  expect_error_mentions(parse({"--data-path", "d", "--inject-fault", "nan@0"}), "--inject-fault 'nan@0'");
  expect_error_mentions(parse({"--data-path", "d", "--adam-beta2", "1"}), "--adam-beta2");
  expect_error_mentions(parse({"--data-path", "d", "--device", "cpu", "--cuda-graphs"}),
                        "--cuda-graphs needs --device cuda");
  expect_error_mentions(parse({"--data-path", "d", "--ddp-bucket-size", "0"}), "--ddp-bucket-size must be >= 1");
  expect_error_mentions(parse({"--data-path", "d", "--ortho-precision", "fp16"}), "--ortho-precision 'fp16'");
  expect_error_mentions(parse({"--data-path", "d", "--ortho-precision", "tf32"}), "it needs --optimizer orthoadam");
  expect_error_mentions(
      parse({"--data-path", "d", "--optimizer", "orthoadam", "--ortho-precision", "tf32", "--device", "cpu"}),
      "--ortho-precision tf32 runs on CUDA tensor cores; use fp32 with --device cpu");
  Parsed tf32 =
      parse({"--data-path", "d", "--optimizer", "orthoadam", "--ortho-precision", "tf32", "--device", "cuda"});
  ASSERT_TRUE(tf32.outcome.ok()) << tf32.outcome.status().ToString();
  EXPECT_EQ(optimizer_config_for(tf32.options).value().rotate_precision, RotatePrecision::kTF32);
  EXPECT_EQ(optimizer_config_for(parse({"--data-path", "d"}).options).value().rotate_precision, RotatePrecision::kF32);
  Parsed overlap = parse({"--data-path", "d", "--overlap-grad-reduce", "--ddp-bucket-size", "1000"});
  ASSERT_TRUE(overlap.outcome.ok()) << overlap.outcome.status().ToString();
  EXPECT_TRUE(overlap.options.overlap_grad_reduce);
  EXPECT_EQ(overlap.options.ddp_bucket_size, 1000);
  EXPECT_EQ(optimizer_config_for(overlap.options).value().grad_bucket, 1000);
  EXPECT_EQ(optimizer_config_for(parse({"--data-path", "d"}).options).value().grad_bucket, 0) << "off by default";
  Parsed graphs = parse({"--data-path", "d", "--device", "cuda", "--cuda-graphs"});
  ASSERT_TRUE(graphs.outcome.ok()) << graphs.outcome.status().ToString();
  EXPECT_TRUE(graphs.options.cuda_graphs);
}

TEST(TrainOptions, DryRunPlansAnyLayoutFromOneProcess) {
  Parsed p = parse({"--data-path", "d", "--tp", "2", "--dp", "4", "--dry-run"});
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_TRUE(p.options.dry_run);
  expect_error_mentions(parse({"--data-path", "d", "--tp", "2", "--dp", "4"}), "but the job has 1 rank");
}

TEST(TrainOptions, FaultSpecsParse) {
  StatusOr<FaultInjection> f = parse_fault("hang@12:3");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->kind, FaultInjection::Kind::kHang);
  EXPECT_EQ(f->step, 12);
  EXPECT_EQ(f->rank, 3);
  EXPECT_TRUE(f->Applies(12, 3));
  EXPECT_FALSE(f->Applies(12, 2));
  EXPECT_FALSE(f->Applies(11, 3));
  StatusOr<FaultInjection> every = parse_fault("nan@2");
  ASSERT_TRUE(every.ok());
  EXPECT_TRUE(every->Applies(2, 0) && every->Applies(2, 7));
  StatusOr<FaultInjection> none = parse_fault("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->Applies(1, 0));
}

TEST(TrainOptions, DeviceDefaultsToAutoAndResolvesPerRank) {
  Parsed p = parse({"--data-path", "d"});
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_EQ(p.options.device, "auto");
  StatusOr<Device> cpu = resolve_device("cpu", 3);
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu.value(), Device::Cpu());
  const int gpus = device_memory::cuda_device_count();
  // auto: this rank's GPU when the node has one for it, else the CPU.
  StatusOr<Device> any = resolve_device("auto", 0);
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any.value(), gpus > 0 ? Device::Cuda(0) : Device::Cpu());
  StatusOr<Device> beyond = resolve_device("auto", gpus);
  ASSERT_TRUE(beyond.ok());
  EXPECT_EQ(beyond.value(), Device::Cpu());
  // cuda: an error naming the flag where there is no GPU for this rank.
  if (gpus == 0) {
    expect_status_mentions(resolve_device("cuda", 0).status(), "--device cuda");
  } else {
    StatusOr<Device> first = resolve_device("cuda", gpus - 1);
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(first.value(), Device::Cuda(gpus - 1));
    expect_status_mentions(resolve_device("cuda", gpus).status(), "one rank per GPU");
  }
  expect_status_mentions(resolve_device("gpu", 0).status(), "--device 'gpu'");
}

TEST(TrainOptions, DtypeAutoIsBf16OnCudaAndF32OnTheCpu) {
  Parsed p = parse({"--data-path", "d"});
  ASSERT_TRUE(p.outcome.ok()) << p.outcome.status().ToString();
  EXPECT_EQ(p.options.dtype, "auto");
  EXPECT_EQ(resolve_dtype("auto", Device::Cpu()).value(), DType::kF32);
  EXPECT_EQ(resolve_dtype("auto", Device::Cuda(0)).value(), DType::kBF16);
  EXPECT_EQ(resolve_dtype("bf16", Device::Cuda(1)).value(), DType::kBF16);
  EXPECT_EQ(resolve_dtype("f32", Device::Cuda(0)).value(), DType::kF32);
  EXPECT_EQ(resolve_dtype("f32", Device::Cpu()).value(), DType::kF32);
  // bf16 on the CPU: refused at resolution (a job whose --device auto fell back to the CPU) and, when
  // --device cpu is explicit, already by the flag check; both name the flag and the fix.
  expect_status_mentions(resolve_dtype("bf16", Device::Cpu()).status(), "--dtype bf16 runs on CUDA only");
  expect_status_mentions(resolve_dtype("fp16", Device::Cuda(0)).status(), "--dtype 'fp16'");
  Parsed bad = parse({"--data-path", "d", "--device", "cpu", "--dtype", "bf16"});
  ASSERT_FALSE(bad.outcome.ok());
  expect_status_mentions(bad.outcome.status(), "--dtype f32 or auto");
  Parsed unknown = parse({"--data-path", "d", "--dtype", "half"});
  ASSERT_FALSE(unknown.outcome.ok());
  expect_status_mentions(unknown.outcome.status(), "--dtype 'half'");
}

}  // namespace
}  // namespace om
