// sum_squares: the exact and Kahan-reference checks (kernels/check/sum_squares_check.cc) plus
// accumulation, empty tensors and thread-count determinism.
#include <omp.h>

#include "kernels/check/checks.h"
#include "kernels/sum_squares.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(SumSquares, ExactOnIntegersAndAgreesWithKahanReference) { expect_all_ok(check_sum_squares()); }

TEST(SumSquares, AccumulatesIntoOut) {
  // Two tensors added into one scalar, as the global gradient norm does; small integers make
  // every value exact (rule 1): 2.5 + (1 + 4 + 9) + (16 + 25) = 57.5.
  HostTensor out("grad_norm_sq", DType::kF64, {1}), a("a", DType::kF32, {3}), b("b", DType::kF64, {2, 1});
  out.set(0, 2.5);
  for (int64_t i = 0; i < 3; ++i) a.set(i, static_cast<double>(-(i + 1)));
  b.set(0, 4.0);
  b.set(1, 5.0);
  sum_squares({}, {out.view(), a.view()});
  sum_squares({}, {out.view(), b.view()});
  EXPECT_EQ(out.get(0), 57.5);
}

TEST(SumSquares, EmptyTensorAddsZero) {
  HostTensor out("out", DType::kF64, {1}), empty("empty", DType::kF32, {0}), empty2("empty2", DType::kF64, {3, 0});
  out.set(0, 1.25);
  sum_squares({}, {out.view(), empty.view()});
  sum_squares({}, {out.view(), empty2.view()});
  EXPECT_EQ(out.get(0), 1.25);
}

TEST(SumSquares, BitIdenticalForOneAndTwoThreads) {
  HostTensor x("x", DType::kF32, {1000003}), one("one thread", DType::kF64, {1}), two("two threads", DType::kF64, {1});
  x.FillNormal(Rng(5, "sum_squares/x"), 0, 3.0);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  sum_squares({}, {one.view(), x.view()});
  omp_set_num_threads(2);
  sum_squares({}, {two.view(), x.view()});
  omp_set_num_threads(saved);
  EXPECT_EQ(one.get(0), two.get(0));  // bit-identical, not merely close
  EXPECT_GT(one.get(0), 0.0);
}

TEST(SumSquaresDeathTest, OutMustBeAnF64Scalar) {
  HostTensor out("grad_norm_sq", DType::kF32, {1}), x("x", DType::kF32, {4});
  EXPECT_DEATH(sum_squares({}, {out.view(), x.view()}), "sum_squares: 'grad_norm_sq' is f32 but expected f64");
}

}  // namespace
}  // namespace om
