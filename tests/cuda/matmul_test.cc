// CUDA matmul (kernels/cuda/matmul.cu, cuBLASLt) against the CPU reference on the same inputs: every
// transpose combination, overwrite and accumulate, tiny / odd / Llama-sized shapes, f32 and bf16; plus
// determinism and K = 0. Runs under cuda_test_main (exit 77 without a GPU).
// Tolerances (kernels/check/tolerance.h): f32 → rule 2 against the f64 CPU reference, n = K terms with
// abs_sum = max over outputs of Σ_k |a_ik b_kj| (bounded here by K·max|a|·max|b|); bf16 → rule 3, twice
// the error of the same-precision naive reference (the f32 CPU product of the bf16 values, rounded to
// bf16) against f64. bf16 inputs with an f32 output (the weight gradient into an f32 main gradient):
// rule 1 on integer-valued inputs, and rule 2 against the f32 CPU product of the same bf16 values
// (derivations at the Bf16InputsF32Output tests). The fused residual add (c = op(a)·op(b) + r, the
// cuBLASLt epilogue) as kAccumulate's analysis with c0 = r, exact on integers, r left unchanged.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/check/gradcheck.h"
#include "kernels/check/tolerance.h"
#include "kernels/matmul.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Case {
  int64_t M, N, K;
};
constexpr Case kCases[] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {256, 768, 256}, {512, 256, 688}};

ExecContext cuda_ctx() { return ExecContext{Device::Cuda(0), Stream{}}; }

HostTensor operand(const char* name, DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  HostTensor t(name, dt, {rows, cols});
  t.FillNormal(Rng(seed, std::string("matmul/") + name), 0, 1.0);
  return t;
}

// c (M, N) from the CPU in dtype `dt` (f64 reference or f32 same-precision), starting from c0.
HostTensor cpu(const HostTensor& a, const HostTensor& b, const HostTensor& c0, Transpose ta, Transpose tb,
               WriteMode mode, DType dt) {
  HostTensor x = a.Converted(dt), y = b.Converted(dt), c = c0.Converted(dt, "c");
  matmul(ExecContext{}, {c.view(), x.view(), y.view(), ta, tb, mode});
  return c;
}

HostTensor gpu(const HostTensor& a, const HostTensor& b, const HostTensor& c0, Transpose ta, Transpose tb,
               WriteMode mode) {
  DeviceTensor da = DeviceTensor::Upload(a), db = DeviceTensor::Upload(b), dc = DeviceTensor::Upload(c0);
  matmul(cuda_ctx(), {dc.view(), da.view(), db.view(), ta, tb, mode});
  return dc.Download();
}

TEST(CudaMatmul, MatchesCpuReferenceForEveryTransposeAndMode) {
  CheckList results;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const Case& c : kCases) {
      for (Transpose ta : {Transpose::kNo, Transpose::kYes}) {
        for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
          for (WriteMode mode : {WriteMode::kOverwrite, WriteMode::kAccumulate}) {
            const uint64_t seed = static_cast<uint64_t>(c.M * 1000 + c.N * 10 + c.K);
            const HostTensor a = ta == Transpose::kYes ? operand("a", dt, c.K, c.M, seed) : operand("a", dt, c.M, c.K, seed);
            const HostTensor b = tb == Transpose::kYes ? operand("b", dt, c.N, c.K, seed) : operand("b", dt, c.K, c.N, seed);
            const HostTensor c0 = operand("c0", dt, c.M, c.N, seed);
            const HostTensor got = gpu(a, b, c0, ta, tb, mode);
            const HostTensor want = cpu(a, b, c0, ta, tb, mode, DType::kF64);
            const std::string tag = format_message("matmul cuda %s M=%ld N=%ld K=%ld ta=%d tb=%d %s",
                                                   std::string(dtype_name(dt)).c_str(), static_cast<long>(c.M),
                                                   static_cast<long>(c.N), static_cast<long>(c.K),
                                                   ta == Transpose::kYes, tb == Transpose::kYes,
                                                   mode == WriteMode::kAccumulate ? "+=" : "=");
            // Σ|a_ik b_kj| ≤ K·max|a|·max|b| (+ |c0| when accumulating).
            const double abs_sum = static_cast<double>(c.K) * a.max_abs() * b.max_abs() +
                                   (mode == WriteMode::kAccumulate ? c0.max_abs() : 0.0);
            if (dt == DType::kF32) {
              results.push_back(compare_tensors(tag, "vs f64 CPU", got, want,
                                                for_reduction(DType::kF32, c.K + 1, abs_sum)));
            } else {
              const HostTensor naive = cpu(a, b, c0, ta, tb, mode, DType::kF32).Converted(DType::kBF16);
              results.push_back(
                  compare_tensors(tag, "vs f64 CPU", got, want, for_naive_reference(max_abs_diff(naive, want))));
            }
          }
        }
      }
    }
  }
  expect_all_ok(results);
}

// bf16 a and b, f32 c. Shapes: tiny, odd, and a real dW = dyᵀ·x (O = 768, C = 3072, N = 4096 rows).
constexpr Case kMixedCases[] = {{1, 1, 1}, {17, 33, 65}, {768, 3072, 4096}};

// Every transpose for the small cases; only the dW layout for the large one (trans_a = kYes,
// trans_b = kNo: a = dy stored (K = N rows, M = O), b = x stored (K, N = C)).
template <typename Fn>
void for_each_mixed_case(Fn fn) {
  for (const Case& c : kMixedCases) {
    const bool large = c.K >= 1024;
    for (Transpose ta : {Transpose::kNo, Transpose::kYes}) {
      for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
        if (large && !(ta == Transpose::kYes && tb == Transpose::kNo)) continue;
        for (WriteMode mode : {WriteMode::kOverwrite, WriteMode::kAccumulate}) fn(c, ta, tb, mode);
      }
    }
  }
}

std::string mixed_tag(const Case& c, Transpose ta, Transpose tb, WriteMode mode) {
  return format_message("matmul cuda bf16·bf16->f32 M=%ld N=%ld K=%ld ta=%d tb=%d %s", static_cast<long>(c.M),
                        static_cast<long>(c.N), static_cast<long>(c.K), ta == Transpose::kYes,
                        tb == Transpose::kYes, mode == WriteMode::kAccumulate ? "+=" : "=");
}

// An integer-valued (rows, cols) tensor, entries uniform in [-4, 4] rounded to integers.
HostTensor integers(const char* name, DType dt, int64_t rows, int64_t cols, uint64_t seed) {
  HostTensor t(name, dt, {rows, cols});
  t.FillUniform(Rng(seed, std::string("matmul/int/") + name), 0, -4.0, 4.0);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, std::round(t.get(i)));
  return t;
}

TEST(CudaMatmul, Bf16InputsF32OutputExactOnIntegers) {
  // Rule 1: integers in [-4, 4] are exact in bf16; each product is an integer of magnitude <= 16 and
  // every partial sum of K <= 4096 of them plus |c0| <= 4 stays <= 65540 < 2^24, exact in f32 in any
  // summation order. So the GPU must return the exact integer result, which the f32 CPU matmul of
  // the same values also computes exactly. An output rounded through bf16 (8 significant bits: not
  // every integer above 256) fails, which rule 2's bound below is too loose to see at K = 4096.
  CheckList results;
  for_each_mixed_case([&](const Case& c, Transpose ta, Transpose tb, WriteMode mode) {
    const uint64_t seed = static_cast<uint64_t>(c.M + c.N + c.K);
    const HostTensor a = ta == Transpose::kYes ? integers("a", DType::kBF16, c.K, c.M, seed)
                                               : integers("a", DType::kBF16, c.M, c.K, seed);
    const HostTensor b = tb == Transpose::kYes ? integers("b", DType::kBF16, c.N, c.K, seed)
                                               : integers("b", DType::kBF16, c.K, c.N, seed);
    const HostTensor c0 = integers("c0", DType::kF32, c.M, c.N, seed);
    const HostTensor got = gpu(a, b, c0, ta, tb, mode);
    const HostTensor want = cpu(a, b, c0, ta, tb, mode, DType::kF32);
    const std::string tag = mixed_tag(c, ta, tb, mode);
    results.push_back(check_fact(tag, "c stays f32", got.dtype() == DType::kF32));
    results.push_back(compare_tensors(tag, "vs f32 CPU (integers)", got, want, exact()));
  });
  expect_all_ok(results);
}

TEST(CudaMatmul, Bf16InputsF32OutputMatchF32ReferenceOnTheSameValues) {
  // Rule 2: the inputs are bf16 values, exact in f32, so the GPU (f32 accumulation) and the f32 CPU
  // matmul approximate the same exact sum s = c0 + Σ_k a_ik b_kj of n = K + 1 terms (K with
  // kOverwrite), each within the recursive-summation bound n·u·Σ|terms| (u = 2^-24; a product of two
  // bf16 values is exact in f32, and rounding it on the CPU stays within the same bound). The two
  // differ by at most 2·n·u·Σ|terms| = n·eps(f32)·Σ|terms|: for_reduction(f32, n, abs_sum), with
  // Σ|terms| <= K·max|a|·max|b| + max|c0| as in the f32 test above. c0 is a full-precision f32.
  CheckList results;
  for_each_mixed_case([&](const Case& c, Transpose ta, Transpose tb, WriteMode mode) {
    const uint64_t seed = static_cast<uint64_t>(c.M * 1000 + c.N * 10 + c.K) + 7;
    const HostTensor a = ta == Transpose::kYes ? operand("a", DType::kBF16, c.K, c.M, seed)
                                               : operand("a", DType::kBF16, c.M, c.K, seed);
    const HostTensor b = tb == Transpose::kYes ? operand("b", DType::kBF16, c.N, c.K, seed)
                                               : operand("b", DType::kBF16, c.K, c.N, seed);
    const HostTensor c0 = operand("c0", DType::kF32, c.M, c.N, seed);
    const HostTensor got = gpu(a, b, c0, ta, tb, mode);
    const HostTensor want = cpu(a, b, c0, ta, tb, mode, DType::kF32);
    const bool acc = mode == WriteMode::kAccumulate;
    const double abs_sum = static_cast<double>(c.K) * a.max_abs() * b.max_abs() + (acc ? c0.max_abs() : 0.0);
    results.push_back(compare_tensors(mixed_tag(c, ta, tb, mode), "vs f32 CPU on the same bf16 values", got, want,
                                      for_reduction(DType::kF32, c.K + (acc ? 1 : 0), abs_sum)));
  });
  expect_all_ok(results);
}

// The fused residual add (kernels/matmul.h): c = op(a)·op(b) + r through the cuBLASLt epilogue (C = r,
// beta = 1, D = c). c starts as garbage; r must come back unchanged.
HostTensor gpu_residual(const HostTensor& a, const HostTensor& b, const HostTensor& r, Transpose ta, Transpose tb,
                        CheckList& results, const std::string& tag) {
  DeviceTensor da = DeviceTensor::Upload(a), db = DeviceTensor::Upload(b), dr = DeviceTensor::Upload(r);
  HostTensor garbage("c", r.dtype(), r.shape());
  garbage.Fill(-77.0);
  DeviceTensor dc = DeviceTensor::Upload(garbage);
  matmul(cuda_ctx(), {.c = dc.view(), .a = da.cview(), .b = db.cview(), .trans_a = ta, .trans_b = tb,
                      .residual = dr.cview()});
  results.push_back(check_fact(tag, "the residual is read, not written", bitwise_equal(dr.Download(), r)));
  return dc.Download();
}

TEST(CudaMatmul, FusedResidualMatchesTheReference) {
  // The same error analysis as kAccumulate above (c0 = r): the result approximates r + Σ_k a_ik b_kj,
  // n = K + 1 terms. f32: rule 2 against f64. bf16: rule 3, twice the error of the same-precision naive
  // reference (f32 CPU r + a·b, rounded to bf16 once, as the epilogue rounds).
  CheckList results;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const Case& c : kCases) {
      for (Transpose ta : {Transpose::kNo, Transpose::kYes}) {
        for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
          const uint64_t seed = static_cast<uint64_t>(c.M * 1000 + c.N * 10 + c.K) + 11;
          const HostTensor a = ta == Transpose::kYes ? operand("a", dt, c.K, c.M, seed) : operand("a", dt, c.M, c.K, seed);
          const HostTensor b = tb == Transpose::kYes ? operand("b", dt, c.N, c.K, seed) : operand("b", dt, c.K, c.N, seed);
          const HostTensor r = operand("r", dt, c.M, c.N, seed);
          const std::string tag = format_message("matmul cuda %s + residual M=%ld N=%ld K=%ld ta=%d tb=%d",
                                                 std::string(dtype_name(dt)).c_str(), static_cast<long>(c.M),
                                                 static_cast<long>(c.N), static_cast<long>(c.K), ta == Transpose::kYes,
                                                 tb == Transpose::kYes);
          const HostTensor got = gpu_residual(a, b, r, ta, tb, results, tag);
          const HostTensor want = cpu(a, b, r, ta, tb, WriteMode::kAccumulate, DType::kF64);
          const double abs_sum = static_cast<double>(c.K) * a.max_abs() * b.max_abs() + r.max_abs();
          if (dt == DType::kF32) {
            results.push_back(compare_tensors(tag, "vs f64 CPU", got, want, for_reduction(DType::kF32, c.K + 1, abs_sum)));
          } else {
            const HostTensor naive = cpu(a, b, r, ta, tb, WriteMode::kAccumulate, DType::kF32).Converted(DType::kBF16);
            results.push_back(
                compare_tensors(tag, "vs f64 CPU", got, want, for_naive_reference(max_abs_diff(naive, want))));
          }
        }
      }
    }
  }
  expect_all_ok(results);
}

TEST(CudaMatmul, FusedResidualExactOnIntegersAndEmptyKGivesTheResidual) {
  // Rule 1: integers in [-4, 4] with K = 7: |r + Σ| <= 4 + 7·16 = 116 < 256, every partial sum an
  // integer exact in bf16 and f32, so the fused result is the exact integer (and a residual added
  // to the wrong place, or not at all, is off by an integer).
  CheckList results;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const HostTensor a = integers("a", dt, 33, 7, 5), b = integers("b", dt, 7, 65, 5), r = integers("r", dt, 33, 65, 5);
    const std::string tag = format_message("matmul cuda %s + residual (integers)", std::string(dtype_name(dt)).c_str());
    const HostTensor got = gpu_residual(a, b, r, Transpose::kNo, Transpose::kNo, results, tag);
    results.push_back(compare_tensors(tag, "exact", got,
                                      cpu(a, b, r, Transpose::kNo, Transpose::kNo, WriteMode::kAccumulate, DType::kF64)
                                          .Converted(dt),
                                      exact()));
    const HostTensor ea("a", dt, {33, 0}), eb("b", dt, {0, 65});
    results.push_back(compare_tensors(tag, "K = 0: c = r",
                                      gpu_residual(ea, eb, r, Transpose::kNo, Transpose::kNo, results, tag), r, exact()));
  }
  expect_all_ok(results);
}

TEST(CudaMatmulDeathTest, OnlyBf16InputsWithAnF32OutputMayMixDtypes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor dy("dy", DType::kBF16, {4, 2}), x32("x", DType::kF32, {4, 3}), dy32("dy", DType::kF32, {4, 2});
  DeviceTensor dw("layers.0.mlp.up.weight.grad", DType::kBF16, {2, 3});
  // b must have a's dtype; and f32 inputs with a bf16 c are not the mixed case.
  EXPECT_DEATH(matmul(cuda_ctx(), {dw.view(), dy.view(), x32.view(), Transpose::kYes}),
               "matmul: 'x' is f32 but expected bf16");
  EXPECT_DEATH(matmul(cuda_ctx(), {dw.view(), dy32.view(), x32.view(), Transpose::kYes}),
               "matmul: 'layers.0.mlp.up.weight.grad' is bf16 but expected f32");
}

TEST(CudaMatmul, BitIdenticalAcrossRunsAndEmptyKWritesZero) {
  const HostTensor a = operand("a", DType::kF32, 64, 96, 1), b = operand("b", DType::kF32, 96, 80, 1);
  const HostTensor c0("c0", DType::kF32, {64, 80});
  const HostTensor x = gpu(a, b, c0, Transpose::kNo, Transpose::kNo, WriteMode::kOverwrite);
  const HostTensor y = gpu(a, b, c0, Transpose::kNo, Transpose::kNo, WriteMode::kOverwrite);
  EXPECT_TRUE(bitwise_equal(x, y));
  const HostTensor ea("a", DType::kF32, {4, 0}), eb("b", DType::kF32, {0, 3});
  HostTensor ones("c0", DType::kF32, {4, 3});
  ones.Fill(1.0);
  EXPECT_EQ(gpu(ea, eb, ones, Transpose::kNo, Transpose::kNo, WriteMode::kOverwrite).max_abs(), 0.0);
  EXPECT_EQ(gpu(ea, eb, ones, Transpose::kNo, Transpose::kNo, WriteMode::kAccumulate).max_abs(), 1.0);
}

// kernels/cuda/matmul.cu keeps one plan (descriptors and heuristic algorithm) per kind of call, and the
// operands' address alignments are part of what a plan is for: an algorithm cuBLASLt picked for
// 256-byte-aligned operands may not run on 2-byte-aligned ones. The same shape at both alignments, in
// either order, and again from the cache: every result exact (integer-valued bf16 inputs in [-4, 4],
// K = 24, f32 output: every partial sum is an integer below 2^24, rule 1). On the emulator an algorithm
// run on operands less aligned than it was chosen for is a reported failure (cuda_emu/blas.cc).
TEST(CudaMatmul, PlansFollowOperandAlignmentAndAreReused) {
  constexpr int64_t M = 16, N = 32, K = 24;
  auto integers = [](const char* name, int64_t n, int salt) {
    HostTensor t(name, DType::kBF16, {n});
    for (int64_t i = 0; i < n; ++i) t.set(i, static_cast<double>((i * 5 + salt) % 9) - 4.0);
    return t;
  };
  // Element `shift` onwards of each store is the operand: shift 0 is the allocation's own 256-byte
  // alignment, shift 1 a 2-byte (a, b: bf16) or 4-byte (c: f32) alignment.
  const HostTensor a_store = integers("a", M * K + 1, 1), b_store = integers("b", K * N + 1, 2);
  DeviceTensor da = DeviceTensor::Upload(a_store), db = DeviceTensor::Upload(b_store);
  for (int shift : {0, 1, 0, 1}) {
    SCOPED_TRACE(format_message("operands shifted by %d element(s)", shift));
    DeviceTensor dc("c", DType::kF32, {M * N + 1});
    char* a0 = static_cast<char*>(da.view().data) + shift * 2;
    char* b0 = static_cast<char*>(db.view().data) + shift * 2;
    char* c0 = static_cast<char*>(dc.view().data) + shift * 4;
    matmul(cuda_ctx(), {make_view(c0, DType::kF32, {M, N}, Device::Cuda(0), "c"),
                        make_view(static_cast<const void*>(a0), DType::kBF16, {M, K}, Device::Cuda(0), "a"),
                        make_view(static_cast<const void*>(b0), DType::kBF16, {K, N}, Device::Cuda(0), "b")});
    const HostTensor got = dc.Download();
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double want = 0.0;
        for (int64_t k = 0; k < K; ++k) want += a_store.get(shift + i * K + k) * b_store.get(shift + k * N + j);
        ASSERT_EQ(got.get(shift + i * N + j), want) << "c[" << i << ", " << j << "]";
      }
    }
  }
}

}  // namespace
}  // namespace om
