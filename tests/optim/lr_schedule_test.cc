// LrSchedule: warm-up, cosine decay and the constant tail at their defining points, and Validate's
// messages, which must name the flag to change.
#include "optim/lr_schedule.h"

#include <cctype>
#include <cmath>
#include <numbers>
#include <string>

#include "kernels/check/tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

LrSchedule make(float lr, float min_lr, int64_t warmup, int64_t decay) {
  LrSchedule s;
  s.lr = lr;
  s.min_lr = min_lr;
  s.warmup_iters = warmup;
  s.decay_iters = decay;
  return s;
}

// At() evaluates a cosine and two terms in double and rounds once to f32, so against the exact value
// it is off by one f32 rounding plus double noise: rule 2 with 2 terms of size lr (the two summands
// are at most lr each) and the usual element-wise ulps.
void expect_near_lr(float got, long double want, float lr, const char* what) {
  const Tolerance tol = for_reduction(DType::kF32, 2, lr);
  const double err = std::fabs(static_cast<double>(got) - static_cast<double>(want));
  EXPECT_LE(err, tol.atol + tol.rtol * std::fabs(static_cast<double>(want)))
      << what << ": got " << got << " want " << static_cast<double>(want) << " (" << tol.rule << ")";
}

// The exact schedule value in the cosine phase.
long double cosine_value(const LrSchedule& s, int64_t i) {
  const long double progress =
      static_cast<long double>(i - s.warmup_iters) / static_cast<long double>(s.decay_iters - s.warmup_iters);
  const long double cosine = std::cos(std::numbers::pi_v<long double> * progress);
  return s.min_lr + (static_cast<long double>(s.lr) - s.min_lr) * (1 + cosine) / 2;
}

TEST(LrSchedule, WarmupRisesLinearlyToThePeak) {
  const LrSchedule s = make(1e-3f, 1e-4f, 10, 110);
  // lr * 1 / 10 in double is lr/10 correctly rounded once more to f32: exactly float(lr / 10).
  EXPECT_EQ(s.At(0), static_cast<float>(static_cast<double>(s.lr) / 10.0));
  EXPECT_EQ(s.At(4), static_cast<float>(static_cast<double>(s.lr) * 5.0 / 10.0));
  EXPECT_EQ(s.At(9), s.lr);   // i = warmup - 1: the last warm-up step reaches lr exactly
  EXPECT_EQ(s.At(10), s.lr);  // i = warmup: the cosine starts at its peak, cos(0) = 1
  for (int64_t i = 0; i + 1 < 10; ++i) EXPECT_LT(s.At(i), s.At(i + 1)) << "warm-up not increasing at " << i;
}

TEST(LrSchedule, CosineIsHalfwayAtTheMidpointAndNearMinAtTheEnd) {
  const LrSchedule s = make(1e-3f, 1e-4f, 10, 110);
  // Midway (i - warmup = 50 of 100): cos(pi/2) = 0, so (lr + min_lr) / 2.
  expect_near_lr(s.At(60), (static_cast<long double>(s.lr) + s.min_lr) / 2, s.lr, "midpoint");
  expect_near_lr(s.At(35), cosine_value(s, 35), s.lr, "quarter");
  // The last decay step is min_lr + (lr - min_lr)(1 - cos(pi/100))/2 ~ min_lr + 2.2e-7: close to but
  // above min_lr, within (lr - min_lr) (pi/100)^2 / 4.
  const float last = s.At(109);
  expect_near_lr(last, cosine_value(s, 109), s.lr, "last decay step");
  EXPECT_GT(last, s.min_lr);
  EXPECT_LT(last - s.min_lr, (s.lr - s.min_lr) * std::pow(std::numbers::pi / 100.0, 2) / 4 * 1.01);
  for (int64_t i = 10; i < 115; ++i) EXPECT_LE(s.At(i + 1), s.At(i)) << "decay not monotone at " << i;
}

TEST(LrSchedule, ConstantMinLrFromDecayItersOn) {
  const LrSchedule s = make(1e-3f, 1e-4f, 10, 110);
  EXPECT_EQ(s.At(110), s.min_lr);
  EXPECT_EQ(s.At(111), s.min_lr);
  EXPECT_EQ(s.At(1'000'000'000), s.min_lr);
  const LrSchedule zero_floor = make(3e-4f, 0.0f, 0, 50);
  EXPECT_EQ(zero_floor.At(50), 0.0f);
}

TEST(LrSchedule, NoWarmupStartsAtThePeak) {
  const LrSchedule s = make(6e-4f, 6e-5f, 0, 1000);
  ASSERT_TRUE(s.Validate().ok()) << s.Validate().ToString();
  EXPECT_EQ(s.At(0), s.lr);
  expect_near_lr(s.At(500), (static_cast<long double>(s.lr) + s.min_lr) / 2, s.lr, "midpoint, no warm-up");
  EXPECT_EQ(s.At(1000), s.min_lr);
}

TEST(LrSchedule, WarmupEqualToDecayJumpsFromPeakToMin) {
  // No cosine phase at all (decay - warmup = 0 is never divided by).
  const LrSchedule s = make(1e-3f, 1e-4f, 5, 5);
  ASSERT_TRUE(s.Validate().ok()) << s.Validate().ToString();
  EXPECT_EQ(s.At(4), s.lr);
  EXPECT_EQ(s.At(5), s.min_lr);
}

// True when `message` mentions `flag` as a whole flag ("--lr" must not match "--lr-decay-iters").
bool names_flag(const std::string& message, const std::string& flag) {
  for (size_t at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
    const size_t end = at + flag.size();
    if (end == message.size() || (message[end] != '-' && !std::isalnum(static_cast<unsigned char>(message[end]))))
      return true;
  }
  return false;
}

void expect_invalid_naming(const LrSchedule& s, std::initializer_list<const char*> flags) {
  const Status st = s.Validate();
  ASSERT_FALSE(st.ok()) << "accepted lr " << s.lr << " min_lr " << s.min_lr << " warmup " << s.warmup_iters
                        << " decay " << s.decay_iters;
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  for (const char* flag : flags) EXPECT_TRUE(names_flag(st.message(), flag)) << flag << " not in: " << st.message();
}

TEST(LrSchedule, ValidateNamesTheBadFlag) {
  EXPECT_TRUE(LrSchedule{}.Validate().ok());
  EXPECT_TRUE(make(1e-3f, 1e-3f, 0, 1).Validate().ok());  // constant lr is allowed
  expect_invalid_naming(make(-1e-3f, 0.0f, 0, 10), {"--lr"});
  expect_invalid_naming(make(std::nanf(""), 0.0f, 0, 10), {"--lr"});
  expect_invalid_naming(make(INFINITY, 0.0f, 0, 10), {"--lr"});
  expect_invalid_naming(make(1e-3f, -1e-4f, 0, 10), {"--min-lr"});
  expect_invalid_naming(make(1e-4f, 1e-3f, 0, 10), {"--min-lr", "--lr"});
  expect_invalid_naming(make(1e-3f, 1e-4f, -1, 10), {"--lr-warmup-iters"});
  expect_invalid_naming(make(1e-3f, 1e-4f, 0, 0), {"--lr-decay-iters"});
  expect_invalid_naming(make(1e-3f, 1e-4f, 20, 10), {"--lr-warmup-iters", "--lr-decay-iters"});
  // A message about one flag does not blame another.
  EXPECT_FALSE(names_flag(make(1e-3f, 1e-4f, 0, 0).Validate().message(), "--lr"));
  EXPECT_FALSE(names_flag(make(1e-3f, 1e-4f, -1, 10).Validate().message(), "--min-lr"));
}

TEST(LrScheduleDeathTest, NegativeIterationIsAProgrammerError) {
  const LrSchedule s = make(1e-3f, 1e-4f, 10, 110);
  EXPECT_DEATH((void)s.At(-1), "iteration -1 is negative");
}

}  // namespace
}  // namespace om
