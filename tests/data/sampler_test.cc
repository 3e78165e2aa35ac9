// GptSampler: determinism in (seed, k), epochs are permutations, windows are T+1 contiguous stream
// tokens across document boundaries, and the global batch does not depend on the dp split.
// The dataset's token at stream position p is p itself (int32 tokens), so a window's content says
// exactly where in the stream it came from.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "data/sampler.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

class GptSamplerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("om_sampler_" + std::to_string(::getpid()) + "_" + info->name());
    fs::create_directories(dir_);
    // Documents of varied lengths, some empty, tokens numbered by stream position.
    const std::string prefix = (dir_ / "ds").string();
    auto b = IndexedDatasetBuilder::Create(prefix, DType::kI32);
    ASSERT_TRUE(b.ok());
    int32_t pos = 0;
    for (int d = 0; d < 60; ++d) {
      const int len = (d % 7 == 3) ? 0 : 1 + (d * 37) % 61;
      std::vector<int32_t> doc(static_cast<size_t>(len));
      std::iota(doc.begin(), doc.end(), pos);
      pos += len;
      ASSERT_TRUE(b->AddDocument(doc).ok());
    }
    ASSERT_TRUE(b->Finish().ok());
    auto ds = IndexedDataset::Open(prefix);
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    dataset_ = std::make_unique<IndexedDataset>(std::move(ds).value());
    ASSERT_EQ(dataset_->num_tokens(), pos);
  }
  void TearDown() override {
    dataset_.reset();
    fs::remove_all(dir_);
  }

  std::vector<int32_t> Window(const GptSampler& s, int64_t k, int64_t T) {
    std::vector<int32_t> w(static_cast<size_t>(T + 1));
    s.Sample(k, w);
    return w;
  }
  // The starts (in units of T) of the samples of epoch e, in visiting order.
  std::vector<int64_t> EpochOrder(const GptSampler& s, int64_t e, int64_t T) {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < s.samples_per_epoch(); ++i)
      order.push_back(Window(s, e * s.samples_per_epoch() + i, T)[0] / T);
    return order;
  }

  fs::path dir_;
  std::unique_ptr<IndexedDataset> dataset_;
};

TEST_F(GptSamplerTest, WindowsAreContiguousStreamTokensAtMultiplesOfT) {
  const int64_t T = 16;
  GptSampler s(*dataset_, T, 42);
  EXPECT_EQ(s.samples_per_epoch(), (dataset_->num_tokens() - 1) / T);
  for (int64_t k = 0; k < 3 * s.samples_per_epoch(); ++k) {
    const std::vector<int32_t> w = Window(s, k, T);
    ASSERT_EQ(w[0] % T, 0) << "sample " << k;
    for (int64_t j = 0; j <= T; ++j) ASSERT_EQ(w[j], w[0] + j) << "sample " << k << " position " << j;
    ASSERT_LE(w[T], dataset_->num_tokens() - 1);
  }
}

// --bos: position 0 is the "<s>" id, then T contiguous stream tokens starting at a multiple of T; every
// stream window of T tokens is used (N / T per epoch), and the order is the plain sampler's permutation
// of the same size. The ids here are stream positions, so the "<s>" id is one that no position reaches.
TEST_F(GptSamplerTest, BosModePutsBosFirstThenTStreamTokens) {
  const int64_t T = 16;
  const int32_t bos = 1 << 30;  // no stream position reaches it
  GptSampler s(*dataset_, T, 42, bos);
  EXPECT_EQ(s.bos_id(), bos);
  EXPECT_EQ(s.samples_per_epoch(), dataset_->num_tokens() / T);
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < s.samples_per_epoch(); ++k) {
    const std::vector<int32_t> w = Window(s, k, T);
    ASSERT_EQ(w[0], bos) << "sample " << k;
    ASSERT_EQ(w[1] % T, 0) << "sample " << k;
    for (int64_t j = 1; j <= T; ++j) ASSERT_EQ(w[j], w[1] + j - 1) << "sample " << k << " position " << j;
    ASSERT_LE(w[T], dataset_->num_tokens() - 1);
    starts.push_back(w[1] / T);
  }
  std::sort(starts.begin(), starts.end());
  for (int64_t i = 0; i < s.samples_per_epoch(); ++i) ASSERT_EQ(starts[i], i);  // each window once
  // Micro-batches: tokens start with "<s>", targets are the window (never "<s>").
  std::vector<int32_t> tokens(2 * T), targets(2 * T);
  s.MicroBatch(0, 0, 2, 0, 1, tokens, targets);
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_EQ(tokens[j * T], bos);
    for (int64_t i = 1; i < T; ++i) EXPECT_EQ(tokens[j * T + i], targets[j * T + i - 1]);
    for (int64_t i = 0; i < T; ++i) EXPECT_NE(targets[j * T + i], bos);
  }
  // bos_id < 0 is the plain sampler.
  GptSampler plain(*dataset_, T, 42, -1);
  EXPECT_EQ(plain.bos_id(), -1);
  EXPECT_EQ(plain.samples_per_epoch(), (dataset_->num_tokens() - 1) / T);
}

TEST_F(GptSamplerTest, EveryEpochIsAPermutation) {
  // Over many sequence lengths, so samples_per_epoch runs through small and awkward sizes
  // (1, 2, 3, primes, just above powers of 4) where the cycle walking matters.
  const int64_t N = dataset_->num_tokens();
  for (int64_t T : std::vector<int64_t>{1, 2, 3, 5, 7, 16, 17, 63, 64, 65, 100, 255, 500, 1000, N / 2, N - 1}) {
    GptSampler s(*dataset_, T, 7);
    const int64_t S = s.samples_per_epoch();
    ASSERT_GE(S, 1);
    for (int64_t e : {0, 1, 5}) {
      std::vector<int64_t> order = EpochOrder(s, e, T);
      std::sort(order.begin(), order.end());
      for (int64_t i = 0; i < S; ++i) ASSERT_EQ(order[i], i) << "T " << T << " epoch " << e;
    }
  }
}

TEST_F(GptSamplerTest, SameSeedSameSamplesOtherSeedOtherOrder) {
  const int64_t T = 8;
  GptSampler a(*dataset_, T, 1234), again(*dataset_, T, 1234), other(*dataset_, T, 1235);
  const int64_t S = a.samples_per_epoch();
  ASSERT_GT(S, 100);
  for (int64_t k = 0; k < 2 * S; ++k) ASSERT_EQ(Window(a, k, T), Window(again, k, T)) << k;
  // Two independent random orders of S items agree in about one position; allow a few.
  const std::vector<int64_t> oa = EpochOrder(a, 0, T), ob = EpochOrder(other, 0, T), oa1 = EpochOrder(a, 1, T);
  int64_t same_seed_vs_other = 0, epoch0_vs_epoch1 = 0, identity = 0;
  for (int64_t i = 0; i < S; ++i) {
    same_seed_vs_other += oa[i] == ob[i];
    epoch0_vs_epoch1 += oa[i] == oa1[i];
    identity += oa[i] == i;
  }
  EXPECT_LE(same_seed_vs_other, 8);
  EXPECT_LE(epoch0_vs_epoch1, 8);
  EXPECT_LE(identity, 8) << "the order is barely shuffled";
}

TEST_F(GptSamplerTest, GlobalBatchIsTheSameForAnyDpSplit) {
  // Global batch G = 8 rows, 2 accumulation steps: dp 1 (mb 4), dp 2 (mb 2), dp 4 (mb 1).
  const int64_t T = 12, G = 8, accumulation = 2;
  GptSampler s(*dataset_, T, 99);
  for (int64_t step : {0, 1, 17}) {
    const int64_t consumed = step * G;
    std::vector<std::vector<int32_t>> by_dp;
    for (int64_t dp : {1, 2, 4}) {
      const int64_t mb = G / (accumulation * dp);
      std::vector<int32_t> rows;  // the global batch in row order: micro-batch, then rank, then row
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        for (int64_t rank = 0; rank < dp; ++rank) {
          std::vector<int32_t> tokens(static_cast<size_t>(mb * T)), targets(tokens.size());
          s.MicroBatch(consumed, micro, mb, rank, dp, tokens, targets);
          for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(targets[i], tokens[i] + 1);
          rows.insert(rows.end(), tokens.begin(), tokens.end());
        }
      }
      by_dp.push_back(rows);
    }
    EXPECT_EQ(by_dp[0], by_dp[1]) << "dp 1 vs dp 2, step " << step;
    EXPECT_EQ(by_dp[0], by_dp[2]) << "dp 1 vs dp 4, step " << step;
    // Row r of the global batch is sample consumed + r of the run.
    for (int64_t r = 0; r < G; ++r) {
      const std::vector<int32_t> w = Window(s, consumed + r, T);
      EXPECT_TRUE(std::equal(w.begin(), w.end() - 1, by_dp[0].begin() + r * T)) << "row " << r;
    }
  }
}

TEST_F(GptSamplerTest, ResumeReproducesTheSequence) {
  // A sampler built later (a resumed run) with the same seed gives the same k-th sample, with no
  // history: the samples are a function of (seed, k) only.
  const int64_t T = 10;
  GptSampler first(*dataset_, T, 5);
  std::vector<std::vector<int32_t>> seen;
  for (int64_t k = 0; k < 400; ++k) seen.push_back(Window(first, k, T));
  GptSampler resumed(*dataset_, T, 5);
  for (int64_t k = 399; k >= 250; --k) ASSERT_EQ(Window(resumed, k, T), seen[k]) << k;
}

}  // namespace
}  // namespace om
