// CUDA causal attention (kernels/cuda/attention.cu) against the CPU f64 reference (kernels/cpu/attention.cc)
// on the same inputs: forward out, lse and probs, backward dqkv; softmax and softmax-1; f32 and bf16
// activations; (B, T, H, D) = (1, 1, 1, 8) tiny, (2, 17, 3, 32) odd T, (2, 256, 4, 64) the tiny Llama's
// heads, (1, 128, 2, 128) wide heads, (1, 33, 2, 200) a D that leaves lanes partly empty, (2, 100, 2, 64)
// and (1, 64, 3, 64) a partial and a single tile of the tensor-core path (bf16, D = 64: attention_mma.cu;
// every case also runs with it switched off, and its extra bf16 roundings are bounded below). Also: probability
// rows (sum 1 for softmax, < 1 for softmax-1, exactly 0 above the diagonal), asking for probs leaves out
// and lse unchanged, outputs are overwritten (=), two runs give the same bits, the backward's rope_theta
// gives the bits of a separate rope_backward (on the tensor cores, fused into the stores), and the CUDA contract
// (lse f32, D <= 256). Tolerances from kernels/check/tolerance.h: rule 2 for f32 results (lse and probs
// always, out and dqkv with f32 activations), rule 3 for bf16 ones. Runs under cuda_test_main (exit 77
// without a GPU).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/profiler.h"
#include "kernels/attention.h"
#include "kernels/check/gradcheck.h"
#include "kernels/rope.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Shape4 {
  int64_t B, T, H, D;
};
constexpr Shape4 kShapes[] = {{1, 1, 1, 8},     {2, 17, 3, 32},   {2, 256, 4, 64}, {1, 128, 2, 128},
                               {1, 33, 2, 200},  {2, 100, 2, 64},  {1, 64, 3, 64}};
constexpr AttentionKind kKinds[] = {AttentionKind::kSoftmax, AttentionKind::kSoftmax1};
constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(AttentionKind kind, DType act, Shape4 s) {
  return format_message("attention(%s) cuda %s B=%ld T=%ld H=%ld D=%ld",
                        kind == AttentionKind::kSoftmax1 ? "softmax-1" : "softmax",
                        std::string(dtype_name(act)).c_str(),
                        static_cast<long>(s.B), static_cast<long>(s.T), static_cast<long>(s.H), static_cast<long>(s.D));
}

void sync(Stream stream) { OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle))); }

// One case's inputs exactly as the CUDA kernel takes them: qkv and dout in `act`, so every value is
// representable in it; the references get the same values.
struct Inputs {
  Shape4 s;
  HostTensor qkv, dout;
  Inputs(DType act, Shape4 shape, uint64_t seed)
      : s(shape), qkv("qkv", act, {s.B, s.T, 3 * s.H * s.D}), dout("dout", act, {s.B, s.T, s.H * s.D}) {
    qkv.FillNormal(Rng(seed, "attention/qkv"), 0, 1.0);
    dout.FillNormal(Rng(seed, "attention/dout"), 0, 1.0);
  }
};

struct Forward {
  HostTensor out, lse, probs;  // probs: empty when not requested
};

// The CPU op in `dtype` through the public API: f64 runs the reference, f32 the GEMM variant (the
// naive f32 implementation rule 3 compares with). Always with probs.
Forward cpu_forward(const Inputs& in, AttentionKind kind, DType dtype) {
  const Shape4 s = in.s;
  const HostTensor qkv = in.qkv.Converted(dtype);
  Forward f{HostTensor("out", dtype, {s.B, s.T, s.H * s.D}), HostTensor("lse", dtype, {s.B, s.H, s.T}),
            HostTensor("probs", dtype, {s.B, s.H, s.T, s.T})};
  attention_forward(ExecContext{}, {f.out.view(), f.lse.view(), f.probs.view(), qkv.view(), s.H, kind});
  return f;
}

// The CUDA forward. probs, when requested, starts as garbage that "written (=)" must replace, the
// zeros above the diagonal included. `stream` is synchronized before the downloads.
Forward cuda_forward(const Inputs& in, AttentionKind kind, bool with_probs, Stream stream = {}) {
  const Shape4 s = in.s;
  DeviceTensor qkv = DeviceTensor::Upload(in.qkv);
  DeviceTensor out("out", in.qkv.dtype(), {s.B, s.T, s.H * s.D}), lse("lse", DType::kF32, {s.B, s.H, s.T});
  DeviceTensor probs;
  if (with_probs) {
    HostTensor garbage("probs", DType::kF32, {s.B, s.H, s.T, s.T});
    garbage.Fill(7.0);
    probs = DeviceTensor::Upload(garbage);
  }
  attention_forward(cuda_ctx(stream),
                    {out.view(), lse.view(), with_probs ? probs.view() : TensorView{}, qkv.view(), s.H, kind});
  sync(stream);
  return {out.Download(), lse.Download(), with_probs ? probs.Download() : HostTensor()};
}

// What the backward consumes besides qkv and dout: the f64 reference's out rounded to the activation
// dtype and its lse rounded to f32 (the CUDA dtypes), so the kernel and the references see identical
// inputs.
struct Saved {
  HostTensor out, lse;
};
Saved saved_from(const Forward& ref64, DType act) {
  return {ref64.out.Converted(act), ref64.lse.Converted(DType::kF32)};
}

// The CPU backward in `dtype` through the public API (f64: the reference; f32: the GEMM variant).
HostTensor cpu_backward(const Inputs& in, const Saved& sv, AttentionKind kind, DType dtype) {
  const HostTensor qkv = in.qkv.Converted(dtype), dout = in.dout.Converted(dtype), out = sv.out.Converted(dtype),
                   lse = sv.lse.Converted(dtype);
  HostTensor dqkv("dqkv", dtype, qkv.shape());
  attention_backward(ExecContext{}, {dqkv.view(), dout.view(), qkv.view(), out.view(), lse.view(), in.s.H, kind});
  return dqkv;
}

// The CUDA backward; dqkv starts as garbage, which "written (=)" must replace everywhere. rope_theta > 0:
// dq and dk rotated back by RoPE's transpose (then_rope: by a separate rope_backward after the call).
HostTensor cuda_backward(const Inputs& in, const Saved& sv, AttentionKind kind, Stream stream = {},
                         float rope_theta = 0.0f, bool then_rope = false) {
  DeviceTensor qkv = DeviceTensor::Upload(in.qkv), dout = DeviceTensor::Upload(in.dout),
               out = DeviceTensor::Upload(sv.out), lse = DeviceTensor::Upload(sv.lse);
  HostTensor garbage("dqkv", in.qkv.dtype(), in.qkv.shape());
  garbage.Fill(123.0);
  DeviceTensor dqkv = DeviceTensor::Upload(garbage);
  const Shape4 s = in.s;
  attention_backward(cuda_ctx(stream), {dqkv.view(), dout.view(), qkv.view(), out.view(), lse.view(), s.H, kind,
                                        then_rope ? 0.0f : rope_theta});
  if (then_rope) rope_backward(cuda_ctx(stream), {reshape(dqkv.view(), {s.B, s.T, 3 * s.H, s.D}), 2 * s.H, rope_theta});
  sync(stream);
  return dqkv.Download();
}

// ---- Rule 2 for the kernel's f32 arithmetic --------------------------------------------------------
// eps = dtype_eps(f32) = 2^-23 (twice the unit round-off u); first order in eps. CUDA's expf is within
// 2 ulp, logf within 1 ulp (CUDA C++ Programming Guide, "Mathematical Functions"), and 1 ulp <= eps
// relative. S_ij = sum_d |q_id k_jd| / sqrt(D), E = max(1, max S_ij) (|s_ij| <= E), n = T + D + 8.
//   s_ij = warp_dot(q_i, k_j) * scale: <= ceil(D/32) products per lane, a 5-level butterfly, scale
//     rounded once, one multiply:                            |ds| <= (D + 8)/2 E eps
// Forward, online softmax. Term j of the denominator l (the softmax-1 "+1" likewise) is
// exp(s_j - m_j) times every later rescale exp(m_old - m_new); the rounded arguments s_j - m_j and
// m_old - m_new (m never decreases, so their sizes telescope to <= 2E) add <= 2E eps, the <= T + 1
// expf <= 2 (T + 1) eps, the <= T multiplies and adds into l <= T eps; with ds, every term of l is
// off by a relative <= (3T + D/2 + 8) E eps <= 3 n E eps, and every term of acc = sum_j w_j v_j too
// (one more rounding, the p * v). l >= 1 (the max term is exp(0) = 1), l <= T + 1.
//   lse = m + log l: the terms' error, logf <= eps log(T + 1) <= T eps, the final add (rtol)
//                                                            |dlse|  <= 4 n E eps
//   out = acc / l: acc's and l's relative errors and the division
//                                                            |dout|  <= (6 n E + 1) eps sum_j p_ij |v_j|
//                                                                    <= 7 n E eps max|v|
//   probs p_ij = exp(s_ij - lse_i): ds, dlse, the subtraction (|s - lse| <= 2E + T), lse's own
//     rounding (<= (E + T) eps/2) and expf's 2 eps: a relative <= (4n + T + D/2 + 8) E eps
//                                                            |dp|    <= 5 n E eps p_ij <= 5 n E eps
//   a row sum sum_j p_ij (summed in double here)             <= 5 n E eps
// Backward, with out and lse the saved inputs (the reference uses the same values), G_ij =
// sum_d |dout_id v_jd|, Gamma_i = sum_d |dout_id out_id| >= |delta_i|, W_ij = G_ij + Gamma_i >=
// |dp_ij - delta_i|:
//   p_ij = exp(s_ij - lse_i) recomputed: ds, subtraction, expf  |dp|     <= n E eps p_ij
//   dp_ij = warp_dot(dout_i, v_j), delta_i likewise, subtract    |d(dp - delta)| <= n eps W_ij
//   ds_ij = p_ij (dp_ij - delta_i)                               |dds|    <= 3 n E eps p_ij W_ij
//   dq_i = scale sum_{j<=i} ds_ij k_j, <= T terms per lane, scale rounded once, one multiply
//                                                                |ddq_id| <= 4 n E eps A_q(i, d),
//     A_q(i, d) = scale sum_{j<=i} p_ij W_ij |k_jd|
//   dk_j likewise                                                |ddk_jd| <= 4 n E eps A_k(j, d),
//     A_k(j, d) = scale sum_{i>=j} p_ij W_ij |q_id|
//   dv_j = sum_{i>=j} p_ij dout_i, <= T terms per lane           |ddv_jd| <= 2 n E eps A_v(j, d),
//     A_v(j, d) = sum_{i>=j} p_ij |dout_id|
// so: out 7n and E max|v|; lse 4n and E; probs and row sums 5n and E; dqkv 4n and E max(A_q, A_k, A_v),
// with p from the f64 reference (the backward's f32-rounded lse changes p by a relative O(eps E):
// second order in the bound).
int64_t n_terms(Shape4 s) { return s.T + s.D + 8; }

struct Magnitudes {
  double E = 1.0;       // max(1, max S_ij)
  double max_v = 0.0;   // max |v|
  double a_dqkv = 0.0;  // max(A_q, A_k, A_v)
};

// From the inputs, the saved out and the f64 reference's probs (B, H, T, T).
Magnitudes magnitudes(const Inputs& in, const HostTensor& out, const HostTensor& probs) {
  const Shape4 s = in.s;
  const int64_t T = s.T, D = s.D, row = 3 * s.H * D, orow = s.H * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Magnitudes mg;
  std::vector<double> q(T * D), k(T * D), v(T * D), go(T * D), w(T * T), p(T * T);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> gamma(T, 0.0);
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {  // absolute values of the head's q, k, v, dout; Gamma
          const int64_t x = (b * T + t) * row + h * D + d, o = (b * T + t) * orow + h * D + d;
          q[t * D + d] = std::fabs(in.qkv.get(x));
          k[t * D + d] = std::fabs(in.qkv.get(x + s.H * D));
          v[t * D + d] = std::fabs(in.qkv.get(x + 2 * s.H * D));
          go[t * D + d] = std::fabs(in.dout.get(o));
          gamma[t] += go[t * D + d] * std::fabs(out.get(o));
          mg.max_v = std::max(mg.max_v, v[t * D + d]);
        }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          double sqk = 0.0, g = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            sqk += q[i * D + d] * k[j * D + d];
            g += go[i * D + d] * v[j * D + d];
          }
          mg.E = std::max(mg.E, scale * sqk);
          w[i * T + j] = g + gamma[i];  // W_ij
          p[i * T + j] = probs.get(((b * s.H + h) * T + i) * T + j);
        }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t d = 0; d < D; ++d) {
          double aq = 0.0, ak = 0.0, av = 0.0;  // A_q at (i, d); A_k and A_v at key i, d
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

// Row sums of `probs` (summed in double), whether every softmax-1 row is below 1, and whether every
// entry above the diagonal is exactly 0.
struct RowFacts {
  HostTensor sums;
  bool below_one = true, zero_above = true;
};
RowFacts row_facts(const HostTensor& probs, Shape4 s) {
  RowFacts f{HostTensor("probs row sums", DType::kF64, {s.B, s.H, s.T})};
  for (int64_t r = 0; r < s.B * s.H * s.T; ++r) {
    const int64_t i = r % s.T;
    double sum = 0.0;
    for (int64_t j = 0; j < s.T; ++j) {
      const double p = probs.get(r * s.T + j);
      sum += p;
      if (j > i && p != 0.0) f.zero_above = false;
    }
    f.sums.set(r, sum);
    f.below_one = f.below_one && sum < 1.0;
  }
  return f;
}

// The exact row sums: softmax 1; softmax-1 sum_j e^s / (1 + sum_j e^s) = 1 - exp(-lse).
HostTensor exact_row_sums(const HostTensor& lse64, AttentionKind kind) {
  HostTensor want("exact row sums", DType::kF64, lse64.shape());
  for (int64_t r = 0; r < want.numel(); ++r)
    want.set(r, kind == AttentionKind::kSoftmax1 ? 1.0 - std::exp(-lse64.get(r)) : 1.0);
  return want;
}

// ---- The tensor-core path (kernels/cuda/attention_mma.cu: bf16, D = 64) ---------------------------
// On top of the warp kernels' f32 arithmetic (whose errors rule 3 absorbs for bf16 results), it rounds
// each p_ij to bf16 before P·V and Pᵀ·dout, and each ds_ij before dS·K and dSᵀ·Q: one more relative
// error of at most u = 2^-8 (bf16's unit round-off, dtype_eps / 2) on every term of those sums, so
//   out_id:  |d| <= u sum_j P_ij |v_jd|          <= u max|v|           (P_ij <= 1, sum_j P_ij <= 1)
//   dq, dk, dv: |d| <= u A_q, u A_k, u A_v       <= u max(A_q, A_k, A_v)  (|ds_ij| <= p_ij W_ij)
// added to the rule-3 tolerance as an absolute term. The S = Q·Kᵀ and dP = dout·Vᵀ tiles are exact
// bf16 products summed in f32 like the warp kernels' dot products (rule 3 covers them).
bool mma_path(bool tensor_cores, DType act, Shape4 s) { return tensor_cores && act == DType::kBF16 && s.D == 64; }

Tolerance plus_bf16_rounding(Tolerance t, double bound) {
  t.atol += 0.5 * dtype_eps(DType::kBF16) * bound;
  t.rule += " + tensor cores' bf16 p/ds: 2^-8 x " + format_message("%.3g", bound);
  return t;
}

TEST(AttentionCuda, ForwardMatchesCpuReference) {
  CheckList results;
  for (bool tensor_cores : {true, false}) {
    cuda::set_tensor_core_attention(tensor_cores);
    for (AttentionKind kind : kKinds) {
      for (DType act : kActDtypes) {
        for (Shape4 s : kShapes) {
          const std::string name = case_name(kind, act, s) + (mma_path(tensor_cores, act, s) ? " [tensor cores]" : "");
          const Inputs in(act, s, 21);
          const Forward ref = cpu_forward(in, kind, DType::kF64);
          const Forward got = cuda_forward(in, kind, /*with_probs=*/true);
          const Magnitudes mg = magnitudes(in, ref.out, ref.probs);
          const int64_t n = n_terms(s);
          if (act == DType::kF32) {
            results.push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out,
                                              for_reduction(DType::kF32, 7 * n, mg.E * mg.max_v)));
          } else {
            // Rule 3: naive = the f32 CPU op (GEMM variant) on the same bf16 inputs, out rounded to bf16.
            const HostTensor naive = cpu_forward(in, kind, DType::kF32).out.Converted(DType::kBF16);
            Tolerance tol = for_naive_reference(max_abs_diff(naive, ref.out));
            if (mma_path(tensor_cores, act, s)) tol = plus_bf16_rounding(tol, mg.max_v);
            results.push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out, tol));
          }
          // lse and probs are f32 whatever the activation dtype, and bf16 inputs are exact in f32: rule 2.
          results.push_back(
              compare_tensors(name, "lse vs f64 reference", got.lse, ref.lse, for_reduction(DType::kF32, 4 * n, mg.E)));
          results.push_back(compare_tensors(name, "probs vs f64 reference", got.probs, ref.probs,
                                            for_reduction(DType::kF32, 5 * n, mg.E)));
          const RowFacts rows = row_facts(got.probs, s);
          results.push_back(compare_tensors(name, "probs row sums vs exact", rows.sums, exact_row_sums(ref.lse, kind),
                                            for_reduction(DType::kF32, 5 * n, mg.E)));
          if (kind == AttentionKind::kSoftmax1)
            results.push_back(check_fact(name, "probs rows sum to < 1", rows.below_one));
          results.push_back(check_fact(name, "probs exactly 0 above the diagonal", rows.zero_above));
          // The probs pass comes after out and lse are final: asking for probs must not change them.
          const Forward plain = cuda_forward(in, kind, /*with_probs=*/false);
          results.push_back(check_fact(name, "out, lse without probs bitwise equal",
                                       bitwise_equal(plain.out, got.out) && bitwise_equal(plain.lse, got.lse)));
        }
      }
    }
  }
  cuda::set_tensor_core_attention(true);
  expect_all_ok(results);
}

TEST(AttentionCuda, BackwardMatchesCpuReference) {
  CheckList results;
  for (bool tensor_cores : {true, false}) {
    cuda::set_tensor_core_attention(tensor_cores);
    for (AttentionKind kind : kKinds) {
      for (DType act : kActDtypes) {
        for (Shape4 s : kShapes) {
          const bool mma = mma_path(tensor_cores, act, s);
          const std::string name = case_name(kind, act, s) + (mma ? " [tensor cores]" : "");
          const Inputs in(act, s, 22);
          const Forward fwd64 = cpu_forward(in, kind, DType::kF64);
          const Saved sv = saved_from(fwd64, act);
          const HostTensor ref = cpu_backward(in, sv, kind, DType::kF64);
          const HostTensor got = cuda_backward(in, sv, kind);
          const Magnitudes mg = magnitudes(in, sv.out, fwd64.probs);
          if (act == DType::kF32) {
            results.push_back(compare_tensors(name, "dqkv vs f64 reference", got, ref,
                                              for_reduction(DType::kF32, 4 * n_terms(s), mg.E * mg.a_dqkv)));
          } else {
            // Rule 3: naive = the f32 CPU op (GEMM variant) on the same inputs, dqkv rounded to bf16.
            const HostTensor naive = cpu_backward(in, sv, kind, DType::kF32).Converted(DType::kBF16);
            Tolerance tol = for_naive_reference(max_abs_diff(naive, ref));
            if (mma) tol = plus_bf16_rounding(tol, mg.a_dqkv);
            results.push_back(compare_tensors(name, "dqkv vs f64 reference", got, ref, tol));
          }
          if (mma) {  // the dispatch really took the tensor-core kernels: their bf16 p/ds change some bits
            cuda::set_tensor_core_attention(false);
            const HostTensor warp = cuda_backward(in, sv, kind);
            cuda::set_tensor_core_attention(true);
            results.push_back(
                check_fact(name, "dqkv differs from the warp kernels' somewhere", !bitwise_equal(warp, got)));
          }
        }
      }
    }
  }
  cuda::set_tensor_core_attention(true);
  expect_all_ok(results);
}

// rope_theta: the tensor-core kernels rotate dq and dk back in their stores, the warp path by a
// rope_backward after its kernels; either way the bits of a separate rope_backward after a theta-0 call.
TEST(AttentionCuda, BackwardWithRopeThetaIsBackwardThenRopeBackward) {
  struct Case {
    bool tensor_cores;
    DType act;
    Shape4 s;
  };
  const Case cases[] = {{true, DType::kBF16, {2, 100, 2, 64}},  {true, DType::kBF16, {1, 64, 3, 64}},
                        {false, DType::kBF16, {2, 100, 2, 64}}, {false, DType::kBF16, {2, 17, 3, 32}},
                        {false, DType::kF32, {2, 17, 3, 32}}};
  CheckList results;
  for (const Case& c : cases) {
    cuda::set_tensor_core_attention(c.tensor_cores);
    const AttentionKind kind = AttentionKind::kSoftmax1;
    const std::string name =
        case_name(kind, c.act, c.s) + (mma_path(c.tensor_cores, c.act, c.s) ? " [tensor cores]" : "");
    const Inputs in(c.act, c.s, 24);
    const Saved sv = saved_from(cpu_forward(in, kind, DType::kF64), c.act);
    const HostTensor fused = cuda_backward(in, sv, kind, {}, 500.0f);
    const HostTensor separate = cuda_backward(in, sv, kind, {}, 500.0f, /*then_rope=*/true);
    const HostTensor plain = cuda_backward(in, sv, kind);
    results.push_back(compare_tensors(name, "dqkv (rope_theta) vs dqkv then rope_backward", fused, separate, exact()));
    results.push_back(check_fact(name, "the rotation changed dqkv (positions t > 0)", !bitwise_equal(fused, plain)));
  }
  cuda::set_tensor_core_attention(true);
  expect_all_ok(results);
}

TEST(AttentionCuda, BitwiseDeterministicOnAnyStream) {
  // Two runs of forward (with probs) and backward; the second on its own stream: the bits must not
  // depend on the run or on which stream runs it. The stream is a blocking one, so it is ordered
  // after DeviceTensor's uploads (cudaMemcpy on the legacy default stream).
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (AttentionKind kind : kKinds) {
    for (DType act : kActDtypes) {
      const Shape4 s{2, 256, 4, 64};
      SCOPED_TRACE(case_name(kind, act, s));
      const Inputs in(act, s, 23);
      const Forward a = cuda_forward(in, kind, true);
      const Forward b = cuda_forward(in, kind, true, Stream{stream});
      EXPECT_TRUE(bitwise_equal(a.out, b.out));
      EXPECT_TRUE(bitwise_equal(a.lse, b.lse));
      EXPECT_TRUE(bitwise_equal(a.probs, b.probs));
      const Saved sv{a.out.Clone(), a.lse.Clone()};  // the CUDA forward's own outputs, as in training
      const HostTensor da = cuda_backward(in, sv, kind);
      const HostTensor db = cuda_backward(in, sv, kind, Stream{stream});
      EXPECT_TRUE(bitwise_equal(da, db));
      EXPECT_GT(da.max_abs(), 0.0);  // the gradient was really computed
    }
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

// The op profiler's detail rows name the kernels each call took: the tensor cores for bf16 with D = 64, the
// warp kernels for f32, for another D and when switched off; the predicate is the dispatch's own
// (attention_*_uses_tensor_cores), and the tensor-core call's bits differ from the warp kernels' (above).
TEST(AttentionCuda, ProfileNamesTheKernelsEachCallTook) {
  const Inputs bf16_64(DType::kBF16, {1, 64, 3, 64}, 31), bf16_32(DType::kBF16, {2, 17, 3, 32}, 32),
      f32_64(DType::kF32, {1, 64, 3, 64}, 33);
  profiler::Reset();
  profiler::set_enabled(true);
  cuda::set_tensor_core_attention(true);
  for (const Inputs* in : {&bf16_64, &bf16_32, &f32_64}) {
    const Forward f = cuda_forward(*in, AttentionKind::kSoftmax1, /*with_probs=*/false);
    cuda_backward(*in, saved_from(f, in->qkv.dtype()), AttentionKind::kSoftmax1);
  }
  cuda::set_tensor_core_attention(false);
  const Forward f = cuda_forward(bf16_64, AttentionKind::kSoftmax1, /*with_probs=*/false);
  cuda_backward(bf16_64, saved_from(f, DType::kBF16), AttentionKind::kSoftmax1);
  cuda::set_tensor_core_attention(true);
  profiler::set_enabled(false);
  const std::vector<profiler::OpStats> details = profiler::CollectDetails();
  profiler::Reset();
  const auto calls = [&](const std::string& name) {
    for (const profiler::OpStats& s : details)
      if (s.name == name) return s.calls;
    return int64_t{0};
  };
  EXPECT_EQ(calls("attention_forward tensor cores"), 1);
  EXPECT_EQ(calls("attention_backward tensor cores"), 1);
  EXPECT_EQ(calls("attention_forward warp kernels"), 3);
  EXPECT_EQ(calls("attention_backward warp kernels"), 3);
}

TEST(AttentionCudaDeathTest, LseMustBeF32NamingTheTensor) {
  // On CUDA lse (and probs) are f32 whatever the activation dtype (kernels/attention.cc).
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor qkv("qkv", DType::kBF16, {1, 4, 3 * 8}), out("out", DType::kBF16, {1, 4, 8}),
      lse("layers.0.attn.lse", DType::kBF16, {1, 1, 4});
  EXPECT_DEATH(attention_forward(cuda_ctx(), {out.view(), lse.view(), TensorView{}, qkv.view(), 1}),
               "'layers.0.attn.lse' is bf16 but expected f32");
}

TEST(AttentionCudaDeathTest, HeadDimAbove256IsRejected) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int64_t D = 264;
  DeviceTensor qkv("qkv", DType::kBF16, {1, 2, 3 * D}), out("out", DType::kBF16, {1, 2, D}),
      lse("lse", DType::kF32, {1, 1, 2});
  EXPECT_DEATH(attention_forward(cuda_ctx(), {out.view(), lse.view(), TensorView{}, qkv.view(), 1}),
               "head dim D=264 exceeds the kernel's limit of 256");
}

}  // namespace
}  // namespace om
