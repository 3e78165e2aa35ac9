// Residual add: checks (kernels/check/residual_check.cc) plus the op's own facts.
#include "kernels/check/checks.h"
#include "kernels/residual.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(Residual, GradientsExactnessAliasingAndF32AgreeWithReferences) { expect_all_ok(check_residual()); }

TEST(Residual, WorksOnAnyRankAndEmptyTensors) {
  HostTensor a("a", DType::kF64, {2, 3, 4}), b("b", DType::kF64, {2, 3, 4}), out("out", DType::kF64, {2, 3, 4});
  a.Fill(1.5);
  b.Fill(-0.25);
  residual_forward({}, {out.view(), a.view(), b.view()});
  for (int64_t i = 0; i < out.numel(); ++i) EXPECT_EQ(out.get(i), 1.25) << "element " << i;
  HostTensor e("e", DType::kF32, {0, 8});
  residual_forward({}, {e.view(), e.view(), e.view()});
}

TEST(ResidualDeathTest, ShapeMismatchNamesTheTensor) {
  HostTensor a("a", DType::kF32, {2, 8}), b("layers.0.mlp_out", DType::kF32, {2, 4}), out("out", DType::kF32, {2, 8});
  EXPECT_DEATH(residual_forward({}, {out.view(), a.view(), b.view()}),
               "layers.0.mlp_out' has shape \\(2, 4\\) but expected \\(2, 8\\)");
}

TEST(ResidualDeathTest, MixedDtypesAreRejected) {
  HostTensor a("a", DType::kF32, {4}), b("b", DType::kF64, {4}), out("out", DType::kF32, {4});
  EXPECT_DEATH(residual_forward({}, {out.view(), a.view(), b.view()}), "'b' is f64 but expected f32");
}

}  // namespace
}  // namespace om
