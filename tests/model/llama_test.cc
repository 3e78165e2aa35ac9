// Llama (model/llama.h) and LlamaConfig (model/llama_config.h): whole-model gradients against
// central differences in f64, the loss at initialisation, memorisation with AdamW, layout-invariant
// initialisation, sub-batch forwards, and the config's presets, counts and errors.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/portable_normal.h"
#include "kernels/adamw.h"
#include "kernels/check/checks.h"
#include "kernels/cross_entropy.h"
#include "model/llama.h"
#include "tests/support/llama_config.h"
#include "tests/support/llama_tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// A copy of a (CPU) model tensor.
HostTensor copy_of(const ConstTensorView& v, const std::string& name) {
  HostTensor h(name, v.dtype, v.shape);
  std::memcpy(h.view().data, v.data, v.nbytes());
  return h;
}

bool bitwise_equal(const ConstTensorView& a, const ConstTensorView& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

struct Batch {
  HostTensor tokens, targets;  // (B, T) i32
};

// Random tokens in [0, V); targets are the next token (the last one random), as in training.
Batch random_batch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Batch b{HostTensor("tokens", DType::kI32, {B, T}), HostTensor("targets", DType::kI32, {B, T})};
  const Rng rng(seed, "test/tokens");
  std::vector<int32_t> seq(static_cast<size_t>(T + 1));
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t t = 0; t <= T; ++t) seq[t] = static_cast<int32_t>(rng.Uniform(r * (T + 1) + t) * V) % V;
    for (int64_t t = 0; t < T; ++t) {
      b.tokens.data<int32_t>()[r * T + t] = seq[t];
      b.targets.data<int32_t>()[r * T + t] = seq[t + 1];
    }
  }
  return b;
}

// ---- 1. Whole-model gradients in f64 against central differences --------------------------------

// Parameters of O(1) effect, so every path of the network is exercised (at the 0.02 initialisation
// most gradients are too small for a finite-difference check to mean much): matrices N(0, 1/fan_in),
// the embedding N(0, 1), norm gains U(0.5, 1.5). The padding rows of the LM head get random values
// too: the loss must not depend on them (both gradients 0), which is what masking means.
void randomize_f64(Llama& model, uint64_t seed) {
  for (const Parameter& p : model.parameters()) {
    double* d = p.value.data_as<double>();
    const Rng rng(seed, "test/" + p.name);
    if (p.value.ndim() == 1) {
      for (int64_t i = 0; i < p.value.numel(); ++i) d[i] = 0.5 + rng.UniformDouble(i);
    } else {
      const double stddev = p.name == "embed.weight" ? 1.0 : 1.0 / std::sqrt(static_cast<double>(p.value.dim(1)));
      rng.FillNormal(d, p.value.numel(), 0, 0.0, stddev);
    }
  }
}

// Sets the OpenMP thread count for one scope. The tests on toy shapes (C <= 32) run a few thousand
// forwards of ~30 ops, each an OpenMP parallel region whose fork/join costs more than its work (30x
// slower with 2 threads on a busy 2-core host). The kernels' results do not depend on the thread
// count (kernels/README.md "Determinism"), so one thread checks the same numbers.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(Llama, GradientsOfEveryParameterMatchCentralDifferencesInF64) {
  // V=11 is padded to Vp=128: 117 masked logit columns per row. One target is ignored.
  const ScopedOmpThreads one_thread(1);
  const int64_t B = 2, T = 5;
  for (AttentionKind attention : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1}) {
    for (NormKind norm : {NormKind::kRmsNorm, NormKind::kRmsNormS}) {
      LlamaConfig config = test_llama_config(11, 8, 12, 2, 2, T);
      config.attention = attention;
      config.norm = norm;
      Llama model(config, B, Device::Cpu(), DType::kF64);
      ASSERT_EQ(config.padded_vocab(), 128);
      randomize_f64(model, 7);
      Batch batch = random_batch(B, T, config.vocab_size, 3);
      batch.targets.data<int32_t>()[T + 2] = kIgnoreTarget;

      model.ZeroGrad();
      const double loss0 = model.Forward(batch.tokens.view(), batch.targets.view());
      model.Backward(1.0f);
      // The loss is (1/count)·Σ_n loss_n with every loss_n >= 0: its terms sum in absolute value to
      // the loss itself, the loss_scale for_finite_difference's rounding term needs.
      const std::string tag = std::string("llama f64 ") + attention_kind_name(attention) + " " + norm_kind_name(norm);
      CheckList results;
      for (const Parameter& p : model.parameters()) {
        HostTensor x = copy_of(p.value, p.name);
        const HostTensor analytic = copy_of(p.grad, "d" + p.name);
        auto loss = [&] {
          std::memcpy(p.value.data, x.view().data, p.value.nbytes());
          return model.Forward(batch.tokens.view(), batch.targets.view());
        };
        results.push_back(finite_difference_check(tag, p.name + " vs central differences", x, analytic, loss, loss0));
      }
      expect_all_ok(results);
      // Padding rows of the LM head and embedding (ids >= V never occur) get exactly zero gradient.
      const Parameter& lm_head = model.parameters().back();
      const double* g = lm_head.grad.data_as<const double>();
      for (int64_t i = config.vocab_size * config.hidden; i < lm_head.grad.numel(); ++i)
        ASSERT_EQ(g[i], 0.0) << tag << ": lm_head padding gradient at " << i;
    }
  }
}

TEST(Llama, LossIsMeanCrossEntropyOverNonIgnoredTargetsAndTheFirstVColumns) {
  const ScopedOmpThreads one_thread(1);
  const int64_t B = 2, T = 5;
  const LlamaConfig config = test_llama_config(11, 8, 12, 2, 1, T);
  Llama model(config, B, Device::Cpu(), DType::kF64);
  randomize_f64(model, 9);
  Batch batch = random_batch(B, T, config.vocab_size, 4);
  batch.targets.data<int32_t>()[1] = kIgnoreTarget;
  batch.targets.data<int32_t>()[T + 4] = kIgnoreTarget;
  const double loss = model.Forward(batch.tokens.view(), batch.targets.view());
  // Recompute from the logits in double: log-sum-exp over columns [0, V) only.
  const ConstTensorView logits = model.logits();
  ASSERT_EQ(logits.shape, (Shape{B, T, 128}));
  const double* z = logits.data_as<const double>();
  double sum = 0.0;
  int count = 0;
  for (int64_t n = 0; n < B * T; ++n) {
    const int32_t t = batch.targets.data<int32_t>()[n];
    if (t == kIgnoreTarget) continue;
    double se = 0.0;
    for (int64_t j = 0; j < config.vocab_size; ++j) se += std::exp(z[n * 128 + j]);
    sum += std::log(se) - z[n * 128 + t];
    ++count;
  }
  EXPECT_EQ(count, 8);
  // Both are f64. Per row, log(sum_j exp(z_j)) over V terms is off by <= V·eps relative in the sum,
  // i.e. V·eps absolute after the log, on top of roundings of size eps·max|z| (the kernel subtracts
  // and adds back the row max); the mean of 8 such rows keeps that bound. Rule 2 with reduce_len V
  // and abs_sum 1 + max|z|.
  double max_z = 0.0;
  for (int64_t i = 0; i < logits.numel(); ++i) max_z = std::max(max_z, std::fabs(z[i]));
  const Tolerance tol = for_reduction(DType::kF64, config.vocab_size, 1.0 + max_z);
  EXPECT_NEAR(loss, sum / count, tol.atol + tol.rtol * std::fabs(sum / count));

  // All targets ignored: loss 0 and no gradient at all.
  batch.targets.Fill(kIgnoreTarget);
  model.ZeroGrad();
  EXPECT_EQ(model.Forward(batch.tokens.view(), batch.targets.view()), 0.0);
  model.Backward(1.0f);
  for (const Parameter& p : model.parameters())
    for (int64_t i = 0; i < p.grad.numel(); ++i) ASSERT_EQ(p.grad.data_as<const double>()[i], 0.0) << p.name;
}

TEST(Llama, BackwardAccumulatesParameterGradients) {
  const ScopedOmpThreads one_thread(1);
  // Two passes with loss_scale 1/2 equal one pass with 1, bit for bit in f64: scaling by a power of
  // two is exact, the f64 matmul adds its finished sum to c (g/2 + g/2 = g exactly), and the
  // activation-gradient buffers are overwritten, not accumulated, between the passes.
  const int64_t B = 2, T = 5;
  const LlamaConfig config = test_llama_config(11, 8, 12, 2, 2, T);
  Llama model(config, B, Device::Cpu(), DType::kF64);
  randomize_f64(model, 11);
  const Batch batch = random_batch(B, T, config.vocab_size, 5);
  model.ZeroGrad();
  model.Forward(batch.tokens.cview(), batch.targets.cview());
  model.Backward(1.0f);
  std::vector<HostTensor> once;
  for (const Parameter& p : model.parameters()) once.push_back(copy_of(p.grad, p.name));
  model.ZeroGrad();
  for (int k = 0; k < 2; ++k) {
    model.Forward(batch.tokens.cview(), batch.targets.cview());
    model.Backward(0.5f);
  }
  for (size_t k = 0; k < once.size(); ++k)
    EXPECT_TRUE(bitwise_equal(model.parameters()[k].grad, once[k].cview())) << model.parameters()[k].name;
}

// ---- 2. Loss at initialisation -----------------------------------------------------------------

TEST(Llama, LossAtInitialisationIsNearLogV) {
  // At N(0, 0.02) the logits have variance ~ C·0.02² = 0.1 (the final norm output has unit RMS), so
  // the expected loss is ln V + 0.1/2 above the uniform guess: within 0.1 of ln V.
  const LlamaConfig config = LlamaConfig::Preset("tiny").value();
  Llama model(config, 1);
  model.Initialize(1234);
  const Batch batch = random_batch(1, config.seq_length, config.vocab_size, 1);
  const double loss = model.Forward(batch.tokens.cview(), batch.targets.cview());
  EXPECT_NEAR(loss, std::log(static_cast<double>(config.vocab_size)), 0.1);
}

// ---- 3. Memorisation -----------------------------------------------------------------------------

TEST(Llama, MemorisesTwoSequencesWithAdamW) {
  // Two random 16-token sequences over V=64; AdamW at lr 1e-2 with no weight decay. Observed: loss
  // 4.2 -> < 0.1 in 26 (softmax, rmsnorm) and 25 (softmax1, rmsnorm-s) steps; the cap is 300.
  const ScopedOmpThreads one_thread(1);
  for (AttentionKind attention : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1}) {
    LlamaConfig config = test_llama_config(64, 32, 64, 2, 2, 16);
    config.attention = attention;
    config.norm = attention == AttentionKind::kSoftmax ? NormKind::kRmsNorm : NormKind::kRmsNormS;
    Llama model(config, 2);
    model.Initialize(42);
    const Batch batch = random_batch(2, config.seq_length, config.vocab_size, 8);
    std::vector<HostTensor> m, v;
    for (const Parameter& p : model.parameters()) {
      m.emplace_back("m", p.value.dtype, p.value.shape);
      v.emplace_back("v", p.value.dtype, p.value.shape);
    }
    const double initial = model.Forward(batch.tokens.cview(), batch.targets.cview());
    double loss = initial;
    int step = 0;
    while (loss >= 0.1 && step < 300) {
      model.ZeroGrad();
      model.Backward(1.0f);
      ++step;
      for (size_t k = 0; k < model.parameters().size(); ++k) {
        const Parameter& p = model.parameters()[k];
        AdamWArgs args{p.value, m[k].view(), v[k].view(), p.grad};
        args.lr = 1e-2f;
        args.step = step;
        adamw_update(ExecContext{}, args);
      }
      loss = model.Forward(batch.tokens.cview(), batch.targets.cview());
    }
    EXPECT_LT(loss, 0.1) << attention_kind_name(attention) << ": loss " << initial << " -> " << loss << " after "
                         << step << " steps";
    RecordProperty(std::string("steps_") + attention_kind_name(attention), step);
  }
}

// ---- 4. Initialisation is a function of (seed, logical name, logical index) ----------------------

TEST(Llama, InitialisationIsLayoutInvariantAndSeeded) {
  const LlamaConfig config = test_llama_config(100, 16, 24, 2, 3, 4);  // V=100 -> Vp=128: 28 padding rows
  const int64_t C = config.hidden, F = config.ffn, V = config.vocab_size, L = config.n_layers;
  Llama model(config, 1);
  const uint64_t seed = 77;
  model.Initialize(seed);
  auto param = [&](const std::string& name) -> const Parameter& {
    for (const Parameter& p : model.parameters())
      if (p.name == name) return p;
    ADD_FAILURE() << "no parameter " << name;
    return model.parameters()[0];
  };
  // Element (r, c) of memory rows [row0, row0 + rows) must be float(s) * float(N(r·C_in + c)) of the
  // logical tensor's stream, N = portable::normal_portable, exactly (one float multiply of the same two
  // numbers).
  auto expect_block = [&](const std::string& name, const std::string& logical, int64_t row0, int64_t rows,
                          double s) {
    const Parameter& p = param(name);
    const int64_t cols = p.value.dim(1);
    const float* d = p.value.data_as<const float>();
    const Rng rng(seed, "init/" + logical);
    for (int64_t i = 0; i < rows * cols; ++i)
      ASSERT_EQ(d[row0 * cols + i],
                static_cast<float>(s) * static_cast<float>(portable::normal_portable(seed, rng.stream(), i)))
          << logical << " element " << i;
  };
  const double s = 0.02, s_out = 0.02 / std::sqrt(2.0 * L);
  expect_block("embed.weight", "embed.weight", 0, V, s);
  expect_block("lm_head.weight", "lm_head.weight", 0, V, s);
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    expect_block(p + "attn.qkv.weight", p + "attn.q.weight", 0, C, s);
    expect_block(p + "attn.qkv.weight", p + "attn.k.weight", C, C, s);
    expect_block(p + "attn.qkv.weight", p + "attn.v.weight", 2 * C, C, s);
    expect_block(p + "attn.o.weight", p + "attn.o.weight", 0, C, s_out);
    expect_block(p + "mlp.gate_up.weight", p + "mlp.gate.weight", 0, F, s);
    expect_block(p + "mlp.gate_up.weight", p + "mlp.up.weight", F, F, s);
    expect_block(p + "mlp.down.weight", p + "mlp.down.weight", 0, C, s_out);
  }
  for (const char* name : {"embed.weight", "lm_head.weight"}) {
    const float* d = param(name).value.data_as<const float>();
    for (int64_t i = V * C; i < config.padded_vocab() * C; ++i) ASSERT_EQ(d[i], 0.0f) << name << " padding " << i;
  }
  for (const Parameter& p : model.parameters()) {
    if (p.value.ndim() != 1) continue;
    EXPECT_FALSE(p.weight_decay) << p.name;
    for (int64_t i = 0; i < p.value.numel(); ++i) ASSERT_EQ(p.value.data_as<const float>()[i], 1.0f) << p.name;
  }

  Llama again(config, 1), other(config, 1);
  again.Initialize(seed);
  other.Initialize(seed + 1);
  for (size_t k = 0; k < model.parameters().size(); ++k) {
    const Parameter& p = model.parameters()[k];
    EXPECT_TRUE(bitwise_equal(p.value, again.parameters()[k].value)) << p.name;
    if (p.value.ndim() == 2) {
      EXPECT_FALSE(bitwise_equal(p.value, other.parameters()[k].value)) << p.name;
    }
  }
}

TEST(Llama, ParameterNamesShapesAndOrder) {
  const LlamaConfig config = test_llama_config(100, 16, 24, 2, 2, 4);
  Llama model(config, 1);
  const std::vector<std::pair<std::string, Shape>> want = {
      {"embed.weight", {128, 16}},
      {"layers.0.attn_norm.weight", {16}},
      {"layers.0.attn.qkv.weight", {48, 16}},
      {"layers.0.attn.o.weight", {16, 16}},
      {"layers.0.mlp_norm.weight", {16}},
      {"layers.0.mlp.gate_up.weight", {48, 16}},
      {"layers.0.mlp.down.weight", {16, 24}},
      {"layers.1.attn_norm.weight", {16}},
      {"layers.1.attn.qkv.weight", {48, 16}},
      {"layers.1.attn.o.weight", {16, 16}},
      {"layers.1.mlp_norm.weight", {16}},
      {"layers.1.mlp.gate_up.weight", {48, 16}},
      {"layers.1.mlp.down.weight", {16, 24}},
      {"final_norm.weight", {16}},
      {"lm_head.weight", {128, 16}},
  };
  ASSERT_EQ(model.parameters().size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    const Parameter& p = model.parameters()[k];
    EXPECT_EQ(p.name, want[k].first);
    EXPECT_EQ(p.value.shape, want[k].second) << p.name;
    EXPECT_EQ(p.grad.shape, want[k].second) << p.name;
    EXPECT_STREQ(p.value.name, p.name.c_str());
  }
}

// ---- 5. A smaller micro-batch computes the same rows ----------------------------------------------

TEST(Llama, SubBatchForwardEqualsTheFirstRowsOfAFullBatch) {
  // Every forward op is row-local (norms, RoPE, swiglu, cross-entropy per token; attention per
  // sequence), so the first B' sequences of a B-sequence forward are the same function of the same
  // inputs. f64 goes through the plain-loop matmul, whose order per element is fixed: bit for bit. f32
  // goes through dnnl_sgemm (kernels/cpu/matmul.cc), whose summation order per element may depend on
  // the call's row count. On the AVX-512 machines of earlier sessions (oneDNN's and OpenBLAS's SkylakeX
  // kernels: bench/results/2026-11-28_cpu-2core_matmul.md) the rows came out bit for bit at B·T = 128 ..
  // 1024; on an AVX2-only AMD EPYC (2026-12-01) the 3-sequence forward's logits differ from the same rows
  // of the 4-sequence one by up to 2.4e-7 (1-2 ulp), and a bare single-threaded dnnl_sgemm gives other
  // bits at M = 2, 3, 7, 8 than at M = 512 (K = 64, N = 64 .. 300). So f32 is held to the re-association
  // bound (tests/support/llama_tolerance.h: 5.7e-4 here), which a wrong or shifted row (≈ 1) exceeds.
  CheckList results;
  for (DType dtype : {DType::kF32, DType::kF64}) {
    const LlamaConfig config = test_llama_config(300, 64, 160, 4, 2, 128);  // B·T = 128 .. 512 rows
    const int64_t Bm = 4;
    Llama model(config, Bm, Device::Cpu(), dtype);
    model.Initialize(5);
    const Batch full = random_batch(Bm, config.seq_length, config.vocab_size, 6);
    model.Forward(full.tokens.cview(), full.targets.cview());
    const HostTensor full_logits = copy_of(model.logits(), "full logits");
    for (int64_t B : {1, 3}) {
      const Batch part = random_batch(B, config.seq_length, config.vocab_size, 6);  // same first rows
      model.Forward(part.tokens.cview(), part.targets.cview());
      const ConstTensorView logits = model.logits();
      ASSERT_EQ(logits.dim(0), B);
      const std::string tag = std::string(dtype_name(dtype)) + " B=" + std::to_string(B);
      if (dtype == DType::kF64) {
        EXPECT_EQ(std::memcmp(logits.data, full_logits.view().data, logits.nbytes()), 0) << tag;
        continue;
      }
      HostTensor want("first rows", dtype, logits.shape);
      std::memcpy(want.view().data, full_logits.view().data, logits.nbytes());
      results.push_back(compare_tensors(tag, "logits vs the first rows of B=4", copy_of(logits, "logits"), want,
                                        llama_reassociation(config, model.local_vocab(), dtype, want.max_abs())));
    }
  }
  expect_all_ok(results);
}

// ---- 6. LlamaConfig ------------------------------------------------------------------------------

TEST(LlamaConfig, PresetParameterCounts) {
  // Logical parameters: 2·V·C (embed + LM head) + L·(4C² + 3CF + 2C) + C.
  struct Want {
    const char* name;
    int64_t params;
  } wants[] = {{"llama-60m", 58073600},   {"llama-130m", 134105856}, {"llama-350m", 367969280},
               {"llama-1b", 1339082752},  {"tiny", 7358720},         {"small", 16913280}};
  for (const Want& w : wants) {
    const StatusOr<LlamaConfig> c = LlamaConfig::Preset(w.name);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_TRUE(c->Validate().ok()) << w.name;
    EXPECT_EQ(c->num_parameters(), w.params) << w.name;
    EXPECT_EQ(c->seq_length, 256);
  }
  const LlamaConfig tiny = LlamaConfig::Preset("tiny").value();
  EXPECT_EQ(tiny.ToString(), "tiny: V=8192 C=256 F=688 H=4 L=4 T=256 softmax rmsnorm, 7.4M params");
  // N_matmul = L·(4C² + 3CF) + V·C; FLOPs/token = 6·N_matmul + 12·L·C·T.
  EXPECT_EQ(tiny.num_matmul_parameters(), 4 * (4 * 256 * 256 + 3 * 256 * 688) + 8192 * 256);
  EXPECT_DOUBLE_EQ(tiny.flops_per_token(), 6.0 * tiny.num_matmul_parameters() + 12.0 * 4 * 256 * 256);
  LlamaConfig s = tiny;
  s.norm = NormKind::kRmsNormS;  // one gain per norm instead of C
  EXPECT_EQ(s.num_parameters(), tiny.num_parameters() - (2 * 4 + 1) * (256 - 1));
}

TEST(LlamaConfig, UnknownPresetListsTheValidNames) {
  const StatusOr<LlamaConfig> c = LlamaConfig::Preset("llama-7b");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  const std::string m = c.status().message();
  EXPECT_NE(m.find("llama-7b"), std::string::npos) << m;
  for (const std::string& name : LlamaConfig::PresetNames()) EXPECT_NE(m.find(name), std::string::npos) << m;
  EXPECT_EQ(LlamaConfig::PresetNames().size(), 6u);
}

TEST(LlamaConfig, ValidateNamesTheField) {
  auto message = [](LlamaConfig c) {
    const Status s = c.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  const LlamaConfig base = LlamaConfig::Preset("tiny").value();
  LlamaConfig c = base;
  c.hidden = 100;
  c.n_heads = 3;
  EXPECT_EQ(message(c), "--hidden-size 100 is not divisible by --num-attention-heads 3");
  c = base;
  c.hidden = 6;
  c.n_heads = 2;  // D = 3: odd
  EXPECT_NE(message(c).find("--num-attention-heads"), std::string::npos);
  const struct {
    int64_t LlamaConfig::*field;
    const char* flag;
  } fields[] = {{&LlamaConfig::vocab_size, "--vocab-size"},   {&LlamaConfig::hidden, "--hidden-size"},
                {&LlamaConfig::ffn, "--ffn-hidden-size"},     {&LlamaConfig::n_heads, "--num-attention-heads"},
                {&LlamaConfig::n_layers, "--num-layers"},     {&LlamaConfig::seq_length, "--seq-length"}};
  for (const auto& f : fields) {
    c = base;
    c.*f.field = 0;
    EXPECT_EQ(message(c).rfind(std::string(f.flag) + " 0 must be positive", 0), 0u) << message(c);
  }
  c = base;
  c.norm_eps = 0.0f;
  EXPECT_NE(message(c).find("--norm-epsilon"), std::string::npos);
  c = base;
  c.rope_theta = -1.0f;
  EXPECT_NE(message(c).find("--rotary-base"), std::string::npos);
}

TEST(LlamaConfig, ParsesAttentionAndNormKinds) {
  EXPECT_EQ(parse_attention_kind("softmax").value(), AttentionKind::kSoftmax);
  EXPECT_EQ(parse_attention_kind("softmax1").value(), AttentionKind::kSoftmax1);
  EXPECT_EQ(parse_attention_kind("softmax-1").value(), AttentionKind::kSoftmax1);
  EXPECT_EQ(parse_norm_kind("rmsnorm").value(), NormKind::kRmsNorm);
  EXPECT_EQ(parse_norm_kind("rmsnorm-s").value(), NormKind::kRmsNormS);
  const Status a = parse_attention_kind("sigmoid").status();
  EXPECT_EQ(a.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.message().find("--attention 'sigmoid'"), std::string::npos) << a.message();
  EXPECT_NE(a.message().find("softmax, softmax1"), std::string::npos) << a.message();
  const Status n = parse_norm_kind("layernorm").status();
  EXPECT_NE(n.message().find("rmsnorm, rmsnorm-s"), std::string::npos) << n.message();
  for (AttentionKind k : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1})
    EXPECT_EQ(parse_attention_kind(attention_kind_name(k)).value(), k);
  for (NormKind k : {NormKind::kRmsNorm, NormKind::kRmsNormS}) EXPECT_EQ(parse_norm_kind(norm_kind_name(k)).value(), k);
}

TEST(LlamaDeathTest, ForwardRejectsABatchLargerThanTheArena) {
  const LlamaConfig config = test_llama_config(11, 8, 12, 2, 1, 5);
  Llama model(config, 2);
  const Batch batch = random_batch(3, 5, 11, 1);
  EXPECT_DEATH(model.Forward(batch.tokens.cview(), batch.targets.cview()), "1 <= B <= max_micro_batch 2");
}

}  // namespace
}  // namespace om
