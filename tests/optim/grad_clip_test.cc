// global_grad_norm and clip_coefficient: an exact norm over several parameters (integer gradients,
// rule 1), the clipping rule at and around max_norm, and the chosen behaviour for a non-finite norm:
// the coefficient is NaN (never a silent 1 or 0) while clipping is on.
#include "optim/grad_clip.h"

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/check/host_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// Parameters whose gradients are the given integers; values are set to 1000 so a norm of the
// values instead of the gradients would show.
struct Grads {
  std::vector<HostTensor> values, grads;
  void Add(Shape shape, std::initializer_list<double> g) {
    values.emplace_back("value", DType::kF32, shape);
    grads.emplace_back("grad", DType::kF32, shape);
    values.back().Fill(1000.0);
    int64_t i = 0;
    for (double x : g) grads.back().set(i++, x);
  }
  std::vector<Parameter> params() {
    std::vector<Parameter> p;
    for (size_t i = 0; i < grads.size(); ++i) p.push_back(Parameter{"p", values[i].view(), grads[i].view(), true});
    return p;
  }
};

TEST(GradClip, NormIsExactForIntegerGradientsOverSeveralParameters) {
  // 91 + 29 + 24 = 144: every square and partial sum is a small integer, exact in f64 (rule 1), and
  // sqrt is correctly rounded, so the norm is exactly 12.
  Grads g;
  g.Add({2, 3}, {1, 2, 3, 4, 5, 6});       // 1 + 4 + 9 + 16 + 25 + 36 = 91
  g.Add({3}, {-2, 3, -4});                 // 4 + 9 + 16 = 29
  g.Add({4, 2}, {2, -2, 2, -2, 2, 2, 0, 0});  // 6 * 4 = 24
  g.Add({0}, {});                          // an empty gradient adds nothing
  EXPECT_EQ(global_grad_norm(g.params()), 12.0);
}

TEST(GradClip, NormSpansSumSquaresBlocks) {
  // 10000 threes (more than two kSumSquaresBlocks) and a 4: 90000 + 16 = 90016, still exact; the
  // norm is its correctly rounded sqrt.
  Grads g;
  g.Add({100, 100}, {});
  g.grads.back().Fill(3.0);
  g.Add({1}, {4});
  EXPECT_EQ(global_grad_norm(g.params()), std::sqrt(90016.0));
  EXPECT_EQ(global_grad_norm(std::span<const Parameter>{}), 0.0);
}

TEST(GradClip, NonFiniteGradientsGiveANonFiniteNorm) {
  Grads nan_grad, inf_grad;
  nan_grad.Add({3}, {1, std::nan(""), 2});
  inf_grad.Add({2}, {1, -INFINITY});
  EXPECT_TRUE(std::isnan(global_grad_norm(nan_grad.params())));
  EXPECT_EQ(global_grad_norm(inf_grad.params()), INFINITY);
}

TEST(GradClip, CoefficientIsOneBelowMaxAndMaxOverNormAbove) {
  EXPECT_EQ(clip_coefficient(0.0, 1.0f), 1.0f);
  EXPECT_EQ(clip_coefficient(0.5, 1.0f), 1.0f);
  // At norm = max_norm the 1e-6 guard makes the coefficient just below 1 (Megatron's formula).
  EXPECT_EQ(clip_coefficient(1.0, 1.0f), static_cast<float>(1.0 / (1.0 + 1e-6)));
  EXPECT_LT(clip_coefficient(1.0, 1.0f), 1.0f);
  EXPECT_EQ(clip_coefficient(12.0, 1.0f), static_cast<float>(1.0 / (12.0 + 1e-6)));
  EXPECT_EQ(clip_coefficient(1e4, 0.5f), static_cast<float>(0.5 / (1e4 + 1e-6)));
  // The clipped norm never exceeds max_norm (up to the one f32 rounding of the coefficient).
  for (double norm : {2.5, 3.0, 77.0, 1e8}) {
    const double clipped = norm * static_cast<double>(clip_coefficient(norm, 2.0f));
    EXPECT_LE(clipped, 2.0 * (1.0 + std::ldexp(1.0, -24))) << "norm " << norm;
    EXPECT_GT(clipped, 2.0 * (1.0 - 1e-6)) << "norm " << norm;
  }
}

TEST(GradClip, MaxNormZeroDisablesClipping) {
  EXPECT_EQ(clip_coefficient(1e30, 0.0f), 1.0f);
  EXPECT_EQ(clip_coefficient(3.0, 0.0f), 1.0f);
}

TEST(GradClip, NonFiniteNormGivesNaNCoefficientWhenClipping) {
  // The chosen behaviour: NaN, not 1 (std::min(1, NaN) would return 1) and not 0 (max / inf), so a
  // caller that forgets to check the norm poisons the step visibly instead of silently skipping it.
  EXPECT_TRUE(std::isnan(clip_coefficient(std::numeric_limits<double>::quiet_NaN(), 1.0f)));
  EXPECT_TRUE(std::isnan(clip_coefficient(INFINITY, 1.0f)));
  // With clipping off the coefficient stays 1: the non-finite gradients themselves carry the failure.
  EXPECT_EQ(clip_coefficient(INFINITY, 0.0f), 1.0f);
}

}  // namespace
}  // namespace om
