// Tokenizer: training a small BPE model (vocab 400) on the first chapters of the bundled corpus,
// exact encode/decode round trips (byte fallback covers characters never seen in training),
// deterministic training, and the line splitting that keeps SentencePiece from dropping long lines.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/document_reader.h"
#include "data/tokenizer.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

const fs::path kCorpus = fs::path(__FILE__).parent_path().parent_path().parent_path() / "data/corpus/moby_dick.jsonl";
constexpr int kDocsForTraining = 8;  // ~110 KB: trains in about 0.1 s
constexpr int32_t kVocab = 400;

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The training lines of the corpus's first chapters.
std::vector<std::string> training_lines() {
  auto stream = DocumentStream::Open({kCorpus.string()}, ReaderOptions{});
  EXPECT_TRUE(stream.ok()) << stream.status().ToString();
  std::vector<std::string> lines;
  Document doc;
  for (int i = 0; i < kDocsForTraining; ++i) {
    auto more = stream->Next(&doc);
    EXPECT_TRUE(more.ok() && *more);
    for (std::string& l : split_for_tokenizer_training(doc.text)) lines.push_back(std::move(l));
  }
  return lines;
}

Status train(const std::vector<std::string>& lines, const std::string& prefix, int32_t vocab) {
  size_t next = 0;
  TrainingLineSource source = [&](std::string* line) -> StatusOr<bool> {
    if (next == lines.size()) return false;
    *line = lines[next++];
    return true;
  };
  TokenizerTrainOptions options;
  options.model_prefix = prefix;
  options.vocab_size = vocab;
  return train_tokenizer(source, options);
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("om_tokenizer_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    lines_ = new std::vector<std::string>(training_lines());
    const Status s = train(*lines_, (dir_ / "tok").string(), kVocab);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void TearDownTestSuite() {
    delete lines_;
    fs::remove_all(dir_);
  }
  static fs::path dir_;
  static std::vector<std::string>* lines_;
};
fs::path TokenizerTest::dir_;
std::vector<std::string>* TokenizerTest::lines_ = nullptr;

TEST_F(TokenizerTest, LoadsWithLlamaSpecialIds) {
  auto tok = Tokenizer::Load((dir_ / "tok.model").string());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ(tok->vocab_size(), kVocab);
  EXPECT_EQ(tok->eod_id(), 2);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->Piece(tok->eod_id()), "</s>");
  EXPECT_TRUE(fs::exists(dir_ / "tok.vocab"));
  // The .vocab lists every piece, one per line.
  const std::string vocab = read_bytes(dir_ / "tok.vocab");
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), '\n'), kVocab);
}

TEST_F(TokenizerTest, EncodeDecodeRoundTripsExactly) {
  auto tok = Tokenizer::Load((dir_ / "tok.model").string());
  ASSERT_TRUE(tok.ok());
  const std::vector<std::string> texts = {
      "Call me Ishmael. Some years ago—never mind how long precisely.",
      "naïve café — 日本語 ✓ 🐋 Ωμέγα",  // characters absent from training: byte fallback
      "two  spaces,\ttab,\n\nblank line, trailing space ",
      " leading space and digits 0123456789",
      "",
  };
  for (const std::string& text : texts) {
    auto ids = tok->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    for (int32_t id : *ids) ASSERT_TRUE(id >= 0 && id < kVocab);
    auto back = tok->Decode(*ids);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, text);
  }
  // Byte fallback: the whale (4 UTF-8 bytes, never seen) becomes 4 byte pieces <0xF0> <0x9F> ...
  auto whale = tok->Encode("🐋");
  ASSERT_TRUE(whale.ok());
  int bytes = 0;
  for (int32_t id : *whale) bytes += tok->Piece(id).rfind("<0x", 0) == 0;
  EXPECT_EQ(bytes, 4);
  // Merges were learned: common English compresses below one token per 2 bytes.
  auto english = tok->Encode("and the whale was in the sea, and the ship");
  ASSERT_TRUE(english.ok());
  EXPECT_LT(english->size() * 2, std::string("and the whale was in the sea, and the ship").size());
}

TEST_F(TokenizerTest, DecodeRejectsIdsOutsideTheVocabulary) {
  auto tok = Tokenizer::Load((dir_ / "tok.model").string());
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> bad = {5, kVocab};
  EXPECT_EQ(tok->Decode(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TokenizerTest, TrainingIsDeterministic) {
  const Status s = train(*lines_, (dir_ / "again").string(), kVocab);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(read_bytes(dir_ / "again.model"), read_bytes(dir_ / "tok.model"));
  EXPECT_FALSE(fs::exists(dir_ / "again.model.tmp"));
}

TEST_F(TokenizerTest, BadVocabularySizesAreReported) {
  const Status small = train(*lines_, (dir_ / "small").string(), 100);
  EXPECT_EQ(small.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(small.message().find("--vocab-size 100"), std::string::npos) << small.ToString();
  // More pieces than the text supports: SentencePiece's own limit is passed on.
  const std::vector<std::string> tiny = {"a b c", "a b"};
  const Status large = train(tiny, (dir_ / "large").string(), 5000);
  EXPECT_EQ(large.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(large.message().find("--vocab-size 5000"), std::string::npos) << large.ToString();
  EXPECT_FALSE(fs::exists(dir_ / "large.model"));
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  auto missing = Tokenizer::Load("/no/such/tok.model");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/no/such/tok.model"), std::string::npos);
  const fs::path junk = fs::temp_directory_path() / ("om_junk_" + std::to_string(::getpid()) + ".model");
  std::ofstream(junk) << "not a model";
  auto bad = Tokenizer::Load(junk.string());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(junk.string()), std::string::npos);
  fs::remove(junk);
}

TEST(SplitForTokenizerTraining, LongLinesAreCutAtSentencesThenWrapped) {
  // A 9000-byte paragraph of sentences, one 5000-byte "sentence" without any space, and a
  // multi-byte character straddling the cut.
  std::string sentences;
  while (sentences.size() < 9000) sentences += "The whale breached. Did it? It did! ";
  const std::string no_space = std::string(3999, 'x') + "é" + std::string(1000, 'y');
  const std::string text = "short line\n\n   \n" + sentences + "\n" + no_space + "\r\nlast";
  const size_t max_bytes = 4000;
  const std::vector<std::string> pieces = split_for_tokenizer_training(text, max_bytes);
  std::string joined_sentences, joined_no_space;
  ASSERT_GE(pieces.size(), 4u);
  EXPECT_EQ(pieces.front(), "short line");
  EXPECT_EQ(pieces.back(), "last");
  for (const std::string& p : pieces) {
    EXPECT_LE(p.size(), max_bytes);
    EXPECT_FALSE(p.empty());
    EXPECT_EQ(p.find('\n'), std::string::npos);
    if (p[0] == 'T' || p[0] == 'D' || p[0] == 'I') joined_sentences += p;
    if (p[0] == 'x' || p[0] == '\xC3' || p[0] == 'y') joined_no_space += p;
  }
  // Nothing is lost: the pieces concatenate back to the lines (sentence cuts keep their space).
  EXPECT_EQ(joined_sentences, sentences);
  EXPECT_EQ(joined_no_space, no_space);
  // The 2-byte "é" was not split: the cut backed up to a character boundary.
  for (const std::string& p : pieces) EXPECT_NE(static_cast<unsigned char>(p[0]) & 0xC0, 0x80) << p.substr(0, 8);
}

}  // namespace
}  // namespace om
