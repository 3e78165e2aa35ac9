// DistributedOptimizer (optim/distributed_optimizer.h) in one process (LocalComm), the mixed-precision
// contract that the bf16 model relies on (model/llama.h "Precision"), checked on the CPU where
// kernels/cast.h runs too:
//   - with bf16 values and f32 gradients the optimizer's f32 master weights follow exactly the path of
//     an optimizer over f32 values that start at the same (bf16-representable) numbers: the update
//     reads the master and the gradients only, never the rounded copies;
//   - after every step each bf16 value is the master rounded to nearest even (core/dtype.h's
//     float_to_bf16_bits), and f32 values next to them (a norm gain) are the master exactly.
// AdamW and OrthoAdam (Haar), 5 steps each. The multi-rank facts are tests/parallel/.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "optim/distributed_optimizer.h"
#include "parallel/local_comm.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 2026;

// w (9, 12) and w2 (5, 7) are matrices (bf16 in the mixed model), g (12) a gain (f32 in both).
struct Model {
  Model(DType matrix_dtype)
      : w("w", matrix_dtype, {9, 12}), w2("w2", matrix_dtype, {5, 7}), g("g", DType::kF32, {12}) {
    // The same numbers in both models: f32 draws rounded to bf16 (exact in either dtype).
    for (HostTensor* t : {&w, &w2, &g}) {
      const Rng rng(kSeed, "init/" + t->name());
      for (int64_t i = 0; i < t->numel(); ++i) {
        const float x = static_cast<float>(0.5 * rng.NormalDouble(static_cast<uint64_t>(i)));
        t->set(i, bf16_bits_to_float(float_to_bf16_bits(x)));
      }
    }
  }
  std::vector<Parameter> params() {
    return {Parameter{"w", w.view(), dw.view(), true, {whole_tensor_block("w", w.shape())}},
            Parameter{"g", g.view(), dg.view(), false, {whole_tensor_block("g", g.shape())}},
            Parameter{"w2", w2.view(), dw2.view(), true, {whole_tensor_block("w2", w2.shape())}}};
  }
  void SetGrads(int k) {
    HostTensor* grads[] = {&dw, &dg, &dw2};
    for (HostTensor* t : grads) {
      const Rng rng(kSeed, "grad/" + t->name());
      for (int64_t i = 0; i < t->numel(); ++i) t->set(i, rng.NormalDouble(static_cast<uint64_t>(k * 1000 + i)));
    }
  }
  HostTensor w, w2, g;
  HostTensor dw{"dw", DType::kF32, {9, 12}}, dw2{"dw2", DType::kF32, {5, 7}}, dg{"dg", DType::kF32, {12}};
};

OptimizerConfig config(OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  c.block = 4;  // several units and column blocks per matrix
  c.seed = kSeed;
  c.adam.weight_decay = 0.1f;
  return c;
}

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

void expect_mixed_follows_f32(OptimizerKind kind) {
  Model f32(DType::kF32), mixed(DType::kBF16);
  LocalComm local_a("dp"), local_b("dp");
  const std::vector<Parameter> pa = f32.params(), pb = mixed.params();
  DistributedOptimizer ref(pa, config(kind), local_a), opt(pb, config(kind), local_b);
  for (int k = 1; k <= 5; ++k) {
    f32.SetGrads(k);
    mixed.SetGrads(k);
    EXPECT_EQ(ref.ReduceGradients(), opt.ReduceGradients()) << "step " << k;
    ref.Step(1e-2f, 1.0f);
    opt.Step(1e-2f, 1.0f);
    // The masters: the same f32 bits.
    const ConstTensorView ma = ref.master_shard(), mb = opt.master_shard();
    ASSERT_EQ(ma.numel(), mb.numel());
    int64_t master_diff = 0;
    for (int64_t i = 0; i < ma.numel(); ++i) {
      master_diff += bits_of(static_cast<const float*>(ma.data)[i]) != bits_of(static_cast<const float*>(mb.data)[i]);
    }
    EXPECT_EQ(master_diff, 0) << "step " << k;
    // The values: bf16 = RNE(f32 value), f32 gain = the f32 value.
    for (const auto& [want, got] : {std::pair{&f32.w, &mixed.w}, std::pair{&f32.w2, &mixed.w2}}) {
      int64_t bad = 0;
      for (int64_t i = 0; i < want->numel(); ++i) {
        const uint16_t expect = float_to_bf16_bits(static_cast<float>(want->get(i)));
        bad += static_cast<const uint16_t*>(got->view().data)[i] != expect;
      }
      EXPECT_EQ(bad, 0) << want->name() << " step " << k;
    }
    int64_t gain_diff = 0;
    for (int64_t i = 0; i < f32.g.numel(); ++i) gain_diff += f32.g.get(i) != mixed.g.get(i);
    EXPECT_EQ(gain_diff, 0) << "g step " << k;
  }
  // The values moved (so the comparison above was not of untouched tensors).
  Model start(DType::kF32);
  int64_t moved = 0;
  for (int64_t i = 0; i < start.w.numel(); ++i) moved += start.w.get(i) != f32.w.get(i);
  EXPECT_GT(moved, start.w.numel() / 2);
}

TEST(DistributedOptimizerMixed, Bf16ValuesAdamWMasterFollowsF32AndValuesAreItsRounding) {
  expect_mixed_follows_f32(OptimizerKind::kAdamW);
}
TEST(DistributedOptimizerMixed, Bf16ValuesOrthoAdamMasterFollowsF32AndValuesAreItsRounding) {
  expect_mixed_follows_f32(OptimizerKind::kOrthoAdam);
}

TEST(DistributedOptimizerMixed, RefusesABf16Gradient) {
  Model mixed(DType::kBF16);
  HostTensor bad_grad("dw", DType::kBF16, {9, 12});
  std::vector<Parameter> p = mixed.params();
  p[0].grad = bad_grad.view();
  LocalComm local("dp");
  EXPECT_DEATH(DistributedOptimizer(p, config(OptimizerKind::kAdamW), local), "f32 gradient");
}

}  // namespace
}  // namespace om
