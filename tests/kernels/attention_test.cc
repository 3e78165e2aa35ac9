// Causal softmax / softmax-1 attention: the checks (kernels/check/attention_check.cc: gradients, and
// the f32 GEMM variant against the f64 reference) plus the op's own facts: the zero-key equivalence,
// rows that sum below 1 (down to ~0), large-logit stability where the naive "+1" formula fails,
// probs = exp(s - lse), overwrite, argument errors, determinism, which CPU path the API runs and the
// backward's rope_theta (rope_backward's bits).
// Facts stated through the public API run in f64 (the reference) and in f32 (the GEMM variant). The
// GEMM variant's exp is the shared one, tested in tests/kernels/exp_f32_test.cc.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/check/checks.h"
#include "kernels/rope.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr AttentionKind kBothKinds[] = {AttentionKind::kSoftmax, AttentionKind::kSoftmax1};
// The public API runs f64 through the reference and f32 through the GEMM variant.
constexpr DType kCpuDtypes[] = {DType::kF64, DType::kF32};

enum class Part : int { kQ = 0, kK = 1, kV = 2 };

// Shape letters of a (B, T, 3*H*D) qkv tensor and flat indices into it and its outputs.
struct Dims {
  int64_t B, T, H, D;
  Dims(const HostTensor& qkv, int64_t H_) : B(qkv.shape()[0]), T(qkv.shape()[1]), H(H_), D(qkv.shape()[2] / (3 * H_)) {}
  int64_t qkv(int64_t b, int64_t t, Part p, int64_t h, int64_t d) const {
    return (b * T + t) * 3 * H * D + static_cast<int>(p) * H * D + h * D + d;
  }
  int64_t out(int64_t b, int64_t t, int64_t h, int64_t d) const { return (b * T + t) * H * D + h * D + d; }
  int64_t row(int64_t b, int64_t h, int64_t i) const { return (b * H + h) * T + i; }  // lse, probs rows
};

struct Forward {
  HostTensor out, lse, probs;
};

Forward run_forward(const HostTensor& qkv, int64_t H, AttentionKind kind) {
  const Dims m(qkv, H);
  Forward f{HostTensor("out", qkv.dtype(), {m.B, m.T, H * m.D}), HostTensor("lse", qkv.dtype(), {m.B, H, m.T}),
            HostTensor("probs", qkv.dtype(), {m.B, H, m.T, m.T})};
  for (HostTensor* t : {&f.out, &f.lse, &f.probs}) t->Fill(123.0);  // garbage the forward must overwrite
  attention_forward({}, {f.out.view(), f.lse.view(), f.probs.view(), qkv.cview(), H, kind});
  return f;
}

HostTensor run_backward(const HostTensor& qkv, const Forward& f, const HostTensor& dout, int64_t H, AttentionKind kind,
                        double prefill = 0.0) {
  HostTensor dqkv("dqkv", qkv.dtype(), qkv.shape());
  dqkv.Fill(prefill);
  attention_backward({}, {dqkv.view(), dout.cview(), qkv.cview(), f.out.cview(), f.lse.cview(), H, kind});
  return dqkv;
}

// Scaled score s_ij in double from the stored inputs.
double score(const HostTensor& qkv, const Dims& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  double s = 0.0;
  for (int64_t d = 0; d < m.D; ++d) s += qkv.get(m.qkv(b, i, Part::kQ, h, d)) * qkv.get(m.qkv(b, j, Part::kK, h, d));
  return s / std::sqrt(static_cast<double>(m.D));
}

// max(1, S), S = max over causal pairs of sum_d |q_d k_d| / sqrt(D), and max|v|: the quantities in the
// rule-2 bounds derived in kernels/check/attention_check.cc (out: 2(T+D) eps max(1,S) max|v|,
// lse: (T+D) eps max(1,S), probabilities: 2(T+D) eps max(1,S)).
double score_scale(const HostTensor& qkv, const Dims& m) {
  double mx = 1.0;
  for (int64_t b = 0; b < m.B; ++b)
    for (int64_t h = 0; h < m.H; ++h)
      for (int64_t i = 0; i < m.T; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < m.D; ++d)
            s += std::fabs(qkv.get(m.qkv(b, i, Part::kQ, h, d)) * qkv.get(m.qkv(b, j, Part::kK, h, d)));
          mx = std::max(mx, s / std::sqrt(static_cast<double>(m.D)));
        }
  return mx;
}
double max_abs_v(const HostTensor& qkv, const Dims& m) {
  double mx = 0.0;
  for (int64_t b = 0; b < m.B; ++b)
    for (int64_t t = 0; t < m.T; ++t)
      for (int64_t c = 0; c < m.H * m.D; ++c) mx = std::max(mx, std::fabs(qkv.get(m.qkv(b, t, Part::kV, 0, c))));
  return mx;
}
Tolerance out_tol(DType dt, const HostTensor& qkv, const Dims& m) {
  return for_reduction(dt, 2 * (m.T + m.D), score_scale(qkv, m) * max_abs_v(qkv, m));
}
Tolerance lse_tol(DType dt, const HostTensor& qkv, const Dims& m) {
  return for_reduction(dt, m.T + m.D, score_scale(qkv, m));
}
Tolerance prob_tol(DType dt, const HostTensor& qkv, const Dims& m) {
  return for_reduction(dt, 2 * (m.T + m.D), score_scale(qkv, m));
}

HostTensor row_sums(const Forward& f, const Dims& m) {
  HostTensor s("row sums", DType::kF64, {m.B, m.H, m.T});
  for (int64_t r = 0; r < s.numel(); ++r) {
    double sum = 0.0;
    for (int64_t j = 0; j < m.T; ++j) sum += f.probs.get(r * m.T + j);
    s.set(r, sum);
  }
  return s;
}

HostTensor random_qkv(DType dt, int64_t B, int64_t T, int64_t H, int64_t D, uint64_t seed) {
  HostTensor qkv("qkv", dt, {B, T, 3 * H * D});
  qkv.FillNormal(Rng(seed, "attention_test/qkv"), 0, 1.0);
  return qkv;
}

TEST(Attention, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_attention()); }

TEST(Attention, Softmax1EqualsSoftmaxWithAPrependedZeroKeyAndValue) {
  const int64_t B = 2, T = 7, H = 3, D = 8;
  const HostTensor qkv = random_qkv(DType::kF32, B, T, H, D, 11);
  const Dims m(qkv, H);
  // Token 0 of the extended sequence: k = 0 and v = 0 (score exactly 0, contributes nothing to out)
  // and an arbitrary q; tokens 1..T are the original tokens. Causality lets every original query see it.
  HostTensor ext("qkv with zero token", DType::kF32, {B, T + 1, 3 * H * D});
  const Dims me(ext, H);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < H * D; ++c) ext.set(me.qkv(b, 0, Part::kQ, 0, c), 0.75);
    for (int64_t t = 0; t < T; ++t)  // c runs over the token's whole q | k | v row
      for (int64_t c = 0; c < 3 * H * D; ++c)
        ext.set(me.qkv(b, t + 1, Part::kQ, 0, c), qkv.get(m.qkv(b, t, Part::kQ, 0, c)));
  }
  const Forward one = run_forward(qkv, H, AttentionKind::kSoftmax1);
  const Forward plain = run_forward(ext, H, AttentionKind::kSoftmax);
  HostTensor out("softmax rows 1..T", DType::kF32, one.out.shape()),
      lse("softmax lse 1..T", DType::kF32, one.lse.shape());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d) out.set(m.out(b, t, h, d), plain.out.get(me.out(b, t + 1, h, d)));
        lse.set(m.row(b, h, t), plain.lse.get(me.row(b, h, t + 1)));
      }
  // The extended run sums T+1 terms, so its bounds (same derivation) use the extended dims.
  expect_all_ok({compare_tensors("softmax-1 vs zero-key softmax", "out", one.out, out, out_tol(DType::kF32, ext, me)),
                 compare_tensors("softmax-1 vs zero-key softmax", "lse", one.lse, lse, lse_tol(DType::kF32, ext, me))});
}

TEST(Attention, Softmax1RowsSumBelowOneAndSoftmaxRowsSumToOne) {
  for (DType dt : kCpuDtypes) {
    const HostTensor qkv = random_qkv(dt, 2, 16, 2, 8, 12);
    const Dims m(qkv, 2);
    const HostTensor sums1 = row_sums(run_forward(qkv, m.H, AttentionKind::kSoftmax1), m);
    const HostTensor sums = row_sums(run_forward(qkv, m.H, AttentionKind::kSoftmax), m);
    HostTensor ones("ones", DType::kF64, sums.shape());
    ones.Fill(1.0);
    for (int64_t r = 0; r < sums1.numel(); ++r)
      EXPECT_LT(sums1.get(r), 1.0) << dtype_name(dt) << " softmax-1 row " << r;
    expect_all_ok({compare_tensors("softmax", "rows sum to 1", sums, ones, prob_tol(dt, qkv, m))});
  }
}

TEST(Attention, Softmax1AttendsToNothingWhenEveryScoreIsVeryNegative) {
  for (DType dt : kCpuDtypes) {
    // k_j = (1, ..., 1) and q_i = (-12.5, ...): q·k = -200, scaled by 1/sqrt(16) to exactly -50 for every pair.
    const int64_t B = 1, T = 16, H = 1, D = 16;
    HostTensor qkv = random_qkv(dt, B, T, H, D, 13);  // v stays random
    const Dims m(qkv, H);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        qkv.set(m.qkv(0, t, Part::kQ, 0, d), -12.5);
        qkv.set(m.qkv(0, t, Part::kK, 0, d), 1.0);
      }
    const Forward one = run_forward(qkv, H, AttentionKind::kSoftmax1);
    const Forward plain = run_forward(qkv, H, AttentionKind::kSoftmax);
    // Exact row sums from the definition: (i+1) e^-50 / (1 + (i+1) e^-50) ~ 1e-21, i.e. ~0;
    // ordinary softmax spreads the same row uniformly and sums to 1.
    HostTensor want1("exact softmax-1 row sums", DType::kF64, {B, H, T}), ones("ones", DType::kF64, {B, H, T});
    HostTensor zeros("zeros", DType::kF64, one.out.shape());
    for (int64_t i = 0; i < T; ++i) {
      const long double e = static_cast<long double>(i + 1) * std::exp(-50.0L);
      want1.set(i, static_cast<double>(e / (1.0L + e)));
      ones.set(i, 1.0);
    }
    EXPECT_LT(want1.max_abs(), 1e-20) << "the test's premise: the exact rows are ~0";
    expect_all_ok(
        {compare_tensors("softmax-1 scores=-50", "row sums vs exact", row_sums(one, m), want1, prob_tol(dt, qkv, m)),
         compare_tensors("softmax-1 scores=-50", "out ~ 0", one.out, zeros, out_tol(dt, qkv, m)),
         compare_tensors("softmax scores=-50", "row sums", row_sums(plain, m), ones, prob_tol(dt, qkv, m))});
  }
}

// One head whose scores are all near `level`: q_t = (2 level, 0, 0, 0), k_t = (1 + 0.01 u_t, u'_t, ...),
// so s_ij = level (1 + 0.01 u_j) with D = 4 (scale 1/2). v random.
HostTensor near_constant_scores(double level, int64_t T) {
  const int64_t D = 4;
  HostTensor qkv = random_qkv(DType::kF64, 1, T, 1, D, 14);
  const Dims m(qkv, 1);
  const Rng rng(14, "attention_test/jitter");
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t d = 0; d < D; ++d) qkv.set(m.qkv(0, t, Part::kQ, 0, d), d == 0 ? 2.0 * level : 0.0);
    qkv.set(m.qkv(0, t, Part::kK, 0, 0), 1.0 + 0.01 * (2.0 * rng.UniformDouble(static_cast<uint64_t>(t)) - 1.0));
  }
  return qkv;
}

TEST(Attention, Softmax1IsExactForLargeLogitsWhereShiftThenAddOneIsWrong) {
  for (DType dt : kCpuDtypes) {
    const int64_t T = 6;
    const HostTensor qkv = near_constant_scores(60.0, T).Converted(dt, "qkv");
    const Dims m(qkv, 1);
    const Forward f = run_forward(qkv, 1, AttentionKind::kSoftmax1);
    HostTensor exact("exact p (long double)", DType::kF64, f.probs.shape());
    HostTensor naive("naive p", DType::kF64, f.probs.shape());
    for (int64_t i = 0; i < T; ++i) {
      long double denom = 1.0L;  // the definition: exp(x_j) / (1 + sum exp(x)), no shift
      double mx = -INFINITY;
      for (int64_t j = 0; j <= i; ++j) {
        denom += std::exp(static_cast<long double>(score(qkv, m, 0, 0, i, j)));
        mx = std::max(mx, score(qkv, m, 0, 0, i, j));
      }
      double naive_denom = 1.0;  // the wrong formula: shift by the max, then add a literal 1
      for (int64_t j = 0; j <= i; ++j) naive_denom += std::exp(score(qkv, m, 0, 0, i, j) - mx);
      for (int64_t j = 0; j <= i; ++j) {
        exact.set(i * T + j,
                  static_cast<double>(std::exp(static_cast<long double>(score(qkv, m, 0, 0, i, j))) / denom));
        naive.set(i * T + j, std::exp(score(qkv, m, 0, 0, i, j) - mx) / naive_denom);
      }
    }
    const Tolerance tol = prob_tol(dt, qkv, m);
    expect_all_ok({compare_tensors("softmax-1 scores~60", "kernel p vs exact", f.probs, exact, tol)});
    const CheckResult wrong = compare_tensors("softmax-1 scores~60", "naive p vs exact", naive, exact, tol);
    EXPECT_FALSE(wrong.ok()) << wrong.ToString();
    // Row 0 sees one key: exact p = e^60 / (1 + e^60) ~ 1, naive p = 1 / (1 + 1) = 1/2.
    EXPECT_GT(wrong.max_err, 0.25) << wrong.ToString();
  }
}

TEST(Attention, Softmax1StaysFiniteAndMatchesSoftmaxBeyondExpOverflow) {
  for (DType dt : kCpuDtypes) {
    const int64_t T = 6;
    const HostTensor qkv = near_constant_scores(1000.0, T).Converted(dt, "qkv");  // scores in [990, 1010]
    const Dims m(qkv, 1);
    ASSERT_TRUE(std::isinf(std::exp(990.0))) << "premise: an unshifted exp overflows double (and float) here";
    const Forward one = run_forward(qkv, 1, AttentionKind::kSoftmax1);
    const Forward plain = run_forward(qkv, 1, AttentionKind::kSoftmax);
    for (const HostTensor* t : {&one.out, &one.lse, &one.probs})
      for (int64_t i = 0; i < t->numel(); ++i) ASSERT_TRUE(std::isfinite(t->get(i))) << t->name() << "[" << i << "]";
    // The +1 is e^-990 relative to the sum: negligible, so softmax-1 equals softmax within rounding.
    expect_all_ok(
        {compare_tensors("softmax-1 vs softmax, scores~1000", "out", one.out, plain.out, out_tol(dt, qkv, m)),
         compare_tensors("softmax-1 vs softmax, scores~1000", "lse", one.lse, plain.lse, lse_tol(dt, qkv, m)),
         compare_tensors("softmax-1 vs softmax, scores~1000", "probs", one.probs, plain.probs, prob_tol(dt, qkv, m))});
  }
}

TEST(Attention, Softmax1StaysFiniteForHugeNegativeLogits) {
  // Scores in [-1010, -990]: the shift m = max(0, max s) = 0 keeps the "+1" term exp(-m) = 1. Shifting by
  // max s alone would need exp(+1000) = inf. Exact: p ~ e^-990 = 0 in double, lse = log(1 + ~0) = 0.
  for (DType dt : kCpuDtypes) {
    const int64_t T = 6;
    const HostTensor qkv = near_constant_scores(-1000.0, T).Converted(dt, "qkv");
    const Dims m(qkv, 1);
    const Forward one = run_forward(qkv, 1, AttentionKind::kSoftmax1);
    HostTensor zero_p("zeros", DType::kF64, one.probs.shape()), zero_lse("zeros", DType::kF64, one.lse.shape());
    expect_all_ok({compare_tensors("softmax-1 scores~-1000", "probs ~ 0", one.probs, zero_p, prob_tol(dt, qkv, m)),
                   compare_tensors("softmax-1 scores~-1000", "lse ~ 0", one.lse, zero_lse, lse_tol(dt, qkv, m))});
  }
}

TEST(Attention, ProbsAreExpOfScoreMinusLseAndOutIsProbsTimesV) {
  for (AttentionKind kind : kBothKinds) {
    const HostTensor qkv = random_qkv(DType::kF32, 2, 9, 2, 8, 15);
    const Dims m(qkv, 2);
    const Forward f = run_forward(qkv, m.H, kind);
    HostTensor want_p("exp(s - lse)", DType::kF64, f.probs.shape()), want_out("probs · v", DType::kF64, f.out.shape());
    bool upper_zero = true;
    for (int64_t b = 0; b < m.B; ++b)
      for (int64_t h = 0; h < m.H; ++h)
        for (int64_t i = 0; i < m.T; ++i) {
          const int64_t r = m.row(b, h, i);
          for (int64_t j = 0; j < m.T; ++j) {
            if (j <= i)
              want_p.set(r * m.T + j, std::exp(score(qkv, m, b, h, i, j) - f.lse.get(r)));
            else
              upper_zero = upper_zero && f.probs.get(r * m.T + j) == 0.0;
          }
          for (int64_t d = 0; d < m.D; ++d) {
            double o = 0.0;
            for (int64_t j = 0; j <= i; ++j) o += f.probs.get(r * m.T + j) * qkv.get(m.qkv(b, j, Part::kV, h, d));
            want_out.set(m.out(b, i, h, d), o);
          }
        }
    const std::string op = kind == AttentionKind::kSoftmax1 ? "softmax-1" : "softmax";
    // out vs the sum of T stored-probability terms: rule 2 with reduce_len T and abs sum <= max|v|.
    expect_all_ok(
        {compare_tensors(op, "probs vs exp(s - lse)", f.probs, want_p, prob_tol(DType::kF32, qkv, m)),
         check_fact(op, "probs are exactly 0 above the diagonal", upper_zero),
         compare_tensors(op, "out vs probs · v", f.out, want_out, for_reduction(DType::kF32, m.T, max_abs_v(qkv, m)))});
  }
}

TEST(Attention, BackwardOverwritesDqkv) {
  for (DType dt : kCpuDtypes)
    for (AttentionKind kind : kBothKinds) {
      const HostTensor qkv = random_qkv(dt, 2, 70, 2, 4, 16);  // T = 70: two of the GEMM variant's row blocks
      const Dims m(qkv, 2);
      HostTensor dout("dout", dt, {m.B, m.T, m.H * m.D});
      dout.FillNormal(Rng(16, "attention_test/dout"), 0, 1.0);
      const Forward f = run_forward(qkv, m.H, kind);
      const HostTensor clean = run_backward(qkv, f, dout, m.H, kind, 0.0);
      const HostTensor dirty = run_backward(qkv, f, dout, m.H, kind, 123.0);  // garbage an overwrite must replace
      expect_all_ok({compare_tensors("attention", "dqkv over garbage vs over zeros", dirty, clean, exact())});
    }
}

// rope_theta: attention_backward rotates dq and dk back by RoPE's transpose, exactly as rope_backward on
// heads [0, 2H) of its theta-0 result does; dv stays as it was.
TEST(Attention, BackwardWithRopeThetaIsBackwardThenRopeBackward) {
  for (DType dt : kCpuDtypes)
    for (AttentionKind kind : kBothKinds) {
      const HostTensor qkv = random_qkv(dt, 2, 9, 2, 8, 19);
      const Dims m(qkv, 2);
      HostTensor dout("dout", dt, {m.B, m.T, m.H * m.D});
      dout.FillNormal(Rng(19, "attention_test/dout"), 0, 1.0);
      const Forward f = run_forward(qkv, m.H, kind);
      HostTensor want = run_backward(qkv, f, dout, m.H, kind);
      const HostTensor plain = want.Clone("dqkv");
      rope_backward({}, {reshape(want.view(), Shape{m.B, m.T, 3 * m.H, m.D}), 2 * m.H, 500.0f});
      HostTensor got("dqkv", dt, qkv.shape());
      got.Fill(123.0);  // garbage the backward must overwrite
      attention_backward({}, {got.view(), dout.cview(), qkv.cview(), f.out.cview(), f.lse.cview(), m.H, kind, 500.0f});
      expect_all_ok({compare_tensors("attention", "dqkv (rope_theta) vs dqkv then rope_backward", got, want, exact())});
      // The premise: the rotation moved dq and dk (t > 0) and left dv alone.
      EXPECT_FALSE(compare_tensors("attention", "dqkv (rope_theta) vs theta 0", got, plain, exact()).ok());
      for (int64_t b = 0; b < m.B; ++b)
        for (int64_t t = 0; t < m.T; ++t)
          for (int64_t d = 0; d < m.H * m.D; ++d) {
            const int64_t at = m.qkv(b, t, Part::kV, 0, d);
            ASSERT_EQ(got.get(at), plain.get(at)) << "dv changed at (b, t, d) = (" << b << ", " << t << ", " << d
                                                  << ")";
          }
    }
}

// The CPU paths, called directly: the f64 reference on f32 storage, and the f32 GEMM variant.
enum class CpuPath { kReference, kGemm };

Forward run_forward_on(CpuPath path, const HostTensor& qkv, int64_t H, AttentionKind kind) {
  const Dims m(qkv, H);
  Forward f{HostTensor("out", qkv.dtype(), {m.B, m.T, H * m.D}), HostTensor("lse", qkv.dtype(), {m.B, H, m.T}),
            HostTensor("probs", qkv.dtype(), {m.B, H, m.T, m.T})};
  const AttentionForwardArgs args{f.out.view(), f.lse.view(), f.probs.view(), qkv.cview(), H, kind};
  path == CpuPath::kGemm ? cpu::attention_forward_gemm(args) : cpu::attention_forward(args);
  return f;
}

HostTensor run_backward_on(CpuPath path, const HostTensor& qkv, const Forward& f, const HostTensor& dout, int64_t H,
                           AttentionKind kind) {
  HostTensor dqkv("dqkv", qkv.dtype(), qkv.shape());
  const AttentionBackwardArgs args{dqkv.view(), dout.cview(), qkv.cview(), f.out.cview(), f.lse.cview(), H, kind};
  path == CpuPath::kGemm ? cpu::attention_backward_gemm(args) : cpu::attention_backward(args);
  return dqkv;
}

CheckList bit_identical(const std::string& op, const Forward& got, const HostTensor& got_d, const Forward& want,
                        const HostTensor& want_d) {
  return {compare_tensors(op, "out", got.out, want.out, exact()),
          compare_tensors(op, "lse", got.lse, want.lse, exact()),
          compare_tensors(op, "probs", got.probs, want.probs, exact()),
          compare_tensors(op, "dqkv", got_d, want_d, exact())};
}

TEST(Attention, BothCpuPathsAreBitIdenticalForOneTwoAndThreeThreads) {
  // T = 150: the GEMM variant's row blocks are 64, 64 and 22 queries; 6 (b, h) pairs over 1 to 3 threads.
  const int64_t H = 3;
  const HostTensor qkv = random_qkv(DType::kF32, 2, 150, H, 16, 17);
  const Dims m(qkv, H);
  HostTensor dout("dout", DType::kF32, {m.B, m.T, H * m.D});
  dout.FillNormal(Rng(17, "attention_test/dout"), 0, 1.0);
  const int saved = omp_get_max_threads();
  for (CpuPath path : {CpuPath::kReference, CpuPath::kGemm})
    for (AttentionKind kind : kBothKinds) {
      omp_set_num_threads(1);
      const Forward f1 = run_forward_on(path, qkv, H, kind);
      const HostTensor d1 = run_backward_on(path, qkv, f1, dout, H, kind);
      for (int threads : {2, 3}) {
        omp_set_num_threads(threads);
        const Forward f = run_forward_on(path, qkv, H, kind);
        const HostTensor d = run_backward_on(path, qkv, f, dout, H, kind);
        expect_all_ok(bit_identical(
            format_message("attention %s, %d threads vs 1", path == CpuPath::kGemm ? "gemm" : "reference", threads), f,
            d, f1, d1));
      }
    }
  omp_set_num_threads(saved);
}

TEST(Attention, ApiRunsTheGemmVariantForF32AndTheReferenceForF64) {
  for (AttentionKind kind : kBothKinds) {
    const HostTensor qkv32 = random_qkv(DType::kF32, 2, 80, 2, 8, 18);
    const Dims m(qkv32, 2);
    HostTensor dout32("dout", DType::kF32, {m.B, m.T, m.H * m.D});
    dout32.FillNormal(Rng(18, "attention_test/dout"), 0, 1.0);
    for (DType dt : kCpuDtypes) {
      const HostTensor qkv = qkv32.Converted(dt, "qkv"), dout = dout32.Converted(dt, "dout");
      const CpuPath path = dt == DType::kF32 ? CpuPath::kGemm : CpuPath::kReference;
      const Forward api = run_forward(qkv, m.H, kind);
      const Forward direct = run_forward_on(path, qkv, m.H, kind);
      expect_all_ok(bit_identical(format_message("attention API vs cpu:: %s", std::string(dtype_name(dt)).c_str()), api,
                                  run_backward(qkv, api, dout, m.H, kind), direct,
                                  run_backward_on(path, qkv, direct, dout, m.H, kind)));
    }
    // The premise that makes the f32 comparison mean something: the two paths round differently.
    const Forward gemm = run_forward_on(CpuPath::kGemm, qkv32, m.H, kind);
    const Forward ref = run_forward_on(CpuPath::kReference, qkv32, m.H, kind);
    EXPECT_FALSE(compare_tensors("attention f32", "gemm vs reference out", gemm.out, ref.out, exact()).ok());
  }
}

TEST(AttentionDeathTest, WrongLseShapeNamesTheTensor) {
  HostTensor qkv("qkv", DType::kF32, {2, 5, 3 * 3 * 4}), out("out", DType::kF32, {2, 5, 12});
  HostTensor lse("layers.0.attn.lse", DType::kF32, {2, 5, 3});  // (B, T, H) instead of (B, H, T)
  EXPECT_DEATH(attention_forward({}, {out.view(), lse.view(), TensorView{}, qkv.cview(), 3}),
               "attention_forward: 'layers.0.attn.lse' has shape \\(2, 5, 3\\) but expected \\(2, 3, 5\\)");
}

TEST(AttentionDeathTest, QkvWidthNotDivisibleByThreeHeadsNamesTheTensor) {
  HostTensor qkv("layers.0.attn.qkv", DType::kF32, {1, 4, 20}), out("out", DType::kF32, {1, 4, 4}),
      dout("dout", DType::kF32, {1, 4, 4}), lse("lse", DType::kF32, {1, 2, 4}), dqkv("dqkv", DType::kF32, {1, 4, 20});
  EXPECT_DEATH(attention_backward({}, {dqkv.view(), dout.cview(), qkv.cview(), out.cview(), lse.cview(), 2}),
               "attention_backward: 'layers.0.attn.qkv' last dim 20 is not 3\\*H\\*D with H=2");
}

TEST(AttentionDeathTest, NegativeRopeThetaIsRejected) {
  HostTensor qkv("qkv", DType::kF32, {1, 4, 12}), out("out", DType::kF32, {1, 4, 4}),
      dout("dout", DType::kF32, {1, 4, 4}), lse("lse", DType::kF32, {1, 1, 4}), dqkv("dqkv", DType::kF32, {1, 4, 12});
  EXPECT_DEATH(attention_backward({}, {dqkv.view(), dout.cview(), qkv.cview(), out.cview(), lse.cview(), 1,
                                       AttentionKind::kSoftmax, -1.0f}),
               "attention_backward: rope_theta = -1: 0 \\(no RoPE to undo\\) or a finite theta > 0");
  // The cpu:: functions leave RoPE to the entry point and say so rather than ignore it.
  EXPECT_DEATH(cpu::attention_backward_gemm({dqkv.view(), dout.cview(), qkv.cview(), out.cview(), lse.cview(), 1,
                                             AttentionKind::kSoftmax, 500.0f}),
               "rope_theta = 500: RoPE's transpose is applied by om::attention_backward");
}

TEST(AttentionDeathTest, GemmVariantRejectsF64) {
  HostTensor qkv("layers.0.attn.qkv", DType::kF64, {1, 4, 12}), out("out", DType::kF64, {1, 4, 4}),
      lse("lse", DType::kF64, {1, 1, 4});
  EXPECT_DEATH(cpu::attention_forward_gemm({out.view(), lse.view(), TensorView{}, qkv.cview(), 1}),
               "attention_forward_gemm: 'layers.0.attn.qkv' must be f32, got f64");
}

#if !OM_WITH_CUDA
// Without CUDA a CUDA context is a clear fatal error (in CUDA builds tests/cuda/attention_test.cc runs the kernel).
TEST(AttentionDeathTest, CudaContextWithoutCudaBuildIsFatal) {
  HostTensor qkv("qkv", DType::kF32, {1, 4, 12}), out("out", DType::kF32, {1, 4, 4}),
      lse("lse", DType::kF32, {1, 1, 4});
  TensorView o = out.view(), l = lse.view();
  ConstTensorView x = qkv.cview();
  o.device = l.device = x.device = Device::Cuda();  // never dereferenced: dispatch stops first
  ExecContext ctx;
  ctx.device = Device::Cuda();
  EXPECT_DEATH(attention_forward(ctx, {o, l, TensorView{}, x, 1}),
               "attention_forward: this binary was built without CUDA");
}
#endif

}  // namespace
}  // namespace om
