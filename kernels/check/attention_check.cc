// Checks for kernels/attention.h, for softmax and softmax-1: dqkv against central differences in
// f64 (B=2, T=5, H=2, D=4), then the f32 kernel against the f64 kernel at B=2, T=64, H=4, D=32
// (out, lse, and each probability row's sum against its exact value).
#include <algorithm>
#include <cmath>

#include "kernels/attention.h"
#include "kernels/check/checks.h"

namespace om {
namespace {

const char* kind_name(AttentionKind k) { return k == AttentionKind::kSoftmax1 ? "softmax-1" : "softmax"; }

struct AttentionCase {
  int64_t B, T, H, D;
  HostTensor qkv, out, lse, probs;
  AttentionCase(DType dt, int64_t B_, int64_t T_, int64_t H_, int64_t D_, uint64_t seed)
      : B(B_),
        T(T_),
        H(H_),
        D(D_),
        qkv("qkv", dt, {B, T, 3 * H * D}),
        out("out", dt, {B, T, H * D}),
        lse("lse", dt, {B, H, T}),
        probs("probs", dt, {B, H, T, T}) {
    qkv.FillNormal(Rng(seed, "attention/qkv"), 0, 1.0);
  }
  void forward(AttentionKind kind) {
    attention_forward(ExecContext{}, {out.view(), lse.view(), probs.view(), qkv.view(), H, kind});
  }
  std::string tag(AttentionKind kind) const {
    return format_message("attention(%s) B=%ld T=%ld H=%ld D=%ld", kind_name(kind), static_cast<long>(B),
                          static_cast<long>(T), static_cast<long>(H), static_cast<long>(D));
  }
  double q(int64_t b, int64_t t, int64_t h, int64_t d) const { return qkv.get((b * T + t) * 3 * H * D + h * D + d); }
  double k(int64_t b, int64_t t, int64_t h, int64_t d) const {
    return qkv.get((b * T + t) * 3 * H * D + (H + h) * D + d);
  }
  // max |v|: bounds |out| since a probability row sums to at most 1.
  double max_abs_v() const {
    double mx = 0.0;
    for (int64_t n = 0; n < B * T; ++n)
      for (int64_t c = 0; c < H * D; ++c) mx = std::max(mx, std::fabs(qkv.get(n * 3 * H * D + 2 * H * D + c)));
    return mx;
  }
  // S = max over (b, h, i, j <= i) of sum_d |q_d k_d| / sqrt(D): the absolute-value sum behind one score.
  double score_abs_sum() const {
    double mx = 0.0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i)
          for (int64_t j = 0; j <= i; ++j) {
            double s = 0.0;
            for (int64_t d = 0; d < D; ++d) s += std::fabs(q(b, i, h, d) * k(b, j, h, d));
            mx = std::max(mx, s / std::sqrt(static_cast<double>(D)));
          }
    return mx;
  }
};

CheckResult gradient_check(AttentionKind kind) {
  const int64_t B = 2, T = 5, H = 2, D = 4;
  AttentionCase c(DType::kF64, B, T, H, D, 1);
  HostTensor r("R", DType::kF64, {B, T, H * D});
  r.FillNormal(Rng(1, "attention/R"), 0, 1.0);
  c.forward(kind);
  double scale = 0.0;
  weighted_sum(c.out, r, &scale);
  HostTensor dqkv("dqkv", DType::kF64, c.qkv.shape());
  attention_backward(ExecContext{}, {dqkv.view(), r.view(), c.qkv.view(), c.out.view(), c.lse.view(), H, kind});
  auto loss = [&] {
    c.forward(kind);
    return weighted_sum(c.out, r);  // loss = sum out · R
  };
  return finite_difference_check(c.tag(kind) + " f64", "dqkv vs central differences", c.qkv, dqkv, loss, scale);
}

CheckList precision_checks(AttentionKind kind) {
  const int64_t B = 2, T = 64, H = 4, D = 32;
  AttentionCase c32(DType::kF32, B, T, H, D, 2);
  AttentionCase c64(DType::kF64, B, T, H, D, 2);
  c64.qkv = c32.qkv.Converted(DType::kF64);
  c32.forward(kind);
  c64.forward(kind);
  // Error bound for a computation in f32 (rule 2), with S = c64.score_abs_sum():
  //   a score s_ij is a length-D dot product:         |ds| <= D eps S
  //   lse_i = m + log(sum of <= T+1 terms):           |dlse| <= max|ds| + T eps <= (T + D) eps max(1, S)
  //   p_ij = exp(s_ij - lse_i):                       |dp| <= p (2 D S + T) eps   (+ a few rounding ulps)
  //   out_i = sum_j p_ij v_j, T terms:                |dout| <= sum_j |dp_ij| |v_j| + T eps sum_j p_ij |v_j|
  //                                                          <= 2 (T + D) eps max(1, S) max|v|
  //   a row sum sum_j p_ij:                           <= 2 (T + D) eps max(1, S)
  // Our f32 path computes in double and rounds once per stored value, so it lands far inside.
  const double s1 = std::max(1.0, c64.score_abs_sum());
  const std::string tag = c32.tag(kind);
  CheckList results;
  results.push_back(compare_tensors(tag, "f32 out vs f64", c32.out, c64.out,
                                    for_reduction(DType::kF32, 2 * (T + D), s1 * c64.max_abs_v())));
  results.push_back(compare_tensors(tag, "f32 lse vs f64", c32.lse, c64.lse, for_reduction(DType::kF32, T + D, s1)));
  // Row sums of the f32 probabilities. softmax: exactly 1. softmax-1: sum_j e^s / (1 + sum_j e^s)
  // = 1 - 1/(1 + sum_j e^s) = 1 - exp(-lse), strictly below 1.
  HostTensor got("f32 row sums", DType::kF64, {B, H, T}), want("exact row sums", DType::kF64, {B, H, T});
  bool below_one = true;
  for (int64_t row = 0; row < B * H * T; ++row) {
    double sum = 0.0;
    for (int64_t j = 0; j < T; ++j) sum += c32.probs.get(row * T + j);
    got.set(row, sum);
    want.set(row, kind == AttentionKind::kSoftmax1 ? 1.0 - std::exp(-c64.lse.get(row)) : 1.0);
    below_one = below_one && sum < 1.0;
  }
  results.push_back(
      compare_tensors(tag, "f32 probs row sums vs exact", got, want, for_reduction(DType::kF32, 2 * (T + D), s1)));
  if (kind == AttentionKind::kSoftmax1) results.push_back(check_fact(tag, "f32 probs rows sum to < 1", below_one));
  return results;
}

}  // namespace

CheckList check_attention() {
  CheckList all;
  for (AttentionKind kind : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1}) {
    all.push_back(gradient_check(kind));
    for (CheckResult& r : precision_checks(kind)) all.push_back(std::move(r));
  }
  return all;
}

}  // namespace om
