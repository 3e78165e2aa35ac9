// ParallelDims: validation messages name every factor and the flag, rank mapping is tp fastest,
// padded_vocab is the next multiple of 128·tp. No MPI traffic (the binary runs under mpirun anyway).
#include "parallel/parallel_dims.h"

#include <string>

#include "tests/support/test_support.h"

namespace om {
namespace {

std::string error_of(int64_t tp, int64_t dp, int64_t world) {
  StatusOr<ParallelDims> d = ParallelDims::Make(tp, dp, world);
  EXPECT_FALSE(d.ok()) << "tp " << tp << " dp " << dp << " world " << world;
  if (!d.ok()) {
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  }
  return d.ok() ? std::string() : d.status().message();
}

TEST(ParallelDims, ValidLayouts) {
  for (auto [tp, dp, world] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {2, 4, 8}, {8, 1, 8}, {1, 8, 8}, {3, 5, 15}}) {
    StatusOr<ParallelDims> d = ParallelDims::Make(tp, dp, world);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->tp, tp);
    EXPECT_EQ(d->dp, dp);
    EXPECT_EQ(d->world_size, world);
  }
  // dp = -1 infers world_size / tp.
  StatusOr<ParallelDims> inferred = ParallelDims::Make(2, -1, 8);
  ASSERT_TRUE(inferred.ok()) << inferred.status().ToString();
  EXPECT_EQ(inferred->dp, 4);
}

TEST(ParallelDims, ProductErrorNamesEveryFactor) {
  EXPECT_EQ(error_of(2, 3, 8),
            "tp(2) * dp(3) = 6 != world_size(8): choose --tp and --dp whose product is the number of processes "
            "(mpirun -np / srun -n)");
  EXPECT_NE(error_of(16, 1, 8).find("tp(16) * dp(1) = 16 != world_size(8)"), std::string::npos);
  EXPECT_NE(error_of(int64_t{1} << 40, int64_t{1} << 40, 8).find("= (overflow) != world_size(8)"), std::string::npos);
}

TEST(ParallelDims, DegreeAndInferenceErrors) {
  EXPECT_EQ(error_of(0, 8, 8), "--tp 0 must be >= 1 (world_size(8))");
  EXPECT_EQ(error_of(2, 0, 8), "--dp 0 must be >= 1, or -1 to infer world_size(8) / tp(2)");
  EXPECT_EQ(error_of(2, -2, 8), "--dp -2 must be >= 1, or -1 to infer world_size(8) / tp(2)");
  EXPECT_EQ(error_of(3, -1, 8),
            "world_size(8) is not divisible by tp(3), so dp cannot be inferred: start a multiple of --tp 3 "
            "processes or change --tp");
  EXPECT_NE(error_of(1, 1, 0).find("world_size(0) must be in [1, "), std::string::npos);
}

TEST(ParallelDims, ValidateModelNamesFlagAndDegree) {
  ParallelDims d = ParallelDims::Make(4, 2, 8).value();
  EXPECT_TRUE(d.ValidateModel(/*n_heads=*/8, /*ffn=*/1376, /*vocab_size=*/32000).ok());

  Status heads = d.ValidateModel(6, 1376, 32000);
  EXPECT_EQ(heads.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(heads.message(),
            "--num-attention-heads 6 is not divisible by --tp 4: each tp rank must own whole heads; choose a --tp "
            "that divides 6");
  Status ffn = d.ValidateModel(8, 1378, 32000);
  EXPECT_EQ(ffn.message(),
            "--ffn-hidden-size 1378 is not divisible by --tp 4: each tp rank owns ffn / tp columns of gate/up and "
            "rows of down; choose a --tp that divides 1378");
  EXPECT_EQ(d.ValidateModel(8, 1376, 0).message(), "--vocab-size 0 must be positive (tp(4))");
  // An odd vocabulary is fine: it is padded, not split.
  EXPECT_TRUE(d.ValidateModel(8, 1376, 32001).ok());
}

TEST(ParallelDims, PaddedVocabIsNextMultipleOf128Tp) {
  ParallelDims tp1 = ParallelDims::Make(1, 8, 8).value();
  ParallelDims tp2 = ParallelDims::Make(2, 4, 8).value();
  ParallelDims tp8 = ParallelDims::Make(8, 1, 8).value();
  EXPECT_EQ(tp1.padded_vocab(32000), 32000);   // 250 · 128
  EXPECT_EQ(tp2.padded_vocab(32000), 32000);   // 125 · 256
  EXPECT_EQ(tp8.padded_vocab(32000), 32768);   // 32 · 1024 (31.25 rounds up)
  EXPECT_EQ(tp1.padded_vocab(1), 128);
  EXPECT_EQ(tp2.padded_vocab(256), 256);
  EXPECT_EQ(tp2.padded_vocab(257), 512);
  for (ParallelDims d : {tp1, tp2, tp8}) {
    for (int64_t v : {1, 127, 128, 129, 50257, 32000}) {
      const int64_t p = d.padded_vocab(v);
      EXPECT_EQ(p % (128 * d.tp), 0) << v;
      EXPECT_GE(p, v);
      EXPECT_LT(p - v, 128 * d.tp) << v;  // the smallest such multiple
    }
  }
}

TEST(ParallelDims, RankMappingIsTpFastest) {
  ParallelDims d = ParallelDims::Make(2, 4, 8).value();
  // rank:     0  1  2  3  4  5  6  7
  const int tp_rank[] = {0, 1, 0, 1, 0, 1, 0, 1};
  const int dp_rank[] = {0, 0, 1, 1, 2, 2, 3, 3};
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(d.tp_rank(r), tp_rank[r]) << r;
    EXPECT_EQ(d.dp_rank(r), dp_rank[r]) << r;
    EXPECT_EQ(d.rank(tp_rank[r], dp_rank[r]), r);
  }
  ParallelDims d3 = ParallelDims::Make(3, 5, 15).value();
  for (int r = 0; r < 15; ++r) {
    EXPECT_EQ(d3.rank(d3.tp_rank(r), d3.dp_rank(r)), r);
    EXPECT_EQ(d3.rank(d3.tp_rank(r), d3.dp_rank(r)), d3.dp_rank(r) * 3 + d3.tp_rank(r));
  }
}

}  // namespace
}  // namespace om
