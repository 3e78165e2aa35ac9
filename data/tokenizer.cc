#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/file_util.h"

namespace om {
namespace {

bool is_blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
  return true;
}

// Hard wrap: pieces of at most max_bytes, cut after the last space that fits, else at the last
// UTF-8 character boundary that fits (a continuation byte is 10xxxxxx).
void hard_wrap(std::string_view s, size_t max_bytes, std::vector<std::string>* out) {
  while (s.size() > max_bytes) {
    size_t cut = s.rfind(' ', max_bytes - 1);  // the space stays left: piece <= max_bytes
    if (cut == std::string_view::npos || cut == 0) {
      cut = max_bytes;
      while (cut > 1 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    } else {
      ++cut;
    }
    if (!is_blank(s.substr(0, cut))) out->emplace_back(s.substr(0, cut));
    s.remove_prefix(cut);
  }
  if (!is_blank(s)) out->emplace_back(s);
}

// Adapts a TrainingLineSource to SentencePiece's pull interface. An error from the source ends
// the iteration; train_tokenizer reports it after Train returns.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const TrainingLineSource& source) : source_(source) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    if (done_) return;
    StatusOr<bool> more = source_(&line_);
    if (!more.ok()) {
      error_ = more.status();
      done_ = true;
    } else if (!*more) {
      done_ = true;
    } else {
      ++count_;
    }
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    if (error_.ok()) return sentencepiece::util::Status();
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, error_.message());
  }
  const Status& error() const { return error_; }
  int64_t count() const { return count_; }

 private:
  const TrainingLineSource& source_;
  std::string line_;
  Status error_;
  bool done_ = false;
  int64_t count_ = 0;
};

}  // namespace

std::vector<std::string> split_for_tokenizer_training(std::string_view text, size_t max_bytes) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (is_blank(line)) continue;
    if (line.size() <= max_bytes) {
      out.emplace_back(line);
      continue;
    }
    // Cut after every sentence end; a sentence that is still too long is hard-wrapped.
    size_t start = 0;
    for (size_t i = 0; i + 1 < line.size(); ++i) {
      const char c = line[i];
      if ((c == '.' || c == '!' || c == '?') && line[i + 1] == ' ') {
        hard_wrap(line.substr(start, i + 2 - start), max_bytes, &out);
        start = i + 2;
      }
    }
    hard_wrap(line.substr(start), max_bytes, &out);
  }
  return out;
}

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string path;
  int32_t vocab_size = 0, eod_id = -1, bos_id = -1;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

StatusOr<Tokenizer> Tokenizer::Load(const std::string& model_path) {
  struct stat st;
  if (::stat(model_path.c_str(), &st) != 0)
    return Status::NotFound("tokenizer model '" + model_path + "' does not exist; train one with ortho_data "
                            "tokenizer-train or fix --tokenizer-model");
  auto m = std::make_unique<Impl>();
  const auto s = m->sp.Load(model_path);
  if (!s.ok())
    return Status::InvalidArgument("tokenizer model '" + model_path + "' is not a SentencePiece model (" +
                                   s.ToString() + "); pass the .model file written by ortho_data tokenizer-train");
  m->path = model_path;
  m->vocab_size = m->sp.GetPieceSize();
  m->eod_id = m->sp.eos_id();
  m->bos_id = m->sp.bos_id();
  if (m->eod_id < 0)
    return Status::InvalidArgument("tokenizer model '" + model_path + "' has no </s> piece; ortho_data appends "
                                   "</s> as the end-of-document token (train with ortho_data tokenizer-train)");
  return Tokenizer(std::move(m));
}

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  const auto s = impl_->sp.Encode(text, &ids);
  if (!s.ok()) return Status::Internal("SentencePiece could not encode a text of " + std::to_string(text.size()) +
                                       " bytes: " + s.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

StatusOr<std::string> Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v) {
    if (id < 0 || id >= impl_->vocab_size)
      return Status::InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                     std::to_string(impl_->vocab_size) + ") of tokenizer '" + impl_->path +
                                     "'; the dataset and tokenizer do not match");
  }
  std::string text;
  const auto s = impl_->sp.Decode(v, &text);
  if (!s.ok()) return Status::Internal("SentencePiece could not decode: " + s.ToString());
  return text;
}

std::string Tokenizer::Piece(int32_t id) const {
  OM_CHECK(id >= 0 && id < impl_->vocab_size, "token id %d outside [0, %d)", id, impl_->vocab_size);
  return impl_->sp.IdToPiece(id);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int32_t Tokenizer::eod_id() const { return impl_->eod_id; }
int32_t Tokenizer::bos_id() const { return impl_->bos_id; }
const std::string& Tokenizer::model_path() const { return impl_->path; }

Status train_tokenizer(const TrainingLineSource& lines, const TokenizerTrainOptions& options) {
  if (options.model_prefix.empty()) return Status::InvalidArgument("--model-prefix is empty");
  if (options.vocab_size < kMinVocabSize)
    return Status::InvalidArgument("--vocab-size " + std::to_string(options.vocab_size) + " is too small: byte " +
                                   "fallback alone needs 259 pieces (256 bytes + <unk> <s> </s>); use at least " +
                                   std::to_string(kMinVocabSize));
  // Llama's recipe: BPE, byte fallback, identity normalisation (no NFKC, whitespace kept) and digits
  // split, so decoding gives back the exact text. input_sentence_size 0 loads every line, so no
  // sampling happens and the model is a function of the lines alone (BPE draws no random numbers).
  const std::unordered_map<std::string, std::string> spec = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"character_coverage", "0.9995"},
      {"input_sentence_size", "0"},
      {"max_sentence_length", "4192"},
      {"num_threads", std::to_string(options.num_threads)},
      {"minloglevel", "1"},  // SentencePiece's progress log is long; warnings and errors remain
  };
  LineIterator it(lines);
  std::string proto;
  const auto s = sentencepiece::SentencePieceTrainer::Train(spec, &it, &proto);
  OM_RETURN_IF_ERROR(it.error());
  if (it.count() == 0)
    return Status::InvalidArgument("no text to train the tokenizer on: every input document is empty or held out "
                                   "(check --input and --valid-fraction)");
  if (!s.ok())
    return Status::InvalidArgument("SentencePiece training with --vocab-size " + std::to_string(options.vocab_size) +
                                   " failed: " + s.ToString() + " (a smaller --vocab-size or more text fixes a "
                                   "'vocabulary size too high' error)");

  // The .vocab listing (piece TAB score) comes from the trained model itself.
  sentencepiece::SentencePieceProcessor sp;
  const auto ls = sp.LoadFromSerializedProto(proto);
  if (!ls.ok()) return Status::Internal("cannot reload the trained tokenizer: " + ls.ToString());
  std::string vocab;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    vocab += sp.IdToPiece(id);
    vocab += '\t';
    char score[32];
    std::snprintf(score, sizeof(score), "%g\n", static_cast<double>(sp.GetScore(id)));
    vocab += score;
  }
  OM_RETURN_IF_ERROR(write_file_atomically(options.model_prefix + ".model", proto));
  return write_file_atomically(options.model_prefix + ".vocab", vocab);
}

}  // namespace om
