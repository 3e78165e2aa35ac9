// The tensor-parallel Llama (model/llama.h with a tp Comm) against the single-process model built
// locally on every rank (DESIGN.md invariant 3). The job is one tp group, tp = world size (np 2, 4), on
// a small config with H divisible by 4 and V = 100, not a multiple of 128·tp (so the vocabulary
// padding differs between the layouts: Vp = 128 at tp = 1, 128·tp at tp > 1).
//   1. Initial weights: every local tensor equals its slice of the tp = 1 tensor BITWISE (f32 and f64).
//   2. Loss and gradients: equal within the re-association bound derived below (f64 and f32).
// Only EXPECTs (expect_all_ok): an ASSERT failing on one rank would leave the others in a collective.
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/rng.h"
#include "kernels/check/tolerance.h"
#include "kernels/cross_entropy.h"
#include "model/llama.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "tests/support/llama_config.h"
#include "tests/support/llama_tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 20261129;
constexpr int64_t kBatch = 2;

LlamaConfig test_config(NormKind norm) {
  LlamaConfig c = test_llama_config(100, 32, 48, 4, 2, 8, "tp-test");
  c.attention = AttentionKind::kSoftmax1;
  c.norm = norm;
  return c;
}

ProcessGroups tp_groups() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  StatusOr<ProcessGroups> g = ProcessGroups::Create(ParallelDims::Make(n, 1, n).value());
  OM_CHECK(g.ok(), "%s", g.status().ToString().c_str());  // same outcome on every rank
  return std::move(*g);
}

HostTensor copy_of(ConstTensorView v, const std::string& name) {
  HostTensor h(name, v.dtype, v.shape);
  std::memcpy(h.view().data, v.data, v.nbytes());
  return h;
}

// The slice of the tp = 1 tensor `full` that tp rank r holds in a tensor shaped `local`
// (model/llama.h "Tensor parallelism").
HostTensor expected_shard(const std::string& name, ConstTensorView full, const Shape& local, const LlamaConfig& c,
                          int r, int tp) {
  HostTensor out(name, full.dtype, local);
  const int64_t C = c.hidden, F = c.ffn;
  if (name.find("qkv") != std::string::npos) {
    const int64_t seg[] = {C, C, C};
    slice_fused_tp_rows(full, out.view(), seg, c.head_dim(), r, tp);
  } else if (name.find("gate_up") != std::string::npos) {
    const int64_t seg[] = {F, F};
    slice_fused_tp_rows(full, out.view(), seg, 1, r, tp);
  } else if (name.find("attn.o") != std::string::npos || name.find("mlp.down") != std::string::npos) {
    slice_tp_shard(full, out.view(), TpSplitAxis::kColumns, r, tp);
  } else if (name == "embed.weight" || name == "lm_head.weight") {
    // Local row i is padded-vocabulary row r·Vl + i; rows past the tp = 1 padding are zero (as are
    // the tp = 1 rows [V, 128)).
    const int64_t Vl = local[0], row_bytes = C * static_cast<int64_t>(dtype_size(full.dtype));
    for (int64_t i = 0; i < Vl; ++i) {
      const int64_t g = r * Vl + i;
      if (g < full.dim(0)) {
        std::memcpy(static_cast<char*>(out.view().data) + i * row_bytes,
                    static_cast<const char*>(full.data) + g * row_bytes, static_cast<size_t>(row_bytes));
      }
    }
  } else {
    std::memcpy(out.view().data, full.data, full.nbytes());  // norm gains: replicated
  }
  return out;
}

struct Batch {
  HostTensor tokens, targets;  // (B, T) i32
};

Batch random_batch(const LlamaConfig& c) {
  const int64_t T = c.seq_length;
  Batch b{HostTensor("tokens", DType::kI32, {kBatch, T}), HostTensor("targets", DType::kI32, {kBatch, T})};
  const Rng rng(kSeed, "test/tokens");
  for (int64_t i = 0; i < kBatch * T; ++i) {
    b.tokens.data<int32_t>()[i] = static_cast<int32_t>(rng.Uniform(2 * i) * c.vocab_size) % c.vocab_size;
    b.targets.data<int32_t>()[i] = static_cast<int32_t>(rng.Uniform(2 * i + 1) * c.vocab_size) % c.vocab_size;
  }
  b.targets.data<int32_t>()[3] = kIgnoreTarget;
  return b;
}

TEST(LlamaTp, InitialWeightsAreBitwiseSlicesOfTheSingleProcessModel) {
  ProcessGroups g = tp_groups();
  const int r = g.tp_rank(), tp = static_cast<int>(g.dims().tp);
  for (DType dtype : {DType::kF32, DType::kF64}) {
    const LlamaConfig c = test_config(NormKind::kRmsNorm);
    Llama full(c, kBatch, Device::Cpu(), dtype);
    Llama local(c, kBatch, Device::Cpu(), dtype, &g.tp());
    full.Initialize(kSeed);
    local.Initialize(kSeed);
    EXPECT_EQ(local.local_vocab(), 128) << "V = 100 pads to 128·tp, 128 rows per rank";
    ASSERT_EQ(full.parameters().size(), local.parameters().size());
    for (size_t k = 0; k < full.parameters().size(); ++k) {
      const Parameter& p = local.parameters()[k];
      const HostTensor want = expected_shard(p.name, full.parameters()[k].value, p.value.shape, c, r, tp);
      EXPECT_EQ(std::memcmp(want.view().data, p.value.data, p.value.nbytes()), 0)
          << p.name << " " << dtype_name(dtype) << " tp_rank " << r << " differs from its tp=1 slice";
    }
  }
}

// Loss and gradients. The two models compute the same functions with the same f-dtype operations,
// except that the tp model splits some reductions into tp partial sums added by the all-reduce
// (qkv, gate_up and LM-head input gradients; O and down outputs; the cross-entropy's sum-exp), i.e.
// only the summation order differs: tests/support/llama_tolerance.h derives the bound (Vp: 128 rows of
// the padded vocabulary per rank).
Tolerance reassociation(const LlamaConfig& c, DType dtype, double max_want) {
  return llama_reassociation(c, 128, dtype, max_want);
}

TEST(LlamaTp, LossAndGradientsMatchTheSingleProcessModel) {
  ProcessGroups g = tp_groups();
  const int r = g.tp_rank(), tp = static_cast<int>(g.dims().tp);
  for (DType dtype : {DType::kF64, DType::kF32}) {
    for (NormKind norm : {NormKind::kRmsNorm, NormKind::kRmsNormS}) {
      const LlamaConfig c = test_config(norm);
      const std::string tag = std::string("llama tp") + std::to_string(tp) + " " + dtype_name(dtype).data() + " " +
                              norm_kind_name(norm) + " tp_rank " + std::to_string(r);
      Llama full(c, kBatch, Device::Cpu(), dtype);
      Llama local(c, kBatch, Device::Cpu(), dtype, &g.tp());
      full.Initialize(kSeed);
      local.Initialize(kSeed);
      const Batch b = random_batch(c);
      full.ZeroGrad();
      local.ZeroGrad();
      const double want_loss = full.Forward(b.tokens.view(), b.targets.view());
      const double got_loss = local.Forward(b.tokens.view(), b.targets.view());
      full.Backward(1.0f);
      local.Backward(1.0f);

      CheckList results;
      HostTensor got("loss", DType::kF64, {1}), want("loss", DType::kF64, {1});
      got.set(0, got_loss);
      want.set(0, want_loss);
      results.push_back(compare_tensors(tag, "loss vs tp=1", got, want, reassociation(c, dtype, want_loss)));
      for (size_t k = 0; k < full.parameters().size(); ++k) {
        const Parameter& p = local.parameters()[k];
        const HostTensor want_g = expected_shard(p.name, full.parameters()[k].grad, p.grad.shape, c, r, tp);
        const HostTensor got_g = copy_of(p.grad, "d" + p.name);
        results.push_back(compare_tensors(tag, "d" + p.name + " vs its tp=1 slice", got_g, want_g,
                                          reassociation(c, dtype, want_g.max_abs())));
      }
      expect_all_ok(results);
    }
  }
}

}  // namespace
}  // namespace om
