// DatasetInfo: PREFIX.json, written by `ortho_data preprocess` next to PREFIX.bin / PREFIX.idx.
// It says which tokenizer produced the tokens and what the dataset holds, so the trainer can size
// the vocabulary and check that the .bin/.idx it opened is the one described (data/FORMAT.md
// lists the fields). Values; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "data/indexed_dataset.h"

namespace om {

inline constexpr int kDatasetInfoFormatVersion = 1;

struct DatasetInfo {
  int format_version = kDatasetInfoFormatVersion;
  std::string split;               // "train" or "valid"
  std::string tokenizer_model;     // path as given to preprocess
  uint64_t tokenizer_fnv1a64 = 0;  // FNV-1a 64 of the .model file's bytes (detects a retrained tokenizer)
  int32_t vocab_size = 0;
  int32_t eod_id = -1;             // "</s>", appended after every document
  int32_t bos_id = -1;             // "<s>", or -1; never inserted by preprocess
  int64_t num_documents = 0;
  int64_t num_tokens = 0;          // end-of-document tokens included
  DType token_dtype = DType::kU16; // kU16 or kI32
  double valid_fraction = 0.0;     // the held-out split that produced this dataset
  uint64_t seed = 0;
  std::vector<std::string> inputs; // the input files, in order
};

// Reads PREFIX.json. NotFound / Corruption messages name the file and say how to regenerate it.
StatusOr<DatasetInfo> read_dataset_info(const std::string& prefix);
// Writes PREFIX.json (via PREFIX.json.tmp and a rename).
Status write_dataset_info(const std::string& prefix, const DatasetInfo& info);
// FailedPrecondition unless the dataset's document count, token count and dtype match the info
// (the .json and the .bin/.idx come from different runs otherwise).
Status verify_dataset_info(const std::string& prefix, const DatasetInfo& info, const IndexedDataset& dataset);

// FNV-1a 64 of a file's bytes (the tokenizer fingerprint above).
StatusOr<uint64_t> file_fnv1a64(const std::string& path);

}  // namespace om
