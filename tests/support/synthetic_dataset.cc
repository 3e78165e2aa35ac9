#include "tests/support/synthetic_dataset.h"

#include <vector>

#include "data/dataset_info.h"
#include "data/indexed_dataset.h"

namespace om {

std::string write_synthetic_dataset(const std::string& prefix, int64_t docs, int64_t doc_len) {
  StatusOr<IndexedDatasetBuilder> b = IndexedDatasetBuilder::Create(prefix, DType::kU16);
  OM_CHECK(b.ok(), "%s", b.status().ToString().c_str());
  for (int64_t d = 0; d < docs; ++d) {
    std::vector<int32_t> tokens;
    for (int64_t i = 0; i < doc_len; ++i) tokens.push_back(static_cast<int32_t>(3 + (d + i) % 8));
    tokens.push_back(2);  // end of document
    OM_CHECK(b->AddDocument(tokens).ok(), "AddDocument to '%s'", prefix.c_str());
  }
  OM_CHECK(b->Finish().ok(), "Finish '%s'", prefix.c_str());
  DatasetInfo info;
  info.split = "train";
  info.tokenizer_model = "synthetic";
  info.vocab_size = kSyntheticVocab;
  info.eod_id = 2;
  info.num_documents = docs;
  info.num_tokens = docs * (doc_len + 1);
  info.token_dtype = DType::kU16;
  OM_CHECK(write_dataset_info(prefix, info).ok(), "write_dataset_info '%s'", prefix.c_str());
  return prefix;
}

}  // namespace om
