// Matmul: the shared checks (kernels/check/matmul_check.cc) plus the op's own facts: accumulate
// adds to c, f32 results do not depend on the OpenMP thread count, shapes are validated by name,
// and an empty K is an empty sum.
#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/check/checks.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr Transpose kBoth[] = {Transpose::kNo, Transpose::kYes};

Shape operand_shape(int64_t rows, int64_t cols, Transpose t) {
  return t == Transpose::kYes ? Shape{cols, rows} : Shape{rows, cols};
}

TEST(Matmul, ExactF32AndGradientsAgreeWithReferences) { expect_all_ok(check_matmul()); }

TEST(Matmul, AccumulateAddsToPrefilledCAndOverwriteReplacesIt) {
  // f64: c += s adds the finished sum s, so the result is exactly p + s in double. f32 (dnnl may add
  // c to partial sums) on small-integer data, where every sum is exact (rule 1).
  const int64_t M = 300, K = 200, N = 520;
  for (DType dt : {DType::kF64, DType::kF32}) {
    for (Transpose ta : kBoth)
      for (Transpose tb : kBoth) {
        HostTensor a("a", dt, operand_shape(M, K, ta)), b("b", dt, operand_shape(K, N, tb)), p("p", dt, {M, N});
        for (HostTensor* t : {&a, &b, &p}) {
          t->FillUniform(Rng(11, t->name()), 0, -4.0, 4.0);
          if (dt == DType::kF32)
            for (int64_t i = 0; i < t->numel(); ++i) t->set(i, std::round(t->get(i)));
        }
        HostTensor c_over = p.Clone("c_over"), c_acc = p.Clone("c_acc");
        matmul({}, {c_over.view(), a.view(), b.view(), ta, tb, WriteMode::kOverwrite});
        matmul({}, {c_acc.view(), a.view(), b.view(), ta, tb, WriteMode::kAccumulate});
        HostTensor c_fresh("c_fresh", dt, {M, N});
        matmul({}, {c_fresh.view(), a.view(), b.view(), ta, tb});
        int64_t acc_bad = 0, over_bad = 0;
        for (int64_t i = 0; i < M * N; ++i) {
          acc_bad += c_acc.get(i) != p.get(i) + c_over.get(i);
          over_bad += c_over.get(i) != c_fresh.get(i);
        }
        EXPECT_EQ(acc_bad, 0) << dtype_name(dt) << " trans_a=" << (ta == Transpose::kYes)
                              << " trans_b=" << (tb == Transpose::kYes);
        EXPECT_EQ(over_bad, 0) << "overwrite depends on the previous contents of c";
      }
  }
}

TEST(Matmul, F32IsBitIdenticalForAnyThreadCount) {
  // A bare dnnl_sgemm splits K between threads for 1x1024x256 (at 2 threads) and 8x4096x256 (at 8
  // threads); the other shapes are a Linear forward (a·bT) and weight gradient (aT·b).
  struct Case {
    int64_t M, K, N;
    Transpose ta, tb;
  };
  const Case cases[] = {{1, 1024, 256, Transpose::kNo, Transpose::kNo},
                        {8, 4096, 256, Transpose::kNo, Transpose::kNo},
                        {64, 64, 64, Transpose::kNo, Transpose::kNo},
                        {256, 768, 2048, Transpose::kNo, Transpose::kYes},
                        {768, 2048, 256, Transpose::kYes, Transpose::kNo}};
  const int saved_threads = omp_get_max_threads();
  for (const Case& k : cases) {
    HostTensor a("a", DType::kF32, operand_shape(k.M, k.K, k.ta)), b("b", DType::kF32, operand_shape(k.K, k.N, k.tb));
    a.FillNormal(Rng(5, "a"), 0, 1.0);
    b.FillNormal(Rng(5, "b"), 0, 1.0);
    HostTensor ref("c1", DType::kF32, {k.M, k.N});
    omp_set_num_threads(1);
    matmul({}, {ref.view(), a.view(), b.view(), k.ta, k.tb});
    for (int threads : {2, 3, 8}) {
      omp_set_num_threads(threads);
      HostTensor c("c", DType::kF32, {k.M, k.N});
      matmul({}, {c.view(), a.view(), b.view(), k.ta, k.tb});
      EXPECT_EQ(omp_get_max_threads(), threads) << "matmul changed the caller's thread setting";
      EXPECT_EQ(std::memcmp(c.data<float>(), ref.data<float>(), c.view().nbytes()), 0)
          << k.M << "x" << k.K << "x" << k.N << " with " << threads << " threads differs from 1 thread";
    }
  }
  omp_set_num_threads(saved_threads);
}

TEST(Matmul, EmptyKIsAnEmptySum) {
  for (DType dt : {DType::kF32, DType::kF64}) {
    HostTensor a("a", dt, {3, 0}), b("b", dt, {0, 4}), c("c", dt, {3, 4});
    c.Fill(5.0);
    matmul({}, {c.view(), a.view(), b.view(), Transpose::kNo, Transpose::kNo, WriteMode::kAccumulate});
    for (int64_t i = 0; i < c.numel(); ++i) EXPECT_EQ(c.get(i), 5.0) << "accumulating nothing changed c";
    matmul({}, {c.view(), a.view(), b.view()});
    for (int64_t i = 0; i < c.numel(); ++i) EXPECT_EQ(c.get(i), 0.0) << "overwrite with K=0 must give 0";
    // Empty M or N: nothing to write, nothing to fail.
    HostTensor a0("a0", dt, {0, 5}), b5("b5", dt, {5, 4}), c0("c0", dt, {0, 4});
    matmul({}, {c0.view(), a0.view(), b5.view()});
  }
}

TEST(Matmul, FusedResidualEqualsMatmulThenResidualForwardBitForBit) {
  // kernels/matmul.h: on the CPU, c = op(a)·op(b) + residual is the GEMM then residual_forward's add,
  // so the bits equal the two unfused ops (Llama's o and down projections run it at tp = 1). Normal
  // data (every rounding matters), every transpose, f32 and f64; c starts as garbage; K = 0 gives the
  // residual.
  for (DType dt : {DType::kF32, DType::kF64}) {
    for (Transpose ta : kBoth)
      for (Transpose tb : kBoth)
        for (int64_t K : {0, 1, 67}) {
          const int64_t M = 37, N = 29;
          HostTensor a("a", dt, operand_shape(M, K, ta)), b("b", dt, operand_shape(K, N, tb)), r("x", dt, {M, N});
          for (HostTensor* t : {&a, &b, &r}) t->FillNormal(Rng(13, t->name()), 0, 1.0);
          HostTensor fused("fused", dt, {M, N}), unfused("unfused", dt, {M, N});
          fused.Fill(-7.0);
          matmul({}, {.c = fused.view(), .a = a.view(), .b = b.view(), .trans_a = ta, .trans_b = tb,
                      .residual = r.view()});
          matmul({}, {unfused.view(), a.view(), b.view(), ta, tb});
          residual_forward({}, {unfused.view(), unfused.view(), r.view()});
          expect_all_ok({compare_tensors(format_message("matmul + residual %s K=%ld ta=%d tb=%d",
                                                        std::string(dtype_name(dt)).c_str(), static_cast<long>(K),
                                                        ta == Transpose::kYes, tb == Transpose::kYes),
                                         "fused vs unfused", fused, unfused, exact())});
        }
  }
}

TEST(MatmulDeathTest, FusedResidualMustNotOverlapTheOutputNorAccumulate) {
  HostTensor x("x", DType::kF32, {4, 3}), w("w", DType::kF32, {3, 3}), y("y", DType::kF32, {4, 3}),
      r("x_mid", DType::kF32, {4, 2});
  EXPECT_DEATH(matmul({}, {.c = y.view(), .a = x.view(), .b = w.view(), .residual = y.view()}),
               "output 'y' overlaps the residual 'y'");
  EXPECT_DEATH(matmul({}, {.c = y.view(), .a = x.view(), .b = w.view(), .mode = WriteMode::kAccumulate,
                           .residual = x.view()}),
               "a residual \\('x'\\) goes with kOverwrite only, not kAccumulate into 'y'");
  EXPECT_DEATH(matmul({}, {.c = y.view(), .a = x.view(), .b = w.view(), .residual = r.view()}),
               "matmul: 'x_mid' has shape \\(4, 2\\) but expected \\(4, 3\\)");
}

TEST(MatmulDeathTest, ShapeMismatchNamesTheTensor) {
  HostTensor x("x", DType::kF32, {2, 3}), w("layers.0.mlp.down.weight", DType::kF32, {4, 5}),
      y("y", DType::kF32, {2, 5});
  EXPECT_DEATH(matmul({}, {y.view(), x.view(), w.view()}),
               "matmul: 'layers.0.mlp.down.weight' has shape \\(4, 5\\) but expected \\(3, 5\\)");
  HostTensor w2("layers.0.mlp.down.weight", DType::kF32, {3, 5}), y2("layers.0.mlp.out", DType::kF32, {2, 4});
  EXPECT_DEATH(matmul({}, {y2.view(), x.view(), w2.view()}),
               "matmul: 'layers.0.mlp.out' has shape \\(2, 4\\) but expected \\(2, 5\\)");
}

TEST(MatmulDeathTest, Bf16InputsWithAnF32OutputRunOnCudaOnly) {
  // The weight gradient of the mixed-precision model, dW (f32) += dyᵀ · x (bf16), has no CPU kernel.
  HostTensor dy("dy", DType::kBF16, {4, 2}), x("x", DType::kBF16, {4, 3});
  HostTensor dw("layers.0.mlp.up.weight.grad", DType::kF32, {2, 3});
  EXPECT_DEATH(matmul({}, {dw.view(), dy.view(), x.view(), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate}),
               "matmul: bf16 matmul runs on CUDA only; 'a' \\('dy'\\) is bf16 and "
               "'c' \\('layers.0.mlp.up.weight.grad'\\) f32 on cpu");
}

TEST(MatmulDeathTest, OutputOverlappingAnInputIsRefused) {
  HostTensor x("x", DType::kF32, {4, 4}), w("w", DType::kF32, {4, 4});
  EXPECT_DEATH(matmul({}, {x.view(), x.view(), w.view()}), "output 'x' overlaps an input");
}

}  // namespace
}  // namespace om
