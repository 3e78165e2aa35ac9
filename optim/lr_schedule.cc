// Warm-up + cosine schedule (optim/lr_schedule.h). Evaluated in double and rounded to float once:
// the endpoints come out exact (lr at i = warmup - 1 and i = warmup, min_lr from i = decay on),
// because the double result is within a few double ulps of a float value and rounds onto it.
#include "optim/lr_schedule.h"

#include <cmath>
#include <numbers>

namespace om {

float LrSchedule::At(int64_t iteration) const {
  OM_CHECK(iteration >= 0, "LrSchedule::At: iteration %ld is negative", static_cast<long>(iteration));
  const double peak = lr, floor = min_lr;
  if (iteration < warmup_iters) {
    // (i + 1) / warmup: the first step already trains (lr/warmup), step warmup - 1 reaches lr.
    return static_cast<float>(peak * static_cast<double>(iteration + 1) / static_cast<double>(warmup_iters));
  }
  if (iteration >= decay_iters) return min_lr;
  // Here warmup <= i < decay, so decay - warmup >= 1 and the ratio lies in [0, 1).
  const double progress =
      static_cast<double>(iteration - warmup_iters) / static_cast<double>(decay_iters - warmup_iters);
  return static_cast<float>(floor + (peak - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

Status LrSchedule::Validate() const {
  if (!std::isfinite(lr) || lr < 0.0f) {
    return Status::InvalidArgument(format_message("--lr %g must be a finite learning rate >= 0", double{lr}));
  }
  if (!std::isfinite(min_lr) || min_lr < 0.0f) {
    return Status::InvalidArgument(
        format_message("--min-lr %g must be a finite learning rate >= 0 (use 0 to decay to zero)", double{min_lr}));
  }
  if (min_lr > lr) {
    return Status::InvalidArgument(format_message(
        "--min-lr %g exceeds --lr %g; the schedule decays from --lr down to --min-lr, so lower --min-lr",
        double{min_lr}, double{lr}));
  }
  if (decay_iters < 1) {
    return Status::InvalidArgument(format_message(
        "--lr-decay-iters %ld must be >= 1 (it defaults to --train-iters)", static_cast<long>(decay_iters)));
  }
  if (warmup_iters < 0) {
    return Status::InvalidArgument(
        format_message("--lr-warmup-iters %ld must be >= 0", static_cast<long>(warmup_iters)));
  }
  if (warmup_iters > decay_iters) {
    return Status::InvalidArgument(
        format_message("--lr-warmup-iters %ld exceeds --lr-decay-iters %ld; warm-up must end before decay ends",
                       static_cast<long>(warmup_iters), static_cast<long>(decay_iters)));
  }
  return Status::Ok();
}

}  // namespace om
