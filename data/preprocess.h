// The three jobs of `ortho_data` as library functions (launch/data_main.cc only parses flags):
//   run_tokenizer_train  inputs -> MODEL_PREFIX.model/.vocab, trained on the non-held-out documents,
//                        plus MODEL_PREFIX.json recording the inputs and split it was trained with
//   run_preprocess       inputs -> PREFIX_train.{bin,idx,json} and PREFIX_valid.{bin,idx,json}:
//                        each document encoded, then the end-of-document token ("</s>") appended
//   inspect_dataset      a human-readable summary of PREFIX.{bin,idx,json}
// The held-out split (data/heldout.h) is the same in both writers for the same inputs, fraction
// and seed; run_preprocess refuses a split that differs from the one the tokenizer recorded for the
// same inputs, because the held-out documents would then have leaked into tokenizer training.
// Outputs are written to temporaries and renamed: a failure publishes no partial dataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "data/document_reader.h"
#include "data/tokenizer.h"

namespace om {

struct SplitOptions {
  double valid_fraction = 0.05;  // in [0, 1): expected share of documents held out
  uint64_t seed = 1234;
};

struct TokenizerTrainConfig {
  std::vector<std::string> inputs;
  ReaderOptions reader;
  SplitOptions split;
  TokenizerTrainOptions tokenizer;  // model_prefix, vocab_size, threads
};

struct TokenizerTrainReport {
  int64_t documents_used = 0;      // documents whose lines went into training
  int64_t documents_heldout = 0;   // kept out (valid split)
  int64_t lines = 0;               // training lines after splitting
  int64_t bytes = 0;               // bytes of those lines
  double seconds = 0.0;
};

StatusOr<TokenizerTrainReport> run_tokenizer_train(const TokenizerTrainConfig& config);

struct PreprocessConfig {
  std::vector<std::string> inputs;
  ReaderOptions reader;
  SplitOptions split;
  std::string tokenizer_model;  // a SentencePiece .model
  std::string output_prefix;    // writes OUTPUT_PREFIX_train.* and (valid_fraction > 0) OUTPUT_PREFIX_valid.*
};

struct SplitCounts {
  int64_t documents = 0;
  int64_t tokens = 0;  // end-of-document tokens included
};

struct PreprocessReport {
  SplitCounts train, valid;
  int64_t empty_skipped = 0;
  DType token_dtype = DType::kU16;
  int32_t vocab_size = 0;
  double seconds = 0.0;
};

StatusOr<PreprocessReport> run_preprocess(const PreprocessConfig& config);

struct InspectConfig {
  std::string data_path;        // dataset prefix (PREFIX.bin / .idx / .json)
  std::string tokenizer_model;  // empty: the one PREFIX.json names, if it exists
  int64_t num_docs = 3;         // documents shown
  int64_t tokens_shown = 48;    // leading tokens shown (ids and decoded text) per document
};

StatusOr<std::string> inspect_dataset(const InspectConfig& config);

}  // namespace om
