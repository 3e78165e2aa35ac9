// Checks for kernels/attention.h, for softmax and softmax-1: dqkv against central differences in
// f64 (B=2, T=5, H=2, D=4; the public API runs f64 through the reference), then the f32 GEMM variant
// (cpu::attention_*_gemm, what the public API runs for f32) against the f64 reference at B=2, T=64,
// H=4, D=32, at the tiny Llama's head shape B=1, T=256, H=4, D=64, and at B=2, T=100, H=3, D=24
// (T not a multiple of the variant's 64-query blocks, 1/sqrt(D) not a power of two): out, lse,
// probs, each probability row's sum against its exact value, and dqkv. Last, the same for the
// reference run on f32 storage at B=2, T=64, H=4, D=32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention.h"
#include "kernels/check/checks.h"

namespace om {
namespace {

const char* kind_name(AttentionKind k) { return k == AttentionKind::kSoftmax1 ? "softmax-1" : "softmax"; }

struct AttentionCase {
  int64_t B, T, H, D;
  HostTensor qkv, out, lse, probs, dout, dqkv;
  AttentionCase(DType dt, int64_t B_, int64_t T_, int64_t H_, int64_t D_, uint64_t seed)
      : B(B_),
        T(T_),
        H(H_),
        D(D_),
        qkv("qkv", dt, {B, T, 3 * H * D}),
        out("out", dt, {B, T, H * D}),
        lse("lse", dt, {B, H, T}),
        probs("probs", dt, {B, H, T, T}),
        dout("dout", dt, {B, T, H * D}),
        dqkv("dqkv", dt, {B, T, 3 * H * D}) {
    qkv.FillNormal(Rng(seed, "attention/qkv"), 0, 1.0);
    dout.FillNormal(Rng(seed, "attention/dout"), 0, 1.0);
  }
  AttentionForwardArgs forward_args(AttentionKind kind) {
    return {out.view(), lse.view(), probs.view(), qkv.view(), H, kind};
  }
  AttentionBackwardArgs backward_args(AttentionKind kind) {
    return {dqkv.view(), dout.view(), qkv.view(), out.view(), lse.view(), H, kind};
  }
  void forward(AttentionKind kind) { attention_forward(ExecContext{}, forward_args(kind)); }
  std::string tag(AttentionKind kind) const {
    return format_message("attention(%s) B=%ld T=%ld H=%ld D=%ld", kind_name(kind), static_cast<long>(B),
                          static_cast<long>(T), static_cast<long>(H), static_cast<long>(D));
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

// The magnitudes behind the rule-2 bounds below, from an f64 case after its forward and backward.
struct Magnitudes {
  double E = 1.0;       // max(1, S), S = max over (b, h, i, j <= i) of sum_d |q_id k_jd| / sqrt(D)
  double max_v = 0.0;   // max |v|: bounds |out| since a probability row sums to at most 1
  double a_dqkv = 0.0;  // max(A_q, A_k, A_v), defined with the derivation
};

Magnitudes magnitudes(const AttentionCase& c) {
  const int64_t T = c.T, D = c.D, row = 3 * c.H * c.D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double* qkv = c.qkv.data<double>();
  const double* dout = c.dout.data<double>();
  Magnitudes mg;
  std::vector<double> q(T * D), k(T * D), v(T * D), go(T * D), w(T * T), gamma(T);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {  // absolute values of the head's q, k, v and dout
          const double* x = qkv + (b * T + t) * row + h * D + d;
          q[t * D + d] = std::fabs(x[0]);
          k[t * D + d] = std::fabs(x[c.H * D]);
          v[t * D + d] = std::fabs(x[2 * c.H * D]);
          go[t * D + d] = std::fabs(dout[(b * T + t) * c.H * D + h * D + d]);
          mg.max_v = std::max(mg.max_v, v[t * D + d]);
        }
      const double* p = c.probs.data<double>() + (b * c.H + h) * T * T;
      for (int64_t i = 0; i < T; ++i) {
        gamma[i] = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          double sqk = 0.0, g = 0.0;  // w_ij = G_ij = sum_d |dout_id v_jd| for now
          for (int64_t d = 0; d < D; ++d) {
            sqk += q[i * D + d] * k[j * D + d];
            g += go[i * D + d] * v[j * D + d];
          }
          mg.E = std::max(mg.E, scale * sqk);
          w[i * T + j] = g;
          gamma[i] += p[i * T + j] * g;
        }
        for (int64_t j = 0; j <= i; ++j) w[i * T + j] += gamma[i];  // W_ij = G_ij + Gamma_i
      }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t d = 0; d < D; ++d) {
          double aq = 0.0, ak = 0.0, av = 0.0;  // A_q at (i, d); A_k and A_v at key i (= j), d
          for (int64_t j = 0; j <= i; ++j) aq += p[i * T + j] * w[i * T + j] * k[j * D + d];
          for (int64_t r = i; r < T; ++r) {
            ak += p[r * T + i] * w[r * T + i] * q[r * D + d];
            av += p[r * T + i] * go[r * D + d];
          }
          mg.a_dqkv = std::max({mg.a_dqkv, scale * aq, scale * ak, av});
        }
    }
  return mg;
}

// The f32 implementation under test: the GEMM variant (production), or the reference on f32 storage
// (computes in double; checked too, as the bench times it).
enum class F32Path { kGemm, kReference };

CheckList f32_checks(F32Path path, AttentionKind kind, int64_t B, int64_t T, int64_t H, int64_t D, uint64_t seed) {
  AttentionCase c32(DType::kF32, B, T, H, D, seed);
  AttentionCase c64(DType::kF64, B, T, H, D, seed);
  c64.qkv = c32.qkv.Converted(DType::kF64);
  c64.dout = c32.dout.Converted(DType::kF64);
  if (path == F32Path::kGemm) {
    cpu::attention_forward_gemm(c32.forward_args(kind));
    cpu::attention_backward_gemm(c32.backward_args(kind));
  } else {
    cpu::attention_forward(c32.forward_args(kind));
    cpu::attention_backward(c32.backward_args(kind));
  }
  cpu::attention_forward(c64.forward_args(kind));
  cpu::attention_backward(c64.backward_args(kind));
  const Magnitudes mg = magnitudes(c64);
  // Error bound for the GEMM variant in f32 (rule 2), first order in eps = 2^-23, with n = T + D,
  // E = max(1, S), S the largest sum_d |q_id k_jd| / sqrt(D):
  //   s_ij: sgemm's length-D f32 dot, times the scale    |ds|   <= D E eps
  //   lse_i = m + log sum_j exp(s_ij - m), sum in double |dlse| <= (D + 5) E eps: the error of the
  //     shift m cancels; each s_ij - m rounds by <= 2 S eps, exp (kernels/cpu/exp_f32.h) by
  //     <= kExpF32Ulps = 1.5 ulp, then the sum and the log
  //   p_ij = exp(s_ij - m) / sum (m cancels again)       |dp|   <= 2 (D + 3) E eps p_ij <= 2 n E eps p_ij
  //   a row sum sum_j p_ij                                       <= 2 n E eps
  //   out_i = sum_j p_ij v_j, sgemm over <= T terms      |dout| <= (2 n E + T) eps sum_j p_ij |v_j|
  //                                                             <= 3 n E eps max|v|
  // Backward, with G_ij = sum_d |dout_id v_jd|, Gamma_i = sum_j p_ij G_ij, W_ij = G_ij + Gamma_i
  // (|dp_ij - delta_i| <= W_ij, as |delta_i| = |dout_i · out_i| <= Gamma_i):
  //   p_ij = exp(s_ij - lse_i) recomputed: ds, dlse and |s - lse| eps   |dp|     <= 3 n E eps p_ij
  //   dp_ij = dout_i · v_j, sgemm over D                                 |d dp|   <= D eps G_ij
  //   delta_i = dout_i · out_i in double, from out's error above         |ddelta| <= 3 n E eps Gamma_i
  //   ds_ij = p_ij (dp_ij - delta_i), two roundings                      |dds|    <= 7 n E eps p_ij W_ij
  //   dq_i = scale sum_{j<=i} ds_ij k_j, sgemm over <= T terms           |ddq_id| <= 8 n E eps A_q(i, d),
  //     A_q(i, d) = scale sum_{j<=i} p_ij W_ij |k_jd|
  //   dk_j likewise                                                      |ddk_jd| <= 8 n E eps A_k(j, d),
  //     A_k(j, d) = scale sum_{i>=j} p_ij W_ij |q_id|
  //   dv_j = sum_{i>=j} p_ij dout_i, sgemm over <= T terms               |ddv_jd| <= 4 n E eps A_v(j, d),
  //     A_v(j, d) = sum_{i>=j} p_ij |dout_id|
  // so: out with reduce_len 3n and abs_sum E max|v|; lse n and E; probs and row sums 2n and E; dqkv 8n
  // and E max(A_q, A_k, A_v), the A from the f64 reference's p. (The reference itself, computing in
  // double and rounding once, would use a tiny fraction of these.)
  const int64_t n = T + D;
  const std::string tag = c32.tag(kind) + (path == F32Path::kGemm ? " gemm f32" : " reference f32") + " vs f64";
  CheckList results;
  results.push_back(compare_tensors(tag, "out", c32.out, c64.out, for_reduction(DType::kF32, 3 * n, mg.E * mg.max_v)));
  results.push_back(compare_tensors(tag, "lse", c32.lse, c64.lse, for_reduction(DType::kF32, n, mg.E)));
  results.push_back(compare_tensors(tag, "probs", c32.probs, c64.probs, for_reduction(DType::kF32, 2 * n, mg.E)));
  // Row sums of the f32 probabilities. softmax: exactly 1. softmax-1: sum_j e^s / (1 + sum_j e^s)
  // = 1 - 1/(1 + sum_j e^s) = 1 - exp(-lse), strictly below 1.
  HostTensor got("f32 row sums", DType::kF64, {B, H, T}), want("exact row sums", DType::kF64, {B, H, T});
  bool below_one = true;
  for (int64_t r = 0; r < B * H * T; ++r) {
    double sum = 0.0;
    for (int64_t j = 0; j < T; ++j) sum += c32.probs.get(r * T + j);
    got.set(r, sum);
    want.set(r, kind == AttentionKind::kSoftmax1 ? 1.0 - std::exp(-c64.lse.get(r)) : 1.0);
    below_one = below_one && sum < 1.0;
  }
  results.push_back(
      compare_tensors(tag, "probs row sums vs exact", got, want, for_reduction(DType::kF32, 2 * n, mg.E)));
  if (kind == AttentionKind::kSoftmax1) results.push_back(check_fact(tag, "probs rows sum to < 1", below_one));
  results.push_back(
      compare_tensors(tag, "dqkv", c32.dqkv, c64.dqkv, for_reduction(DType::kF32, 8 * n, mg.E * mg.a_dqkv)));
  return results;
}

}  // namespace

CheckList check_attention() {
  CheckList all;
  for (AttentionKind kind : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1}) {
    all.push_back(gradient_check(kind));
    for (CheckList part :
         {f32_checks(F32Path::kGemm, kind, 2, 64, 4, 32, 2), f32_checks(F32Path::kGemm, kind, 1, 256, 4, 64, 3),
          f32_checks(F32Path::kGemm, kind, 2, 100, 3, 24, 4), f32_checks(F32Path::kReference, kind, 2, 64, 4, 32, 2)})
      for (CheckResult& r : part) all.push_back(std::move(r));
  }
  return all;
}

}  // namespace om
