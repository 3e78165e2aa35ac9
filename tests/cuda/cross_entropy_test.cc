// CUDA cross-entropy (kernels/cuda/cross_entropy.cu) against the CPU reference (kernels/cpu) on the
// same inputs: the fused forward and the backward for f32 and bf16 logits at tiny, odd (N = 7,
// V = 4099: rows not 16-byte aligned, so element loads), padded (Vl = 4224, V = 4099: a partial
// chunk at the vocabulary's end, then padding) and realistic (N = 512, V = 32000) shapes, with
// ignored targets; the pieces equal the fused forward bit for bit; two vocab shards composed with
// host all-reduces match the full-row reference; an all-padding shard; aligned (vector loads) and
// unaligned (element loads) rows give the same bits; bitwise determinism; NaN propagation; the
// CUDA dtype contract and the device-side target check; the in-place backward (dlogits == logits)
// equals a separate buffer bit for bit; the one-kernel forward_backward equals forward then backward.
// Runs under cuda_test_main (exit 77 without a GPU).
//
// Tolerances (kernels/check/tolerance.h). row_max and target_logit are copies of inputs: exact.
// sum_exp sums `valid` terms exp(x - m), each within kCudaExpShiftedUlps of the exact value, in
// kCrossEntropyRowThreads per-thread f32 sums of whole chunks (at most kChunk * ceil(valid / sweep)
// terms each, sweep = kChunk * kRowThreads) added pairwise in log2(kRowThreads) levels: rule 4 with
// reduce_len = layout_reduce_len(valid), which makes rule 4's ceil(reduce_len / lanes) that
// per-thread count. Its relative error is the absolute error of log(sum_exp), so losses use rule 4
// with abs_sum 1 (the loss's own rounding, in double then to f32, is in the rtol). dlogits = p *
// dloss - [j = t] dloss carries sum_exp's relative error, its own exp's kCudaExpShiftedUlps and 3
// roundings (the factor, the product, the subtraction), all relative to p * dloss <= dloss: rule 4
// with abs_sum dloss and term_ulps 2 * kCudaExpShiftedUlps + 3. bf16 dlogits are dominated by the
// final rounding to bf16: rule 3 against the f32 CPU reference rounded to bf16.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/cross_entropy.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// Per-term error of the kernel's exp(x - m), in ulp of the exact value: CUDA's expf is within 2 ulp
// of the correctly rounded exp(s) (CUDA C++ Programming Guide, "Mathematical Functions", single
// precision, without --use_fast_math), the correct rounding itself is 0.5 ulp, and the TwoSum
// correction e + e * r adds one fma rounding (0.5 ulp) and drops r^2 / 2 < 1e-11 relative.
constexpr double kCudaExpShiftedUlps = 3.0;
constexpr int64_t kRowThreads = cuda::kCrossEntropyRowThreads;
constexpr int64_t kChunk = cuda::kCrossEntropyChunk;

constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};

struct CeShape {
  int64_t N, Vl, V;
  double stddev;  // of the logits
};
// Tiny with padding; odd; padded to 33 * 128 with a partial chunk at V; realistic; huge logits
// (most exponentials underflow; the loss must stay finite and accurate).
constexpr CeShape kShapes[] = {
    {2, 16, 13, 3.0}, {7, 4099, 4099, 3.0}, {7, 4224, 4099, 3.0}, {512, 32000, 32000, 3.0}, {7, 4099, 4099, 1000.0}};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(DType act, const CeShape& s) {
  return format_message("cross_entropy cuda %s N=%ld Vl=%ld V=%ld sd=%g", std::string(dtype_name(act)).c_str(),
                        static_cast<long>(s.N), static_cast<long>(s.Vl), static_cast<long>(s.V), s.stddev);
}

int64_t valid_columns(const VocabShard& s, int64_t Vl) {
  return std::clamp<int64_t>(s.vocab_size - s.vocab_start, 0, Vl);
}

// See the tolerance note at the top: rule 4's reduce_len for the CUDA column layout.
int64_t layout_reduce_len(int64_t valid) {
  const int64_t sweep = kChunk * kRowThreads;
  return std::max<int64_t>(1, (valid + sweep - 1) / sweep) * sweep;
}

Tolerance loss_rule(int64_t valid, double extra_ulps = 0.0) {
  return for_lane_reduction(DType::kF32, layout_reduce_len(valid), kRowThreads, 1.0, kCudaExpShiftedUlps + extra_ulps);
}
Tolerance dlogits_rule(int64_t valid, float dloss, double extra_ulps = 0.0) {
  return for_lane_reduction(DType::kF32, layout_reduce_len(valid), kRowThreads, dloss,
                            2 * kCudaExpShiftedUlps + 3.0 + extra_ulps);
}

// Logits in the activation dtype (so every value is exact in it and in f32/f64) and targets: rows
// 2 mod 8 ignored, row 0 the last real id, row 1 id 0, the rest uniform in [0, V).
struct Inputs {
  HostTensor logits, targets;
  float dloss = 0.0f;  // 1 / (non-ignored rows): the mean loss
  Inputs(DType act, const CeShape& s, uint64_t seed)
      : logits("logits", act, {s.N, s.Vl}), targets("targets", DType::kI32, {s.N}) {
    logits.FillNormal(Rng(seed, "ce-cuda/logits"), 0, s.stddev);
    const Rng rng(seed, "ce-cuda/targets");
    int64_t counted = 0;
    for (int64_t n = 0; n < s.N; ++n) {
      const bool ignored = n % 8 == 2;
      const double t = n == 0 ? s.V - 1 : n == 1 ? 0 : std::floor(rng.UniformDouble(n) * s.V);
      targets.set(n, ignored ? kIgnoreTarget : t);
      counted += ignored ? 0 : 1;
    }
    dloss = 1.0f / static_cast<float>(std::max<int64_t>(counted, 1));
  }
};

struct Outputs {
  HostTensor losses, row_max, sum_exp, target_logit, dlogits;
};

// The CPU reference in `dtype` (f32: the simd variants; f64: the reference loops) on the same values.
Outputs cpu_run(const Inputs& in, DType dtype, const VocabShard& shard) {
  const HostTensor x = in.logits.Converted(dtype);
  const int64_t N = x.shape()[0];
  Outputs o{HostTensor("losses", dtype, {N}), HostTensor("row_max", dtype, {N}), HostTensor("sum_exp", dtype, {N}),
            HostTensor("target_logit", dtype, {N}), HostTensor("dlogits", dtype, x.shape())};
  cross_entropy_forward(ExecContext{}, {o.losses.view(), o.row_max.view(), o.sum_exp.view(), o.target_logit.view(),
                                        x.view(), in.targets.view(), shard});
  cross_entropy_backward(ExecContext{}, {o.dlogits.view(), x.view(), in.targets.view(), o.row_max.view(),
                                         o.sum_exp.view(), shard, in.dloss});
  return o;
}

// A zero-filled f32 statistic per row on the device.
DeviceTensor stat(const char* name, int64_t N) { return DeviceTensor(name, DType::kF32, {N}); }

// The four statistics of a whole-vocabulary forward; forward() is cross_entropy_forward's arguments
// writing them.
struct DeviceStats {
  DeviceTensor losses, row_max, sum_exp, target_logit;
  explicit DeviceStats(int64_t N)
      : losses(stat("losses", N)), row_max(stat("row_max", N)), sum_exp(stat("sum_exp", N)),
        target_logit(stat("target_logit", N)) {}
  CrossEntropyForwardArgs forward(ConstTensorView x, ConstTensorView targets, VocabShard shard) {
    return {losses.view(), row_max.view(), sum_exp.view(), target_logit.view(), x, targets, shard};
  }
};

// Garbage the backward's overwrite must replace everywhere (padding and ignored rows included).
DeviceTensor garbage_like(const HostTensor& x, const char* name) {
  HostTensor g(name, x.dtype(), x.shape());
  g.Fill(77.0);
  return DeviceTensor::Upload(g);
}

// The CUDA fused forward, then the backward from its statistics; `stream` is synchronized.
Outputs cuda_run(const Inputs& in, const VocabShard& shard, Stream stream = {}) {
  const int64_t N = in.logits.shape()[0];
  const DeviceTensor x = DeviceTensor::Upload(in.logits), t = DeviceTensor::Upload(in.targets);
  DeviceStats st(N);
  DeviceTensor dx = garbage_like(in.logits, "dlogits");
  const ExecContext ctx = cuda_ctx(stream);
  cross_entropy_forward(ctx, st.forward(x.view(), t.view(), shard));
  cross_entropy_backward(ctx,
                         {dx.view(), x.view(), t.view(), st.row_max.cview(), st.sum_exp.cview(), shard, in.dloss});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return {st.losses.Download(), st.row_max.Download(), st.sum_exp.Download(), st.target_logit.Download(),
          dx.Download()};
}

// Exact facts: ignored rows have loss 0 and an all-zero gradient row; padding columns get 0.
void check_exclusions(const std::string& name, const Inputs& in, const Outputs& got, int64_t valid,
                      CheckList& results) {
  const int64_t N = in.logits.shape()[0], Vl = in.logits.shape()[1];
  bool ignored_ok = true, padding_ok = true;
  for (int64_t n = 0; n < N; ++n) {
    const bool ignored = in.targets.get(n) == kIgnoreTarget;
    if (ignored && got.losses.get(n) != 0.0) ignored_ok = false;
    for (int64_t j = 0; j < Vl; ++j) {
      const double d = got.dlogits.get(n * Vl + j);
      if (ignored && d != 0.0) ignored_ok = false;
      if (j >= valid && d != 0.0) padding_ok = false;
    }
  }
  results.push_back(check_fact(name, "ignored rows: loss 0 and dlogits 0", ignored_ok));
  results.push_back(check_fact(name, "padding columns: dlogits 0", padding_ok));
}

TEST(CrossEntropyCuda, ForwardAndBackwardMatchCpuReference) {
  CheckList results;
  for (DType act : kActDtypes) {
    for (const CeShape& s : kShapes) {
      const std::string name = case_name(act, s);
      const VocabShard shard{0, s.V};
      const int64_t valid = valid_columns(shard, s.Vl);
      const Inputs in(act, s, 31);
      const Outputs ref = cpu_run(in, DType::kF64, shard);
      const Outputs got = cuda_run(in, shard);
      results.push_back(compare_tensors(name, "row_max vs f64", got.row_max, ref.row_max, exact()));
      results.push_back(compare_tensors(name, "target_logit vs f64", got.target_logit, ref.target_logit, exact()));
      results.push_back(compare_tensors(name, "sum_exp vs f64", got.sum_exp, ref.sum_exp,
                                        for_lane_reduction(DType::kF32, layout_reduce_len(valid), kRowThreads,
                                                           ref.sum_exp.max_abs(), kCudaExpShiftedUlps)));
      results.push_back(compare_tensors(name, "losses vs f64", got.losses, ref.losses, loss_rule(valid)));
      if (act == DType::kF32) {
        results.push_back(
            compare_tensors(name, "dlogits vs f64", got.dlogits, ref.dlogits, dlogits_rule(valid, in.dloss)));
      } else {
        const HostTensor naive = cpu_run(in, DType::kF32, shard).dlogits.Converted(DType::kBF16);
        results.push_back(compare_tensors(name, "dlogits vs f64", got.dlogits, ref.dlogits,
                                          for_naive_reference(max_abs_diff(naive, ref.dlogits))));
      }
      check_exclusions(name, in, got, valid, results);
    }
  }
  expect_all_ok(results);
}

TEST(CrossEntropyCuda, PiecesEqualTheFusedForwardBitwise) {
  // Both run the same device functions on the same rows (the pieces read back the row max that the
  // fused kernel keeps in registers), so the statistics and losses must have identical bits.
  for (DType act : kActDtypes) {
    for (const CeShape& s : {kShapes[1], kShapes[2], kShapes[3]}) {
      SCOPED_TRACE(case_name(act, s));
      const VocabShard shard{0, s.V};
      const Inputs in(act, s, 32);
      const Outputs fused = cuda_run(in, shard);
      const DeviceTensor x = DeviceTensor::Upload(in.logits), t = DeviceTensor::Upload(in.targets);
      DeviceStats st(s.N);
      cross_entropy_row_max(cuda_ctx(), {st.row_max.view(), x.view(), shard});
      cross_entropy_sum_exp(cuda_ctx(), {st.sum_exp.view(), x.view(), st.row_max.cview(), shard});
      cross_entropy_target_logit(cuda_ctx(), {st.target_logit.view(), x.view(), t.view(), shard});
      cross_entropy_loss(cuda_ctx(), {st.losses.view(), st.row_max.cview(), st.sum_exp.cview(),
                                      st.target_logit.cview(), t.view()});
      EXPECT_TRUE(bitwise_equal(st.row_max.Download(), fused.row_max));
      EXPECT_TRUE(bitwise_equal(st.sum_exp.Download(), fused.sum_exp));
      EXPECT_TRUE(bitwise_equal(st.target_logit.Download(), fused.target_logit));
      EXPECT_TRUE(bitwise_equal(st.losses.Download(), fused.losses));
    }
  }
}

TEST(CrossEntropyCuda, TwoVocabShardsComposeToTheFullRowReference) {
  // Vocabulary 4099 padded to 4224 = 33 * 128 for tp = 2: shard 0 holds ids [0, 2112), shard 1 ids
  // [2112, 4224), of which 1987 are real (a partial chunk) and 125 padding. The all-reduces run on
  // the host in f32 (max: exact; sum: one more rounding per row, hence extra_ulps 1).
  const int64_t N = 64, Vp = 4224, V = 4099, Vl = Vp / 2;
  for (DType act : kActDtypes) {
    const std::string name = case_name(act, {N, Vp, V, 3.0}) + " 2 shards";
    const Inputs in(act, {N, Vp, V, 3.0}, 33);
    const Outputs ref = cpu_run(in, DType::kF64, {0, V});
    const DeviceTensor t = DeviceTensor::Upload(in.targets);
    std::vector<DeviceTensor> x;
    std::vector<VocabShard> shards;
    for (int64_t r = 0; r < 2; ++r) {
      x.push_back(DeviceTensor::Upload(columns(in.logits, r * Vl, (r + 1) * Vl, "logits shard")));
      shards.push_back({r * Vl, V});
    }
    HostTensor row_max("row_max (all-reduced)", DType::kF32, {N}), sum_exp("sum_exp (all-reduced)", DType::kF32, {N}),
        target_logit("target_logit (all-reduced)", DType::kF32, {N});
    row_max.Fill(-INFINITY);
    for (int64_t r = 0; r < 2; ++r) {
      DeviceTensor m = stat("row_max", N);
      cross_entropy_row_max(cuda_ctx(), {m.view(), x[r].view(), shards[r]});
      const HostTensor mh = m.Download();
      for (int64_t n = 0; n < N; ++n) row_max.set(n, std::max(row_max.get(n), mh.get(n)));
    }
    const DeviceTensor m_global = DeviceTensor::Upload(row_max);
    for (int64_t r = 0; r < 2; ++r) {
      DeviceTensor se = stat("sum_exp", N), tl = stat("target_logit", N);
      cross_entropy_sum_exp(cuda_ctx(), {se.view(), x[r].view(), m_global.view(), shards[r]});
      cross_entropy_target_logit(cuda_ctx(), {tl.view(), x[r].view(), t.view(), shards[r]});
      const HostTensor seh = se.Download(), tlh = tl.Download();
      for (int64_t n = 0; n < N; ++n) {
        sum_exp.set(n, static_cast<float>(sum_exp.get(n)) + static_cast<float>(seh.get(n)));
        target_logit.set(n, static_cast<float>(target_logit.get(n)) + static_cast<float>(tlh.get(n)));
      }
    }
    const DeviceTensor se_global = DeviceTensor::Upload(sum_exp), tl_global = DeviceTensor::Upload(target_logit);
    DeviceTensor losses = stat("losses", N);
    cross_entropy_loss(cuda_ctx(), {losses.view(), m_global.view(), se_global.view(), tl_global.view(), t.view()});
    CheckList results = {
        compare_tensors(name, "row_max vs f64", row_max, ref.row_max, exact()),
        compare_tensors(name, "target_logit vs f64", target_logit, ref.target_logit, exact()),
        compare_tensors(name, "losses vs f64", losses.Download(), ref.losses, loss_rule(Vl, 1.0)),
    };
    for (int64_t r = 0; r < 2; ++r) {
      DeviceTensor dx = garbage_like(columns(in.logits, 0, Vl, "dlogits shard"), "dlogits shard");
      cross_entropy_backward(cuda_ctx(), {dx.view(), x[r].view(), t.view(), m_global.view(), se_global.view(),
                                          shards[r], in.dloss});
      const HostTensor want = columns(ref.dlogits, r * Vl, (r + 1) * Vl, "dlogits (full row)");
      const std::string what = "shard " + std::to_string(r) + " dlogits vs f64";
      if (act == DType::kF32) {
        results.push_back(compare_tensors(name, what, dx.Download(), want, dlogits_rule(Vl, in.dloss, 1.0)));
      } else {
        const HostTensor naive = columns(cpu_run(in, DType::kF32, {0, V}).dlogits, r * Vl, (r + 1) * Vl, "naive")
                                     .Converted(DType::kBF16);
        results.push_back(compare_tensors(name, what, dx.Download(), want,
                                          for_naive_reference(max_abs_diff(naive, want))));
      }
    }
    expect_all_ok(results);
  }
}

TEST(CrossEntropyCuda, AllPaddingShardContributesNothing) {
  // ids [384, 512) of a vocabulary of 300: no real column. Same as the CPU reference, exactly:
  // max -inf, sum 0, target logit 0, and a zero gradient (garbage replaced).
  const CeShape s{7, 128, 300, 3.0};
  const VocabShard shard{384, 300};
  for (DType act : kActDtypes) {
    const std::string name = case_name(act, s) + " all padding";
    const Inputs in(act, s, 34);
    HostTensor m_global("row_max (global)", DType::kF32, {s.N});
    m_global.Fill(2.5);
    const DeviceTensor x = DeviceTensor::Upload(in.logits), t = DeviceTensor::Upload(in.targets),
                       mg = DeviceTensor::Upload(m_global);
    DeviceTensor m = stat("row_max", s.N), se = stat("sum_exp", s.N), tl = stat("target_logit", s.N),
                 dx = garbage_like(in.logits, "dlogits");
    HostTensor se_global("sum_exp (global)", DType::kF32, {s.N});
    se_global.Fill(3.0);
    const DeviceTensor sg = DeviceTensor::Upload(se_global);
    cross_entropy_row_max(cuda_ctx(), {m.view(), x.view(), shard});
    cross_entropy_sum_exp(cuda_ctx(), {se.view(), x.view(), mg.view(), shard});
    cross_entropy_target_logit(cuda_ctx(), {tl.view(), x.view(), t.view(), shard});
    cross_entropy_backward(cuda_ctx(), {dx.view(), x.view(), t.view(), mg.view(), sg.view(), shard, in.dloss});
    const HostTensor mh = m.Download(), seh = se.Download(), tlh = tl.Download(), dxh = dx.Download();
    bool ok = true;
    for (int64_t n = 0; n < s.N; ++n)
      ok = ok && mh.get(n) == -std::numeric_limits<double>::infinity() && seh.get(n) == 0.0 && tlh.get(n) == 0.0;
    for (int64_t i = 0; i < dxh.numel(); ++i) ok = ok && dxh.get(i) == 0.0;
    expect_all_ok({check_fact(name, "max -inf, sum 0, target logit 0, dlogits 0", ok)});
  }
}

TEST(CrossEntropyCuda, AlignedAndUnalignedRowsGiveTheSameBits) {
  // Vl = 4224 rows are 16-byte aligned in their own buffer (vector loads and stores); the same
  // values one element into a larger buffer are not (element loads and stores). Both paths visit
  // the same columns in the same order in every thread, so every output must have the same bits.
  const CeShape s{7, 4224, 4099, 3.0};
  const VocabShard shard{0, s.V};
  for (DType act : kActDtypes) {
    SCOPED_TRACE(case_name(act, s));
    const Inputs in(act, s, 35);
    const Outputs aligned = cuda_run(in, shard);

    const int64_t numel = s.N * s.Vl;
    HostTensor flat("logits (offset 1)", act, {numel + 1});
    for (int64_t i = 0; i < numel; ++i) flat.set(i + 1, in.logits.get(i));
    DeviceTensor x_flat = DeviceTensor::Upload(flat), dx_flat("dlogits (offset 1)", act, {numel + 1});
    const size_t one = dtype_size(act);
    const ConstTensorView x = make_view(static_cast<const char*>(x_flat.cview().data) + one, act, {s.N, s.Vl},
                                        Device::Cuda(0), "logits (offset 1)");
    const TensorView dx = make_view(static_cast<char*>(dx_flat.view().data) + one, act, {s.N, s.Vl},
                                    Device::Cuda(0), "dlogits (offset 1)");
    const DeviceTensor t = DeviceTensor::Upload(in.targets);
    DeviceStats st(s.N);
    cross_entropy_forward(cuda_ctx(), st.forward(x, t.view(), shard));
    cross_entropy_backward(cuda_ctx(), {dx, x, t.view(), st.row_max.cview(), st.sum_exp.cview(), shard, in.dloss});
    const HostTensor dx_host = dx_flat.Download();
    HostTensor dlogits("dlogits", act, {s.N, s.Vl});
    for (int64_t i = 0; i < numel; ++i) dlogits.set(i, dx_host.get(i + 1));
    EXPECT_TRUE(bitwise_equal(st.losses.Download(), aligned.losses));
    EXPECT_TRUE(bitwise_equal(st.sum_exp.Download(), aligned.sum_exp));
    EXPECT_TRUE(bitwise_equal(st.row_max.Download(), aligned.row_max));
    EXPECT_TRUE(bitwise_equal(dlogits, aligned.dlogits));
  }
}

TEST(CrossEntropyCuda, InPlaceBackwardEqualsASeparateBuffer) {
  // dlogits == logits (Llama::Backward, model/llama_backward.cc): every thread reads its chunk before
  // writing it, so the bits equal those of a separate buffer, on the padded, odd and aligned shapes.
  for (const CeShape& s : {kShapes[0], kShapes[1], kShapes[2]}) {
    for (DType act : kActDtypes) {
      SCOPED_TRACE(case_name(act, s));
      const VocabShard shard{0, s.V};
      const Inputs in(act, s, 37);
      const Outputs separate = cuda_run(in, shard);
      DeviceTensor x = DeviceTensor::Upload(in.logits);
      const DeviceTensor t = DeviceTensor::Upload(in.targets);
      DeviceStats st(s.N);
      cross_entropy_forward(cuda_ctx(), st.forward(x.cview(), t.view(), shard));
      cross_entropy_backward(cuda_ctx(), {x.view(), x.cview(), t.view(), st.row_max.cview(), st.sum_exp.cview(), shard,
                                          in.dloss});
      EXPECT_TRUE(bitwise_equal(x.Download(), separate.dlogits));
    }
  }
}

// The training step's one kernel (cross_entropy_forward_backward) gives the bits of the forward and the
// backward kernels: every statistic, the losses and dlogits, into a separate buffer and over the logits
// (the target logit is read before the row is overwritten), on rows with and without vector loads.
TEST(CrossEntropyCuda, ForwardBackwardEqualsForwardThenBackwardBitwise) {
  for (const CeShape& s : {kShapes[0], kShapes[1], kShapes[2]}) {
    for (DType act : kActDtypes) {
      SCOPED_TRACE(case_name(act, s));
      const VocabShard shard{0, s.V};
      const Inputs in(act, s, 38);
      const Outputs want = cuda_run(in, shard);
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(in_place ? "in place" : "separate dlogits");
        DeviceTensor x = DeviceTensor::Upload(in.logits), dx = garbage_like(in.logits, "dlogits");
        const DeviceTensor t = DeviceTensor::Upload(in.targets);
        DeviceStats st(s.N);
        cross_entropy_forward_backward(
            cuda_ctx(), {st.forward(x.cview(), t.view(), shard), in_place ? x.view() : dx.view(), in.dloss});
        EXPECT_TRUE(bitwise_equal(st.losses.Download(), want.losses));
        EXPECT_TRUE(bitwise_equal(st.row_max.Download(), want.row_max));
        EXPECT_TRUE(bitwise_equal(st.sum_exp.Download(), want.sum_exp));
        EXPECT_TRUE(bitwise_equal(st.target_logit.Download(), want.target_logit));
        EXPECT_TRUE(bitwise_equal((in_place ? x : dx).Download(), want.dlogits));
      }
    }
  }
}

TEST(CrossEntropyCuda, BitwiseDeterministicOnAnyStream) {
  // The realistic shape, twice; the second run on its own blocking stream (ordered after
  // DeviceTensor's default-stream uploads).
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  const CeShape& s = kShapes[3];
  for (DType act : kActDtypes) {
    SCOPED_TRACE(case_name(act, s));
    const Inputs in(act, s, 36);
    const Outputs a = cuda_run(in, {0, s.V}), b = cuda_run(in, {0, s.V}, Stream{stream});
    EXPECT_TRUE(bitwise_equal(a.losses, b.losses));
    EXPECT_TRUE(bitwise_equal(a.sum_exp, b.sum_exp));
    EXPECT_TRUE(bitwise_equal(a.dlogits, b.dlogits));
    EXPECT_GT(a.losses.max_abs(), 0.0);  // the kernels really ran
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(CrossEntropyCuda, NanLogitGivesNanLossInItsRowOnly) {
  // As on the CPU: the max skips NaN, exp(NaN - m) is NaN, so a diverged row reports NaN.
  const CeShape s{7, 4099, 4099, 3.0};
  for (DType act : kActDtypes) {
    SCOPED_TRACE(case_name(act, s));
    Inputs in(act, s, 37);
    in.logits.set(3 * s.Vl + 5, std::numeric_limits<double>::quiet_NaN());
    const Outputs got = cuda_run(in, {0, s.V});
    for (int64_t n = 0; n < s.N; ++n) {
      if (in.targets.get(n) == kIgnoreTarget) continue;
      EXPECT_EQ(std::isnan(got.losses.get(n)), n == 3) << "row " << n;
    }
  }
}

TEST(CrossEntropyCudaDeathTest, F32StatisticsAreRequiredNamingTheTensor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor x("lm_head.logits", DType::kBF16, {2, 8}), m("row_max", DType::kBF16, {2});
  EXPECT_DEATH(cross_entropy_row_max(cuda_ctx(), {m.view(), x.view(), {0, 8}}),
               "cross_entropy_row_max: 'row_max' is bf16 but expected f32");
}

TEST(CrossEntropyCudaDeathTest, F64LogitsAreRefusedNamingTheTensor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DeviceTensor x("lm_head.logits", DType::kF64, {2, 8}), m("row_max", DType::kF32, {2});
  EXPECT_DEATH(cross_entropy_row_max(cuda_ctx(), {m.view(), x.view(), {0, 8}}),
               "CUDA kernels take bf16 or f32 activations; 'lm_head.logits' is f64");
}

TEST(CrossEntropyCudaDeathTest, TargetOutsideTheVocabularyTraps) {
  // The kernel prints the row (to stdout) and traps; the next CUDA call that sees the fault (the
  // launch check if the kernel has already finished, else the synchronize) fails, fatally.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  HostTensor targets("batch.targets", DType::kI32, {2});
  targets.set(1, 6);  // a padding id: vocab_size is 5
  DeviceTensor x("logits", DType::kF32, {2, 8}), tl("target_logit", DType::kF32, {2});
  const DeviceTensor t = DeviceTensor::Upload(targets);
  EXPECT_DEATH(
      {
        cross_entropy_target_logit(cuda_ctx(), {tl.view(), x.view(), t.view(), {0, 5}});
        OM_CUDA_CHECK(cudaDeviceSynchronize());
      },
      "check failed: cuda");
}

}  // namespace
}  // namespace om
