// CUDA matmul (kernels/cuda/matmul.cu, cuBLASLt) against the CPU reference on the same inputs: every
// transpose combination, overwrite and accumulate, tiny / odd / Llama-sized shapes, f32 and bf16; plus
// determinism and K = 0. Runs under cuda_test_main (exit 77 without a GPU).
// Tolerances (kernels/check/tolerance.h): f32 → rule 2 against the f64 CPU reference, n = K terms with
// abs_sum = max over outputs of Σ_k |a_ik b_kj| (bounded here by K·max|a|·max|b|); bf16 → rule 3, twice
// the error of the same-precision naive reference (the f32 CPU product of the bf16 values, rounded to
// bf16) against f64.
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

}  // namespace
}  // namespace om
