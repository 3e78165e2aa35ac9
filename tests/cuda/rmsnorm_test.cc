// CUDA RMSNorm / RMSNorm-S (kernels/cuda/rmsnorm.cu) against the CPU reference (kernels/cpu) on the
// same inputs: forward and backward, f32 and bf16 activations, both norm kinds, tiny / odd /
// realistic shapes; plus accumulate-vs-overwrite, bitwise determinism and the CUDA dtype contract.
// Tolerances come from kernels/check/tolerance.h: rule 2 for f32 results, rule 3 for bf16 ones.
// Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Shape2 {
  int64_t N, C;
};
// Tiny, odd row count, realistic; C = 100 (bf16 rows not whole 16-byte packs: the kernels' element-wise
// layout), 66 backward row blocks (each of the partial sum's 32 ranges holds several), and C = 12296 (the
// backward's per-warp sums need more than the default 48 KiB of shared memory: it opts in).
constexpr Shape2 kShapes[] = {{1, 8}, {7, 768}, {64, 1600}, {70, 100}, {2100, 64}, {3, 12296}};
constexpr NormKind kKinds[] = {NormKind::kRmsNorm, NormKind::kRmsNormS};
constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }
Shape gain_shape(NormKind kind, int64_t C) { return kind == NormKind::kRmsNormS ? Shape{1} : Shape{C}; }

std::string case_name(NormKind kind, DType act, Shape2 s) {
  return format_message("%s cuda %s N=%ld C=%ld", kind == NormKind::kRmsNormS ? "rmsnorm-s" : "rmsnorm",
                        std::string(dtype_name(act)).c_str(), static_cast<long>(s.N), static_cast<long>(s.C));
}

// One case's inputs exactly as the CUDA kernel takes them: activations in `act` (so every value
// is representable in it), weight and rstd in f32. The references get the same values.
struct Inputs {
  HostTensor inp, dout, weight;
  Inputs(DType act, Shape2 s, NormKind kind, uint64_t seed)
      : inp("inp", act, {s.N, s.C}),
        dout("dout", act, {s.N, s.C}),
        weight("weight", DType::kF32, gain_shape(kind, s.C)) {
    inp.FillNormal(Rng(seed, "rmsnorm/inp"), 0, 1.0);
    dout.FillNormal(Rng(seed, "rmsnorm/dout"), 0, 1.0);
    weight.FillUniform(Rng(seed, "rmsnorm/weight"), 0, 0.5, 1.5);
  }
};

struct Forward {
  HostTensor out, rstd;
};
struct Backward {
  HostTensor dinp, dweight;
};

// The CPU reference in `dtype` (f32 or f64) on the given values.
Forward cpu_forward(const Inputs& in, NormKind kind, DType dtype) {
  HostTensor x = in.inp.Converted(dtype), g = in.weight.Converted(dtype);
  Forward f{HostTensor("out", dtype, x.shape()), HostTensor("rstd", dtype, {x.shape()[0]})};
  rmsnorm_forward(ExecContext{}, {f.out.view(), f.rstd.view(), x.view(), g.view(), kind});
  return f;
}

// Device copies of a host tensor: 256-byte aligned, or one element off (never 16-byte aligned: the
// kernels' element-by-element loads).
DeviceTensor upload(const HostTensor& host, bool misaligned) {
  return misaligned ? DeviceTensor::UploadMisaligned(host) : DeviceTensor::Upload(host);
}

Forward cuda_forward(const Inputs& in, NormKind kind, bool misaligned = false) {
  const int64_t N = in.inp.shape()[0], C = in.inp.shape()[1];
  DeviceTensor x = upload(in.inp, misaligned), g = upload(in.weight, misaligned);
  DeviceTensor out = upload(HostTensor("out", in.inp.dtype(), {N, C}), misaligned), rstd("rstd", DType::kF32, {N});
  rmsnorm_forward(cuda_ctx(), {out.view(), rstd.view(), x.view(), g.view(), kind});
  return {out.Download(), rstd.Download()};
}

// The CPU reference backward in `dtype` with dweight starting at `dweight_init`.
Backward cpu_backward(const Inputs& in, const HostTensor& rstd, const HostTensor& dweight_init, NormKind kind,
                      DType dtype) {
  HostTensor x = in.inp.Converted(dtype), dy = in.dout.Converted(dtype), g = in.weight.Converted(dtype),
             r = rstd.Converted(dtype);
  Backward b{HostTensor("dinp", dtype, x.shape()), dweight_init.Converted(dtype, "dweight")};
  rmsnorm_backward(ExecContext{}, {b.dinp.view(), b.dweight.view(), dy.view(), x.view(), g.view(), r.view(), kind});
  return b;
}

// The CUDA backward; dinp starts as `dinp_init` (garbage an overwrite must replace, or what kAccumulate
// adds to), dweight as `dweight_init` (a gradient the += must keep). `stream` is synchronized before the
// download.
Backward cuda_backward(const Inputs& in, const HostTensor& rstd, const HostTensor& dinp_init,
                       const HostTensor& dweight_init, NormKind kind, Stream stream = {},
                       WriteMode mode = WriteMode::kOverwrite, bool misaligned = false) {
  DeviceTensor x = upload(in.inp, misaligned), dy = upload(in.dout, misaligned), g = upload(in.weight, misaligned),
               r = DeviceTensor::Upload(rstd), dx = upload(dinp_init, misaligned),
               dg = DeviceTensor::Upload(dweight_init);
  rmsnorm_backward(cuda_ctx(stream),
                   {dx.view(), dg.view(), dy.view(), x.view(), g.view(), r.view(), kind, mode});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return {dx.Download(), dg.Download()};
}

// The rstd the backward consumes: the f64 reference's, rounded to f32 (the CUDA dtype), so the CUDA
// kernel and the references see identical inputs.
HostTensor reference_rstd(const Inputs& in, NormKind kind) {
  return cpu_forward(in, kind, DType::kF64).rstd.Converted(DType::kF32);
}

TEST(RmsNormCuda, ForwardMatchesCpuReference) {
  CheckList results;
  for (NormKind kind : kKinds) {
    for (DType act : kActDtypes) {
      for (Shape2 s : kShapes) {
        const std::string name = case_name(kind, act, s);
        const Inputs in(act, s, kind, 11);
        const Forward ref = cpu_forward(in, kind, DType::kF64);
        const Forward got = cuda_forward(in, kind);
        // rstd (f32 in both modes; the bf16 inputs are exact in f32): the sum of C squares has
        // relative error <= gamma_C, then /C, +eps, sqrt and 1/x add 4 roundings; halved by the
        // square root: relative error <= (C/2 + 4) eps <= C eps for C >= 8. Then out = (x r) g
        // adds 2 more: still <= C eps relative, so atol = C eps max|value| bounds both (rule 2).
        results.push_back(compare_tensors(name, "rstd vs f64 reference", got.rstd, ref.rstd,
                                          for_reduction(DType::kF32, s.C, ref.rstd.max_abs())));
        if (act == DType::kF32) {
          results.push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out,
                                            for_reduction(DType::kF32, s.C, ref.out.max_abs())));
        } else {
          // Rule 3: naive = the f32 CPU reference on the same bf16 inputs, output rounded to bf16.
          const HostTensor naive = cpu_forward(in, kind, DType::kF32).out.Converted(DType::kBF16);
          results.push_back(compare_tensors(name, "out vs f64 reference", got.out, ref.out,
                                            for_naive_reference(max_abs_diff(naive, ref.out))));
        }
      }
    }
  }
  expect_all_ok(results);
}

// Rule 2 for dinp. In f64, dx[n, c] = r gd[c] - sum_j (r xh[c] / C) gd[j] xh[j] with xh = x r,
// gd = g dy: a sum of C + 1 terms whose absolute values add up to
//   S[n, c] = r |gd[c]| + r |xh[c]| / C * sum_j |gd[j] xh[j]|.
// The kernel's longest chain of roundings for one term is 3 (xh, gd, product) + C - 1 (sum, any
// order) + 4 (/C, * xh[c], subtraction, * r) = C + 6, so |error| <= gamma_{C+6} max S.
double dinp_abs_sum(const Inputs& in, const HostTensor& rstd, NormKind kind) {
  const int64_t N = in.inp.shape()[0], C = in.inp.shape()[1];
  double worst = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const double r = rstd.get(n);
    double dot_abs = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      const double g = in.weight.get(kind == NormKind::kRmsNormS ? 0 : c);
      dot_abs += std::fabs(g * in.dout.get(n * C + c) * in.inp.get(n * C + c) * r);
    }
    for (int64_t c = 0; c < C; ++c) {
      const double g = in.weight.get(kind == NormKind::kRmsNormS ? 0 : c);
      const double s = r * std::fabs(g * in.dout.get(n * C + c)) +
                       r * std::fabs(in.inp.get(n * C + c) * r) / static_cast<double>(C) * dot_abs;
      worst = std::max(worst, s);
    }
  }
  return worst;
}

// Rule 2 for dweight (f32 in both modes). dweight[j] = init[j] + sum of the terms dy x r over the
// N rows (kRmsNorm) or all N*C elements (kRmsNormS): each term is rounded twice (x r, then * dy),
// any summation order adds at most (terms - 1) roundings, and the += into init one more, so
// |error| <= gamma_{terms+2} * max_j (|init[j]| + sum |dy x r|).
void dweight_rule(const Inputs& in, const HostTensor& rstd, const HostTensor& init, NormKind kind,
                  int64_t* reduce_len, double* abs_sum) {
  const int64_t N = in.inp.shape()[0], C = in.inp.shape()[1];
  std::vector<double> sums(static_cast<size_t>(init.numel()));
  for (int64_t j = 0; j < init.numel(); ++j) sums[j] = std::fabs(init.get(j));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      const double term = in.dout.get(n * C + c) * in.inp.get(n * C + c) * rstd.get(n);
      sums[kind == NormKind::kRmsNormS ? 0 : c] += std::fabs(term);
    }
  }
  *reduce_len = (kind == NormKind::kRmsNormS ? N * C : N) + 2;
  *abs_sum = *std::max_element(sums.begin(), sums.end());
}

TEST(RmsNormCuda, BackwardMatchesCpuReference) {
  CheckList results;
  for (NormKind kind : kKinds) {
    for (DType act : kActDtypes) {
      for (Shape2 s : kShapes) {
        const std::string name = case_name(kind, act, s);
        const Inputs in(act, s, kind, 12);
        const HostTensor rstd = reference_rstd(in, kind);
        HostTensor dweight_init("dweight", DType::kF32, gain_shape(kind, s.C));
        dweight_init.Fill(0.5);  // an earlier micro-batch's gradient, which += must keep
        HostTensor dinp_init("dinp", act, {s.N, s.C});
        dinp_init.Fill(123.0);  // garbage, which = must replace
        const Backward ref = cpu_backward(in, rstd, dweight_init, kind, DType::kF64);
        const Backward got = cuda_backward(in, rstd, dinp_init, dweight_init, kind);
        if (act == DType::kF32) {
          results.push_back(compare_tensors(name, "dinp vs f64 reference", got.dinp, ref.dinp,
                                            for_reduction(DType::kF32, s.C + 6, dinp_abs_sum(in, rstd, kind))));
        } else {
          // Rule 3: naive = the f32 CPU reference on the same bf16 inputs, dinp rounded to bf16.
          const HostTensor naive = cpu_backward(in, rstd, dweight_init, kind, DType::kF32).dinp.Converted(DType::kBF16);
          results.push_back(compare_tensors(name, "dinp vs f64 reference", got.dinp, ref.dinp,
                                            for_naive_reference(max_abs_diff(naive, ref.dinp))));
        }
        int64_t reduce_len = 0;
        double abs_sum = 0.0;
        dweight_rule(in, rstd, dweight_init, kind, &reduce_len, &abs_sum);
        results.push_back(compare_tensors(name, "dweight (+= 0.5) vs f64 reference", got.dweight, ref.dweight,
                                          for_reduction(DType::kF32, reduce_len, abs_sum)));
      }
    }
  }
  expect_all_ok(results);
}

TEST(RmsNormCuda, WeightGradientAccumulatesInputGradientOverwrites) {
  // Exact (rule 1): the kernel adds the same deterministic f32 sum s into dweight, so starting
  // from 0 gives s and starting from 0.5 gives exactly float(0.5f + s); dinp never depends on
  // what the buffer held before.
  for (NormKind kind : kKinds) {
    for (DType act : kActDtypes) {
      const Shape2 s{70, 96};  // three row blocks, the last one partial
      SCOPED_TRACE(case_name(kind, act, s));
      const Inputs in(act, s, kind, 13);
      const HostTensor rstd = reference_rstd(in, kind);
      HostTensor zeros_dx("dinp", act, {s.N, s.C}), garbage_dx("dinp", act, {s.N, s.C});
      garbage_dx.Fill(123.0);
      HostTensor zeros_dg("dweight", DType::kF32, gain_shape(kind, s.C)), half_dg = zeros_dg.Clone();
      half_dg.Fill(0.5);
      const Backward first = cuda_backward(in, rstd, zeros_dx, zeros_dg, kind);
      const Backward second = cuda_backward(in, rstd, garbage_dx, half_dg, kind);
      EXPECT_TRUE(bitwise_equal(first.dinp, second.dinp));
      for (int64_t j = 0; j < zeros_dg.numel(); ++j) {
        const float sum = first.dweight.data<float>()[j];
        EXPECT_EQ(second.dweight.data<float>()[j], 0.5f + sum) << "dweight[" << j << "]";
      }
    }
  }
}

TEST(RmsNormCuda, AccumulatingTheInputGradientEqualsAResidualAddBitForBit) {
  // kAccumulate (model/llama_backward.cc): dx += v, v rounded to the activation dtype first, is the
  // same bits as the overwrite followed by residual_forward, for bf16 and f32 activations.
  for (NormKind kind : kKinds) {
    for (DType act : kActDtypes) {
      const Shape2 s{70, 768};
      SCOPED_TRACE(case_name(kind, act, s));
      const Inputs in(act, s, kind, 15);
      const HostTensor rstd = reference_rstd(in, kind);
      HostTensor skip("dx_skip", act, {s.N, s.C}), dg0("dweight", DType::kF32, gain_shape(kind, s.C));
      skip.FillNormal(Rng(15, "rmsnorm/skip"), 0, 3.0);
      DeviceTensor x = DeviceTensor::Upload(in.inp), dy = DeviceTensor::Upload(in.dout),
                   g = DeviceTensor::Upload(in.weight), r = DeviceTensor::Upload(rstd);
      DeviceTensor v("v", act, {s.N, s.C}), two_pass = DeviceTensor::Upload(skip), fused = DeviceTensor::Upload(skip),
                   dg_a = DeviceTensor::Upload(dg0), dg_b = DeviceTensor::Upload(dg0);
      rmsnorm_backward(cuda_ctx(), {v.view(), dg_a.view(), dy.view(), x.view(), g.view(), r.view(), kind});
      residual_forward(cuda_ctx(), {two_pass.view(), two_pass.view(), v.view()});
      rmsnorm_backward(cuda_ctx(), {fused.view(), dg_b.view(), dy.view(), x.view(), g.view(), r.view(), kind,
                                    WriteMode::kAccumulate});
      const HostTensor want = two_pass.Download(), got = fused.Download();
      EXPECT_TRUE(bitwise_equal(got, want));
      EXPECT_TRUE(bitwise_equal(dg_b.Download(), dg_a.Download()));
      EXPECT_FALSE(bitwise_equal(got, skip)) << "nothing was added";
    }
  }
}

TEST(RmsNormCuda, BackwardIsBitwiseDeterministicOnAnyStream) {
  // Many row blocks (the last partial), so the dweight partials really are summed across blocks.
  // The second run uses its own stream: the result must not depend on which stream runs it. The
  // stream is a blocking one, so it is ordered after DeviceTensor's uploads (cudaMemcpy on the
  // legacy default stream, which may return before a pageable host-to-device copy has landed).
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (NormKind kind : kKinds) {
    const Shape2 s{1000, 768};
    SCOPED_TRACE(case_name(kind, DType::kBF16, s));
    const Inputs in(DType::kBF16, s, kind, 14);
    const HostTensor rstd = reference_rstd(in, kind);
    HostTensor dx0("dinp", DType::kBF16, {s.N, s.C}), dg0("dweight", DType::kF32, gain_shape(kind, s.C));
    const Backward a = cuda_backward(in, rstd, dx0, dg0, kind);
    const Backward b = cuda_backward(in, rstd, dx0, dg0, kind, Stream{stream});
    EXPECT_TRUE(bitwise_equal(a.dinp, b.dinp));
    EXPECT_TRUE(bitwise_equal(a.dweight, b.dweight));
    EXPECT_GT(a.dweight.max_abs(), 0.0);  // the partials were really written and summed
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(RmsNormCuda, ResultsDoNotDependOnAlignment) {
  // The 128-bit loads (aligned tensors) and the element loads (misaligned ones) read the same values
  // in the same order: forward and backward give the same bits either way.
  for (NormKind kind : kKinds) {
    for (DType act : kActDtypes) {
      const Shape2 s{70, 768};
      SCOPED_TRACE(case_name(kind, act, s));
      const Inputs in(act, s, kind, 16);
      const HostTensor rstd = reference_rstd(in, kind);
      HostTensor dx_init("dinp", act, {s.N, s.C}), dg_init("dweight", DType::kF32, gain_shape(kind, s.C));
      dx_init.FillNormal(Rng(16, "rmsnorm/dx_init"), 0, 1.0);  // accumulated into
      const Forward fa = cuda_forward(in, kind), fb = cuda_forward(in, kind, /*misaligned=*/true);
      EXPECT_TRUE(bitwise_equal(fb.rstd, fa.rstd));
      EXPECT_TRUE(bitwise_equal(fb.out, fa.out));
      const Backward ba = cuda_backward(in, rstd, dx_init, dg_init, kind, {}, WriteMode::kAccumulate);
      const Backward bb = cuda_backward(in, rstd, dx_init, dg_init, kind, {}, WriteMode::kAccumulate, true);
      EXPECT_TRUE(bitwise_equal(bb.dinp, ba.dinp));
      EXPECT_TRUE(bitwise_equal(bb.dweight, ba.dweight));
    }
  }
}

TEST(RmsNormCudaDeathTest, RowsTooWideForSharedMemoryNameTheLimit) {
  // The backward's per-channel sums need C floats of shared memory per warp; past sm_90's 227 KiB
  // (C > 58112) the call stops with C and the limit named, before any launch.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const int64_t C = 60000;
  DeviceTensor x("x", DType::kF32, {1, C}), dy("dy", DType::kF32, {1, C}), dx("dx", DType::kF32, {1, C}),
      r("rstd", DType::kF32, {1}), g("g", DType::kF32, {C}), dg("dg", DType::kF32, {C});
  EXPECT_DEATH(rmsnorm_backward(cuda_ctx(), {dx.view(), dg.view(), dy.view(), x.view(), g.view(), r.view()}),
               "C = 60000 channels need 240000 bytes of shared memory");
}

TEST(RmsNormCudaDeathTest, F32StatisticsAreRequiredNamingTheTensor) {
  // On CUDA the gain and rstd are f32 whatever the activation dtype (kernels/rmsnorm.cc).
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor x("x", DType::kBF16, {2, 8}), y("y", DType::kBF16, {2, 8}), r("rstd", DType::kF32, {2}),
      g("layers.0.attn_norm.weight", DType::kBF16, {8});
  EXPECT_DEATH(rmsnorm_forward(cuda_ctx(), {y.view(), r.view(), x.view(), g.view()}),
               "'layers.0.attn_norm.weight' is bf16 but expected f32");
}

}  // namespace
}  // namespace om
