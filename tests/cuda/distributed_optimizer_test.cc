// The ZeRO-1 optimizer on the GPU (optim/distributed_optimizer.h), one process (dp = 1, LocalComm), over
// a model of many small parameters (bf16 values, f32 gradients, as in mixed-precision training):
//   - AdamW's master weights and published bf16 values equal the CPU optimizer's bit for bit after two
//     steps from the same state (the CUDA update is the CPU's, operation for operation, and the bf16
//     rounding is the same: kernels/adamw.h, kernels/cast.h); the grouped calls change no bit; so do the
//     gradients stepped in place (gains of 64 elements: every gradient fills whole 256-byte blocks);
//   - a step's device work (ReduceGradients + Step, counted on the emulator: tests/support/host_waits.h)
//     does not grow with the number of parameters: 12 and 60 parameters cost the same launches, for AdamW
//     and OrthoAdam, because the per-parameter copies, updates and casts are grouped calls (at most 64 or
//     96 tensors per launch) where one launch per parameter and op would add about 4 per parameter.
// Skipped (exit 77) without a GPU, like every CUDA test (tests/support/cuda_test_main.cc).
#include <cstdio>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "optim/distributed_optimizer.h"
#include "parallel/local_comm.h"
#include "tests/support/host_waits.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// n parameters alternating a (48, 40) matrix with weight decay and a (gain) gain without, values drawn
// N(0, 0.5) in f32 and rounded to bf16, gradients N(0, 1) in f32: the same bits on every device. A gain of
// 40 leaves 96-byte gaps between the gradients (the optimizer copies them into its shard), 64 none
// (DistributedOptimizer::gradients_in_place).
struct Model {
  Arena values, grads;
  std::vector<Parameter> params;
};

Model make_model(Device device, int n, int64_t gain = 40) {
  const auto shape_of = [gain](int i) { return i % 2 == 0 ? Shape{48, 40} : Shape{gain}; };
  size_t value_bytes = 0, grad_bytes = 0;
  for (int i = 0; i < n; ++i) {
    value_bytes += Arena::BytesFor(DType::kBF16, shape_of(i));
    grad_bytes += Arena::BytesFor(DType::kF32, shape_of(i));
  }
  Model m{Arena(device, value_bytes, "test values"), Arena(device, grad_bytes, "test grads"), {}};
  for (int i = 0; i < n; ++i) {
    std::string name = "p";  // built step by step: GCC 12's -Wrestrict misfires on "p" + to_string(i) + ...
    name += std::to_string(i);
    name += i % 2 == 0 ? ".weight" : ".norm";
    Parameter p;
    p.name = name;
    p.value = m.values.Carve(name, DType::kBF16, shape_of(i));
    p.grad = m.grads.Carve(name + ".grad", DType::kF32, shape_of(i));
    p.weight_decay = i % 2 == 0;
    p.blocks = {whole_tensor_block(name, shape_of(i))};
    HostTensor value(name, DType::kF32, shape_of(i)), grad(name + ".grad", DType::kF32, shape_of(i));
    value.FillNormal(Rng(7, "value/" + name), 0, 0.5);
    grad.FillNormal(Rng(7, "grad/" + name), 0, 1.0);
    const HostTensor value16 = value.Converted(DType::kBF16);
    copy_bytes(p.value.data, device, value16.view().data, Device::Cpu(), p.value.nbytes());
    copy_bytes(p.grad.data, device, grad.view().data, Device::Cpu(), p.grad.nbytes());
    m.params.push_back(p);
  }
  return m;
}

OptimizerConfig config_of(OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  c.adam.weight_decay = 0.1f;
  return c;
}

void step(DistributedOptimizer& opt) {
  opt.ReduceGradients();
  opt.Step(1e-2f, 1.0f);
}

HostTensor download(const ConstTensorView& t) {
  HostTensor h(t.name, t.dtype, t.shape);
  copy_bytes(h.view().data, Device::Cpu(), t.data, t.device, t.nbytes());
  return h;
}

TEST(DistributedOptimizerCuda, AdamWEqualsTheCpuOptimizerBitForBit) {
#if defined(__FMA__) || defined(__aarch64__)
  GTEST_SKIP() << "the host compiler may contract the CPU reference's multiply-adds (tests/cuda/adamw_test.cc)";
#endif
  for (const int64_t gain : {40, 64}) {
    SCOPED_TRACE("gain " + std::to_string(gain));
    Model gpu = make_model(Device::Cuda(0), 60, gain), cpu = make_model(Device::Cpu(), 60, gain);
    LocalComm gpu_dp, cpu_dp;
    DistributedOptimizer g(gpu.params, config_of(OptimizerKind::kAdamW), gpu_dp);
    DistributedOptimizer c(cpu.params, config_of(OptimizerKind::kAdamW), cpu_dp);
    EXPECT_EQ(g.gradients_in_place(), gain == 64);
    EXPECT_EQ(c.gradients_in_place(), gain == 64);
    const HostTensor before = download(cpu.params[0].value);
    for (int k = 0; k < 2; ++k) {
      step(g);
      step(c);
    }
    EXPECT_TRUE(bitwise_equal(download(g.master_shard()), download(c.master_shard()))) << "master shard";
    EXPECT_TRUE(bitwise_equal(download(g.m_shard()), download(c.m_shard()))) << "first moment";
    EXPECT_TRUE(bitwise_equal(download(g.v_shard()), download(c.v_shard()))) << "second moment";
    for (size_t i = 0; i < gpu.params.size(); ++i) {
      EXPECT_TRUE(bitwise_equal(download(gpu.params[i].value), download(cpu.params[i].value))) << gpu.params[i].name;
    }
    EXPECT_FALSE(bitwise_equal(download(cpu.params[0].value), before)) << "the steps changed nothing";
  }
}

// Device work of one ReduceGradients + Step after a first step (which builds the rotations' plans).
int64_t launches_per_step(int n_params, OptimizerKind kind) {
  Model m = make_model(Device::Cuda(0), n_params);
  LocalComm dp;
  DistributedOptimizer opt(m.params, config_of(kind), dp);
  step(opt);
  const int64_t before = emu_counts_now().device_launches;
  step(opt);
  return emu_counts_now().device_launches - before;
}

TEST(DistributedOptimizerCuda, AStepsLaunchesDoNotGrowWithTheParameterCount) {
  if (emu_counts_now().device_launches < 0) GTEST_SKIP() << "launches are counted on the CUDA emulator only";
  for (OptimizerKind kind : {OptimizerKind::kAdamW, OptimizerKind::kOrthoAdam}) {
    const char* name = kind == OptimizerKind::kAdamW ? "adamw" : "orthoadam";
    const int64_t few = launches_per_step(12, kind), many = launches_per_step(60, kind);
    std::printf("%s: %ld launches per step with 12 parameters, %ld with 60\n", name, static_cast<long>(few),
                static_cast<long>(many));
    EXPECT_EQ(many, few) << name;
    EXPECT_GT(few, 0) << name;
  }
}

}  // namespace
}  // namespace om
