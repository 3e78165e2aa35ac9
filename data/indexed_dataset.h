// Megatron-compatible indexed token dataset: PREFIX.bin (token ids, back to back) and PREFIX.idx
// (the index), byte-compatible with Megatron-LM's MMapIndexedDataset (data/FORMAT.md). A document is
// a run of tokens ending with the end-of-document token. Readers memory-map both files.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace om {

class IndexedDatasetBuilder {
 public:
  // token_dtype: kU16 when the vocabulary fits in 65535 ids, else kI32.
  static StatusOr<IndexedDatasetBuilder> Create(const std::string& prefix, DType token_dtype);
  Status AddDocument(std::span<const int32_t> tokens);  // InvalidArgument if an id does not fit
  // Writes PREFIX.idx and publishes both files (written to temporaries, renamed at the end).
  Status Finish();
  IndexedDatasetBuilder(IndexedDatasetBuilder&&) noexcept;
  IndexedDatasetBuilder& operator=(IndexedDatasetBuilder&&) noexcept;
  ~IndexedDatasetBuilder();

 private:
  struct Impl;
  explicit IndexedDatasetBuilder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class IndexedDataset {
 public:
  // NotFound / Corruption messages name the file and say how to regenerate it.
  static StatusOr<IndexedDataset> Open(const std::string& prefix);
  IndexedDataset(IndexedDataset&&) noexcept;
  IndexedDataset& operator=(IndexedDataset&&) noexcept;
  ~IndexedDataset();

  int64_t num_documents() const;
  int64_t num_tokens() const;
  int64_t document_length(int64_t doc) const;
  DType token_dtype() const;
  // Copies tokens [offset, offset + out.size()) of document `doc` into out (as int32).
  void ReadTokens(int64_t doc, int64_t offset, std::span<int32_t> out) const;

 private:
  struct Impl;
  explicit IndexedDataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace om
