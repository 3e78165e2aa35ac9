// The held-out (validation) split: whole documents, chosen by a pure function of (document index,
// fraction, seed). tokenizer-train keeps these documents out of tokenizer training and preprocess
// writes them to PREFIX_valid, so both agree as long as they are given the same inputs (in the same
// order), --valid-fraction and --seed. Document indices are DocumentStream record numbers.
// The split is a per-document Bernoulli draw, so it streams (no document count needed up front);
// the held-out count is binomial around fraction·documents rather than exactly that.
#pragma once

#include <cstdint>

namespace om {

// True when document `document_index` belongs to the held-out split. fraction in [0, 1]:
// 0 holds out nothing, 1 everything. The draw is Rng(seed, "data/heldout").UniformDouble(index).
bool is_heldout(int64_t document_index, double fraction, uint64_t seed);

}  // namespace om
