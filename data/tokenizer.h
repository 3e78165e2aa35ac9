// Tokenizer: a SentencePiece model (ours, trained by train_tokenizer below, or any user-supplied
// .model such as Llama's). Ids are int32 in [0, vocab_size). The end-of-document token appended
// after every document is the model's "</s>" (eos) piece. Our models are BPE with byte fallback
// and identity normalisation, so Decode(Encode(text)) == text for any UTF-8 text (Llama's recipe).
// Thread safety: const methods may be called from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace om {

class Tokenizer {
 public:
  // NotFound if the file does not exist; InvalidArgument if it is not a SentencePiece model or has
  // no "</s>" piece.
  static StatusOr<Tokenizer> Load(const std::string& model_path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  StatusOr<std::vector<int32_t>> Encode(std::string_view text) const;
  // InvalidArgument if an id is outside [0, vocab_size).
  StatusOr<std::string> Decode(std::span<const int32_t> ids) const;
  std::string Piece(int32_t id) const;  // REQUIRES: 0 <= id < vocab_size

  int32_t vocab_size() const;
  int32_t eod_id() const;  // the "</s>" piece
  int32_t bos_id() const;  // "<s>", or -1 when the model has none
  const std::string& model_path() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct TokenizerTrainOptions {
  std::string model_prefix;  // writes MODEL_PREFIX.model and MODEL_PREFIX.vocab (piece TAB score)
  int32_t vocab_size = 8192;
  int num_threads = 2;
};

// The smallest vocabulary train_tokenizer accepts: 3 special pieces (<unk> <s> </s>) + 256 byte
// pieces + room for at least a few characters and merges.
inline constexpr int32_t kMinVocabSize = 300;

// Lines handed to the trainer: SentencePiece drops lines longer than 4192 bytes, so longer lines
// are cut after sentence ends (". ", "! ", "? "), and pieces still too long are hard-wrapped at a
// space (or a UTF-8 character boundary). Blank lines are dropped. Every piece is <= max_bytes.
std::vector<std::string> split_for_tokenizer_training(std::string_view text, size_t max_bytes = 4000);

// A source of training lines: fills *line and returns true, or returns false when exhausted.
using TrainingLineSource = std::function<StatusOr<bool>(std::string* line)>;

// Trains a BPE model with byte fallback (SentencePiece), deterministically: every line is used (no
// sampling), so the result depends only on the lines and options. The model files are written to
// temporaries and renamed, so a failure leaves no partial model. InvalidArgument for a vocabulary
// below kMinVocabSize or above what the text supports (SentencePiece's limit is in the message).
Status train_tokenizer(const TrainingLineSource& lines, const TokenizerTrainOptions& options);

}  // namespace om
