// CUDA SwiGLU (kernels/cuda/swiglu.cu) against the CPU reference on the same inputs: forward and
// backward, f32 and bf16, tiny / odd (scalar path) / realistic (128-bit path) shapes; gates of
// +-1000 (finite results), overwrite of a garbage-filled output, bitwise determinism on another
// stream. Tolerances (kernels/check/tolerance.h): rule 2 for f32 results, derived below; rule 3 for
// bf16 ones. Runs under cuda_test_main (exit 77 without a GPU).
//
// Rule 2, counted in eps = 2^-23 (a rounding costs eps/2 relative; CUDA's expf is within 2 ulp,
// i.e. 2 eps relative). With e = exp(-|g|) in (0, 1]:
//   e: 2 eps;  1 + e: e's error shrinks by e/(1+e) <= 1/2, plus a rounding: 1.5 eps;
//   inv = 1/(1+e): 2 eps;  s, sn (inv or e*inv): <= 4.5 eps.
//   out = (g s) u and du = (dy g) s: <= 5.5 eps relative, inside rtol = kElementwiseUlps eps = 8 eps.
//   dg = P Q with P = (dy u) s (5.5 eps relative) and Q = 1 + g sn, which cancels near g = -1.28 so
//   only an absolute bound holds: |Q err| <= 5.5 eps (1 + |g sn|) (g sn: 5 eps, the add: eps/2).
//   With |Q| <= 1 + |g sn| and the last rounding: |dg err| <= 11.5 eps |dy u s| (1 + |g sn|).
// The atol terms below are those absolute bounds, with A = max |dy u s| (1 + |g sn|) for dg and
// max |value| for out and du; the latter covers gates so negative that e underflows to a denormal
// in f32, where the relative bound fails but the absolute error is below 1e-38 |g u|.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/swiglu.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// |dg error| <= 11.5 eps * A (header comment): 12 "terms" of eps * A in for_reduction's atol.
constexpr int64_t kGateGradErrorEps = 12;
// |out error|, |du error| <= 5.5 eps |value| <= 1 * eps * max|value| + rtol |value|: one term.
constexpr int64_t kProductErrorEps = 1;

struct Shape2 {
  int64_t N, F;
};
// Tiny; odd F (no pack width divides it: scalar path); F = 8 (one pack per row for bf16, two for
// f32); realistic Llama-130M FFN (F = 2048) on 256 tokens.
constexpr Shape2 kShapes[] = {{1, 1}, {7, 37}, {3, 8}, {256, 2048}};
constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(DType act, Shape2 s) {
  return format_message("swiglu cuda %s N=%ld F=%ld", std::string(dtype_name(act)).c_str(), static_cast<long>(s.N),
                        static_cast<long>(s.F));
}

// Columns [F * half, F * (half + 1)) of an (N, 2F) tensor as an (N, F) f64 tensor (exact for any
// float dtype): half 0 is the gate part, half 1 the up part.
HostTensor half_of(const HostTensor& t, int half, const char* name) {
  const int64_t N = t.shape()[0], F = t.shape()[1] / 2;
  HostTensor h(name, DType::kF64, {N, F});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f) h.set(n * F + f, t.get(n * 2 * F + half * F + f));
  return h;
}

struct Inputs {
  HostTensor gate_up, dout;
  Inputs(DType act, Shape2 s, uint64_t seed) : gate_up("gate_up", act, {s.N, 2 * s.F}), dout("dout", act, {s.N, s.F}) {
    // stddev 3: gates well into both tails of the sigmoid, not just its linear middle.
    gate_up.FillNormal(Rng(seed, "swiglu/gate_up"), 0, 3.0);
    dout.FillNormal(Rng(seed, "swiglu/dout"), 0, 1.0);
  }
};

struct Result {
  HostTensor out, dgate_up;
};

// The CPU reference in `dtype` (f32 or f64) on the given values.
Result cpu_run(const Inputs& in, DType dtype) {
  HostTensor gu = in.gate_up.Converted(dtype), dy = in.dout.Converted(dtype);
  Result r{HostTensor("out", dtype, dy.shape()), HostTensor("dgate_up", dtype, gu.shape())};
  swiglu_forward(ExecContext{}, {r.out.view(), gu.view()});
  swiglu_backward(ExecContext{}, {r.dgate_up.view(), dy.view(), gu.view()});
  return r;
}

// The CUDA kernels, outputs starting as garbage the overwrite (=) must replace.
Result cuda_run(const Inputs& in, Stream stream = {}) {
  DeviceTensor gu = DeviceTensor::Upload(in.gate_up), dy = DeviceTensor::Upload(in.dout);
  HostTensor out0("out", in.dout.dtype(), in.dout.shape()), dgu0("dgate_up", in.gate_up.dtype(), in.gate_up.shape());
  out0.Fill(123.0);
  dgu0.Fill(-77.0);
  DeviceTensor out = DeviceTensor::Upload(out0), dgu = DeviceTensor::Upload(dgu0);
  swiglu_forward(cuda_ctx(stream), {out.view(), gu.view()});
  swiglu_backward(cuda_ctx(stream), {dgu.view(), dy.view(), gu.view()});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return {out.Download(), dgu.Download()};
}

// max over elements of |dy u s| (1 + |g sn|) in double: the scale of dg's absolute error bound.
double gate_grad_scale(const Inputs& in) {
  const int64_t N = in.dout.shape()[0], F = in.dout.shape()[1];
  double worst = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t f = 0; f < F; ++f) {
      const double g = in.gate_up.get(n * 2 * F + f), u = in.gate_up.get(n * 2 * F + F + f);
      const double s = 1.0 / (1.0 + std::exp(-g)), sn = 1.0 / (1.0 + std::exp(g));
      worst = std::max(worst, std::fabs(in.dout.get(n * F + f) * u * s) * (1.0 + std::fabs(g * sn)));
    }
  }
  return worst;
}

void compare_all(const std::string& name, const Inputs& in, const Result& got, CheckList* results) {
  const Result ref = cpu_run(in, DType::kF64);
  const HostTensor got_dg = half_of(got.dgate_up, 0, "dgate"), got_du = half_of(got.dgate_up, 1, "dup");
  const HostTensor ref_dg = half_of(ref.dgate_up, 0, "dgate"), ref_du = half_of(ref.dgate_up, 1, "dup");
  if (in.gate_up.dtype() == DType::kF32) {
    results->push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out,
                                       for_reduction(DType::kF32, kProductErrorEps, ref.out.max_abs())));
    results->push_back(compare_tensors(name, "dgate vs f64 reference", got_dg, ref_dg,
                                       for_reduction(DType::kF32, kGateGradErrorEps, gate_grad_scale(in))));
    results->push_back(compare_tensors(name, "dup vs f64 reference", got_du, ref_du,
                                       for_reduction(DType::kF32, kProductErrorEps, ref_du.max_abs())));
    return;
  }
  // Rule 3: naive = the f32 CPU reference on the same bf16 values, outputs rounded to bf16.
  const Result naive32 = cpu_run(in, DType::kF32);
  const HostTensor naive_out = naive32.out.Converted(DType::kBF16);
  const HostTensor naive_dgu = naive32.dgate_up.Converted(DType::kBF16);
  const HostTensor naive_dg = half_of(naive_dgu, 0, "dgate"), naive_du = half_of(naive_dgu, 1, "dup");
  results->push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out,
                                     for_naive_reference(max_abs_diff(naive_out, ref.out))));
  results->push_back(compare_tensors(name, "dgate vs f64 reference", got_dg, ref_dg,
                                     for_naive_reference(max_abs_diff(naive_dg, ref_dg))));
  results->push_back(compare_tensors(name, "dup vs f64 reference", got_du, ref_du,
                                     for_naive_reference(max_abs_diff(naive_du, ref_du))));
}

TEST(SwigluCuda, ForwardAndBackwardMatchCpuReference) {
  CheckList results;
  for (DType act : kActDtypes) {
    for (Shape2 s : kShapes) {
      const std::string name = case_name(act, s);
      const Inputs in(act, s, 31);
      compare_all(name, in, cuda_run(in), &results);
    }
  }
  expect_all_ok(results);
}

TEST(SwigluCuda, ExtremeGatesGiveFiniteResultsWithinTheBound) {
  // Gates of +-1000 (silu = g and 0; exp(-1000) underflows to 0 in every precision), +-88 and -100
  // (e near or below FLT_MIN: denormal or zero), next to ordinary ones. Nothing may be NaN or inf,
  // and the rule-2 bounds above still hold.
  const double gates[] = {1000.0, -1000.0, 88.0, -88.0, -100.0, 0.0, 1.5, -1.28};
  const int64_t F = 8, N = 2;
  CheckList results;
  for (DType act : kActDtypes) {
    Inputs in(act, Shape2{N, F}, 32);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t f = 0; f < F; ++f) in.gate_up.set(n * 2 * F + f, gates[f] * (n == 0 ? 1.0 : 0.5));
    const std::string name = case_name(act, Shape2{N, F}) + " extreme gates";
    const Result got = cuda_run(in);
    bool finite = true;
    for (int64_t i = 0; i < got.out.numel(); ++i) finite = finite && std::isfinite(got.out.get(i));
    for (int64_t i = 0; i < got.dgate_up.numel(); ++i) finite = finite && std::isfinite(got.dgate_up.get(i));
    results.push_back(check_fact(name, "out and dgate_up finite", finite));
    compare_all(name, in, got, &results);
  }
  expect_all_ok(results);
}

TEST(SwigluCuda, BitwiseDeterministicOnAnyStream) {
  // A blocking stream, so it is ordered after DeviceTensor's uploads on the legacy default stream.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (DType act : kActDtypes) {
    const Inputs in(act, Shape2{512, 1024}, 33);
    const Result a = cuda_run(in), b = cuda_run(in, Stream{stream});
    EXPECT_TRUE(bitwise_equal(a.out, b.out)) << dtype_name(act);
    EXPECT_TRUE(bitwise_equal(a.dgate_up, b.dgate_up)) << dtype_name(act);
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

}  // namespace
}  // namespace om
