// Helpers shared by the CPU cross-entropy reference (cross_entropy.cc) and its f32 simd variant
// (cross_entropy_simd.cc). Internal to kernels/cpu.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cross_entropy.h"

namespace om::cpu {

// Padding ids are exactly the tail of a contiguous shard: columns [valid_columns, Vl).
inline int64_t valid_columns(const VocabShard& s, int64_t Vl) {
  return std::clamp<int64_t>(s.vocab_size - s.vocab_start, 0, Vl);
}

// A target outside [0, vocab_size) that is not kIgnoreTarget is a data bug (a padding id, an id of
// another tokenizer); fail loudly instead of silently training on garbage. Serial: N ints.
inline void check_targets(const char* op, const ConstTensorView& targets, int64_t vocab_size) {
  const int32_t* t = targets.data_as<const int32_t>();
  for (int64_t n = 0; n < targets.numel(); ++n) {
    OM_CHECK(t[n] == kIgnoreTarget || (t[n] >= 0 && t[n] < vocab_size),
             "%s: '%s'[%ld] = %d is neither a token id in [0, %ld) nor kIgnoreTarget (%d)", op, targets.name,
             static_cast<long>(n), t[n], static_cast<long>(vocab_size), kIgnoreTarget);
  }
}

}  // namespace om::cpu
