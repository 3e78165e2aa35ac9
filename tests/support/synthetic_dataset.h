// A small learnable dataset for trainer tests: `docs` documents of `doc_len` tokens repeating a
// period-8 pattern (token 3 + (d + i) % 8, offset by the document index d), each followed by the
// end-of-document token 2, with its PREFIX.json metadata (vocabulary kSyntheticVocab).
#pragma once

#include <cstdint>
#include <string>

namespace om {

inline constexpr int32_t kSyntheticVocab = 64;

// Writes PREFIX.bin/.idx/.json and returns `prefix`. OM_CHECKs on any I/O failure.
std::string write_synthetic_dataset(const std::string& prefix, int64_t docs, int64_t doc_len);

}  // namespace om
