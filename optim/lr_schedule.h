// Learning-rate schedule: linear warm-up, then cosine decay to min_lr, then constant min_lr.
//   iteration i (0-based, the i-th optimizer step):
//     i <  warmup:         lr · (i + 1) / warmup
//     warmup <= i < decay: min_lr + (lr - min_lr) · (1 + cos(pi · (i - warmup) / (decay - warmup))) / 2
//     i >= decay:          min_lr
// decay_iters defaults to the run's train iterations (Megatron's --lr-decay-iters).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace om {

struct LrSchedule {
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup_iters = 0;
  int64_t decay_iters = 1;

  float At(int64_t iteration) const;
  // InvalidArgument naming the flag: lr >= min_lr >= 0, 0 <= warmup <= decay, decay >= 1.
  Status Validate() const;
};

}  // namespace om
