#include "data/heldout.h"

#include "core/rng.h"

namespace om {

bool is_heldout(int64_t document_index, double fraction, uint64_t seed) {
  if (fraction <= 0.0) return false;
  // UniformDouble is in [0, 1), so fraction 1 holds out every document.
  return Rng(seed, "data/heldout").UniformDouble(static_cast<uint64_t>(document_index)) < fraction;
}

}  // namespace om
