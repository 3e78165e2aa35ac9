// The held-out split and the ortho_data pipeline: is_heldout is deterministic and its two sides are
// disjoint and cover every document; tokenizer-train keeps held-out documents out; preprocess
// writes train/valid datasets whose documents decode back to the inputs, each ending with </s>,
// plus the .json metadata; a split that differs from the tokenizer's is refused.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "data/dataset_info.h"
#include "data/heldout.h"
#include "data/indexed_dataset.h"
#include "data/preprocess.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

TEST(HeldOut, DeterministicDisjointAndCovering) {
  const int64_t n = 20000;
  const double fraction = 0.05;
  std::set<int64_t> valid, train;
  for (int64_t d = 0; d < n; ++d) {
    const bool h = is_heldout(d, fraction, 1234);
    ASSERT_EQ(h, is_heldout(d, fraction, 1234)) << d;  // a pure function
    (h ? valid : train).insert(d);
  }
  // Disjoint and covering by construction of the two sets; the counts say so too.
  EXPECT_EQ(valid.size() + train.size(), static_cast<size_t>(n));
  for (int64_t d : valid) ASSERT_EQ(train.count(d), 0u);
  // Binomial(n, p): mean 1000, standard deviation sqrt(n p (1 - p)) = 30.8; allow 5 sigma.
  EXPECT_NEAR(static_cast<double>(valid.size()), n * fraction, 5 * 30.8);
  // Another seed picks other documents (overlap of two independent 5% samples: ~50).
  int64_t overlap = 0;
  for (int64_t d : valid) overlap += is_heldout(d, fraction, 99);
  EXPECT_LT(overlap, 150);
  // Nesting: a document held out at 5% is held out at 10% (the same uniform draw).
  for (int64_t d : valid) ASSERT_TRUE(is_heldout(d, 0.10, 1234));
  EXPECT_FALSE(is_heldout(7, 0.0, 1234));
  EXPECT_TRUE(is_heldout(7, 1.0, 1234));
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("om_pipeline_" + std::to_string(::getpid()) + "_" + info->name());
    fs::create_directories(dir_);
    // 60 documents in two files; each has a unique marker word so a tokenizer trained with a
    // held-out document would likely have learned that document's marker.
    for (int i = 0; i < 60; ++i) {
      std::string text = "Document " + std::to_string(i) + ": the whale swam in the sea, and the ship followed.";
      if (i % 3 == 0) text += "\n\nA second paragraph, with ümlauts and — dashes.";
      texts_.push_back(text);
    }
    for (int f = 0; f < 2; ++f) {
      const std::string path = (dir_ / ("in" + std::to_string(f) + ".jsonl")).string();
      std::ofstream out(path);
      for (int i = 30 * f; i < 30 * (f + 1); ++i) {
        std::string escaped;
        for (char c : texts_[i]) escaped += (c == '\n') ? std::string("\\n") : std::string(1, c);
        out << "{\"text\": \"" << escaped << "\"}\n";
      }
      inputs_.push_back(path);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  TokenizerTrainConfig TrainConfig() const {
    TokenizerTrainConfig c;
    c.inputs = inputs_;
    c.split = split_;
    c.tokenizer.model_prefix = (dir_ / "tok").string();
    c.tokenizer.vocab_size = 320;
    return c;
  }
  PreprocessConfig Config() const {
    PreprocessConfig c;
    c.inputs = inputs_;
    c.split = split_;
    c.tokenizer_model = (dir_ / "tok.model").string();
    c.output_prefix = (dir_ / "out").string();
    return c;
  }

  fs::path dir_;
  std::vector<std::string> texts_, inputs_;
  SplitOptions split_{0.2, 7};
};

TEST_F(PipelineTest, TrainPreprocessAndReadBack) {
  auto trained = run_tokenizer_train(TrainConfig());
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  int64_t expected_valid = 0;
  for (int i = 0; i < 60; ++i) expected_valid += is_heldout(i, split_.valid_fraction, split_.seed);
  ASSERT_GT(expected_valid, 0);
  EXPECT_EQ(trained->documents_heldout, expected_valid);
  EXPECT_EQ(trained->documents_used, 60 - expected_valid);
  EXPECT_TRUE(fs::exists(dir_ / "tok.json"));

  auto report = run_preprocess(Config());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->valid.documents, expected_valid);
  EXPECT_EQ(report->train.documents, 60 - expected_valid);
  EXPECT_EQ(report->token_dtype, DType::kU16);

  auto tok = Tokenizer::Load((dir_ / "tok.model").string());
  ASSERT_TRUE(tok.ok());
  // Walk the inputs in order: document i is the next one of its split, ends with </s>, and
  // decodes (without </s>) to the input text exactly.
  const std::string train_prefix = (dir_ / "out_train").string(), valid_prefix = (dir_ / "out_valid").string();
  auto train = IndexedDataset::Open(train_prefix);
  auto valid = IndexedDataset::Open(valid_prefix);
  ASSERT_TRUE(train.ok() && valid.ok());
  int64_t next_train = 0, next_valid = 0;
  for (int i = 0; i < 60; ++i) {
    const bool h = is_heldout(i, split_.valid_fraction, split_.seed);
    const IndexedDataset& ds = h ? *valid : *train;
    const int64_t d = h ? next_valid++ : next_train++;
    std::vector<int32_t> ids(static_cast<size_t>(ds.document_length(d)));
    ds.ReadTokens(d, 0, ids);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.back(), tok->eod_id()) << "document " << i;
    ids.pop_back();
    auto text = tok->Decode(ids);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text, texts_[i]) << "document " << i;
  }
  EXPECT_EQ(next_train, train->num_documents());
  EXPECT_EQ(next_valid, valid->num_documents());

  // The metadata describes the files, and verifies against them.
  for (const auto& [prefix, ds, split] : {std::tuple{train_prefix, &*train, "train"},
                                          std::tuple{valid_prefix, &*valid, "valid"}}) {
    auto info = read_dataset_info(prefix);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->split, split);
    EXPECT_EQ(info->vocab_size, 320);
    EXPECT_EQ(info->eod_id, 2);
    EXPECT_EQ(info->bos_id, 1);
    EXPECT_EQ(info->num_documents, ds->num_documents());
    EXPECT_EQ(info->num_tokens, ds->num_tokens());
    EXPECT_EQ(info->token_dtype, DType::kU16);
    EXPECT_EQ(info->inputs, inputs_);
    EXPECT_EQ(info->tokenizer_fnv1a64, file_fnv1a64((dir_ / "tok.model").string()).value());
    EXPECT_TRUE(verify_dataset_info(prefix, *info, *ds).ok());
  }
  // Metadata from one split does not verify against the other split's files.
  auto train_info = read_dataset_info(train_prefix);
  EXPECT_EQ(verify_dataset_info(valid_prefix, *train_info, *valid).code(), StatusCode::kFailedPrecondition);

  InspectConfig inspect;
  inspect.data_path = valid_prefix;
  auto summary = inspect_dataset(inspect);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_NE(summary->find("documents ending with the end-of-document token 2: " + std::to_string(expected_valid) +
                          " of " + std::to_string(expected_valid)),
            std::string::npos)
      << *summary;
}

TEST_F(PipelineTest, HeldOutDocumentsStayOutOfTokenizerTraining) {
  // Only the held-out documents contain the word "zyxquorblat", many times. Trained on everything,
  // BPE merges it into a piece or two; trained with the split, it never sees the word (nor the
  // letters z, y, x, q), so it falls back to one piece per byte.
  const std::string word = "zyxquorblat";
  const std::string path = (dir_ / "marked.jsonl").string();
  {
    std::ofstream out(path);
    for (int i = 0; i < 60; ++i) {
      std::string text = texts_[i].substr(0, texts_[i].find('\n'));
      if (is_heldout(i, split_.valid_fraction, split_.seed))
        for (int r = 0; r < 40; ++r) text += " " + word;
      out << "{\"text\": \"" << text << "\"}\n";
    }
  }
  TokenizerTrainConfig c = TrainConfig();
  c.inputs = {path};
  auto with_split = run_tokenizer_train(c);
  ASSERT_TRUE(with_split.ok()) << with_split.status().ToString();
  auto split_tok = Tokenizer::Load(c.tokenizer.model_prefix + ".model");
  ASSERT_TRUE(split_tok.ok());
  const size_t pieces_with_split = split_tok->Encode(" " + word)->size();

  c.split.valid_fraction = 0.0;
  c.tokenizer.model_prefix = (dir_ / "tok_all").string();
  auto everything = run_tokenizer_train(c);
  ASSERT_TRUE(everything.ok()) << everything.status().ToString();
  EXPECT_EQ(everything->documents_heldout, 0);
  auto all_tok = Tokenizer::Load(c.tokenizer.model_prefix + ".model");
  ASSERT_TRUE(all_tok.ok());
  const size_t pieces_all = all_tok->Encode(" " + word)->size();

  EXPECT_LE(pieces_all, 2u);
  EXPECT_GE(pieces_with_split, word.size());
}

TEST_F(PipelineTest, RefusesASplitThatDiffersFromTheTokenizers) {
  ASSERT_TRUE(run_tokenizer_train(TrainConfig()).ok());
  PreprocessConfig c = Config();
  c.split.seed = 8;
  auto r = run_preprocess(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("--seed 7"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(fs::exists(dir_ / "out_train.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "out_train.bin.tmp"));
  // The same files spelled differently are still the same inputs.
  for (std::string& in : c.inputs) in = (fs::path(in).parent_path() / "." / fs::path(in).filename()).string();
  EXPECT_EQ(run_preprocess(c).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PipelineTest, EmptyValidationSplitIsAnError) {
  split_ = {1e-9, 7};
  ASSERT_TRUE(run_tokenizer_train(TrainConfig()).ok());
  auto r = run_preprocess(Config());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--valid-fraction"), std::string::npos) << r.status().ToString();
  // Nothing was published.
  for (const char* f : {"out_train.bin", "out_train.idx", "out_train.json", "out_valid.bin", "out_valid.bin.tmp"})
    EXPECT_FALSE(fs::exists(dir_ / f)) << f;
}

TEST_F(PipelineTest, BadInputsAreReported) {
  PreprocessConfig c = Config();
  auto no_tokenizer = run_preprocess(c);
  EXPECT_EQ(no_tokenizer.status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(run_tokenizer_train(TrainConfig()).ok());
  c.inputs.push_back((dir_ / "missing.jsonl").string());
  auto missing = run_preprocess(c);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.jsonl"), std::string::npos);
  c = Config();
  c.split.valid_fraction = 1.0;
  EXPECT_EQ(run_preprocess(c).status().code(), StatusCode::kInvalidArgument);
  auto info = read_dataset_info((dir_ / "nothing").string());
  EXPECT_EQ(info.status().code(), StatusCode::kNotFound);
  std::ofstream(dir_ / "broken.json") << "{\"format_version\": 1, \"split\": ";
  auto broken = read_dataset_info((dir_ / "broken").string());
  EXPECT_EQ(broken.status().code(), StatusCode::kCorruption);
  EXPECT_NE(broken.status().message().find("broken.json"), std::string::npos);
}

}  // namespace
}  // namespace om
