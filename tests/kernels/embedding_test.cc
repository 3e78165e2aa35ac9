// Vocab-parallel embedding: gradient checks (kernels/check/embedding_check.cc) plus the op's own facts:
// sharding is exact, ids outside the shard (negative ones included) give zero rows and no gradient,
// duplicate ids accumulate, and the weight gradient is bit-identical for any thread count.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/check/checks.h"
#include "kernels/embedding.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

HostTensor make_ids(const std::vector<int32_t>& values) {
  HostTensor ids("ids", DType::kI32, {static_cast<int64_t>(values.size())});
  std::copy(values.begin(), values.end(), ids.data<int32_t>());
  return ids;
}

// Rows [row0, row0 + rows) of a (V, C) table, as this shard's weight.
HostTensor slice_rows(const HostTensor& w, int64_t row0, int64_t rows, const char* name) {
  const int64_t C = w.shape()[1];
  HostTensor s(name, w.dtype(), {rows, C});
  for (int64_t i = 0; i < rows * C; ++i) s.set(i, w.get(row0 * C + i));
  return s;
}

TEST(Embedding, GradientsAndF32AgreeWithReferences) { expect_all_ok(check_embedding()); }

TEST(Embedding, TwoShardsSumToTheUnshardedEmbeddingExactly) {
  // tp = 2 over V = 10: rank 0 owns ids [0, 5), rank 1 owns [5, 10). The all-reduce of the two
  // outputs adds one row to a zero row, and each dweight row sums the same dout rows in the same order,
  // so both directions are exact (rule 1), not just close.
  const int64_t V = 10, Vl = 5, C = 6;
  const HostTensor ids = make_ids({0, 9, 4, 5, 4, 7, 2, 9, 9, 1, 5, 3});
  const int64_t N = ids.numel();
  HostTensor w("embed.weight", DType::kF32, {V, C}), dout("dout", DType::kF32, {N, C});
  w.FillNormal(Rng(11, "w"), 0, 1.0);
  dout.FillNormal(Rng(11, "dout"), 0, 1.0);
  const HostTensor w0 = slice_rows(w, 0, Vl, "w0"), w1 = slice_rows(w, Vl, Vl, "w1");

  HostTensor full("full", DType::kF32, {N, C}), y0("y0", DType::kF32, {N, C}), y1("y1", DType::kF32, {N, C});
  embedding_forward({}, {full.view(), ids.view(), w.view(), 0});
  embedding_forward({}, {y0.view(), ids.view(), w0.view(), 0});
  embedding_forward({}, {y1.view(), ids.view(), w1.view(), Vl});
  HostTensor summed("y0 + y1", DType::kF32, {N, C});
  for (int64_t i = 0; i < N * C; ++i) summed.set(i, y0.get(i) + y1.get(i));

  HostTensor dw("dw", DType::kF32, {V, C}), dw0("dw0", DType::kF32, {Vl, C}), dw1("dw1", DType::kF32, {Vl, C});
  embedding_backward({}, {dw.view(), dout.view(), ids.view(), 0});
  embedding_backward({}, {dw0.view(), dout.view(), ids.view(), 0});
  embedding_backward({}, {dw1.view(), dout.view(), ids.view(), Vl});
  HostTensor concat("[dw0; dw1]", DType::kF32, {V, C});
  for (int64_t i = 0; i < Vl * C; ++i) {
    concat.set(i, dw0.get(i));
    concat.set(Vl * C + i, dw1.get(i));
  }
  expect_all_ok({compare_tensors("embedding tp=2", "y0 + y1 vs unsharded", summed, full, exact()),
                 compare_tensors("embedding tp=2", "[dw0; dw1] vs unsharded", concat, dw, exact())});
}

TEST(Embedding, IdsOutsideTheShardGiveZeroRowsAndNoGradient) {
  // Shard [4, 7) of a V = 7 vocabulary. Negative ids and ids >= V are the data pipeline's to reject;
  // here they must neither crash nor read out of bounds: they are simply nobody's rows.
  const int64_t Vl = 3, C = 4, vocab_start = 4;
  const HostTensor ids = make_ids({-1, INT_MIN, 3, 7, INT_MAX, 5});
  const int64_t N = ids.numel();
  HostTensor w("w", DType::kF32, {Vl, C}), y("y", DType::kF32, {N, C}), dout("dout", DType::kF32, {N, C}),
      dw("dw", DType::kF32, {Vl, C});
  w.FillNormal(Rng(12, "w"), 0, 1.0);
  dout.Fill(1.0);
  y.Fill(123.0);  // garbage the forward must overwrite, zero rows included
  embedding_forward({}, {y.view(), ids.view(), w.view(), vocab_start});
  for (int64_t n = 0; n < N - 1; ++n)
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(y.get(n * C + c), 0.0) << "row " << n << " (id " << ids.get(n) << ")";
  for (int64_t c = 0; c < C; ++c) EXPECT_EQ(y.get((N - 1) * C + c), w.get(1 * C + c)) << "id 5 is local row 1";

  embedding_backward({}, {dw.view(), dout.view(), ids.view(), vocab_start});
  for (int64_t r = 0; r < Vl; ++r)
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(dw.get(r * C + c), r == 1 ? 1.0 : 0.0) << "dweight row " << r;
}

TEST(Embedding, DuplicateIdsAccumulateExactly) {
  // Small-integer gradients: every partial sum is exact in f32 (rule 1).
  const int64_t V = 3, C = 2;
  const HostTensor ids = make_ids({2, 0, 2, 2});
  HostTensor dout("dout", DType::kF32, {4, C}), dw("dw", DType::kF32, {V, C});
  const double d[4][2] = {{1, -2}, {3, 4}, {5, 6}, {-7, 8}};
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t c = 0; c < C; ++c) dout.set(n * C + c, d[n][c]);
  embedding_backward({}, {dw.view(), dout.view(), ids.view(), 0});
  const double want[3][2] = {{3, 4}, {0, 0}, {1 + 5 - 7, -2 + 6 + 8}};
  for (int64_t v = 0; v < V; ++v)
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(dw.get(v * C + c), want[v][c]) << "dweight[" << v << ", " << c << "]";
}

TEST(Embedding, WeightGradientAccumulatesOutputOverwrites) {
  const int64_t N = 9, V = 5, C = 4;
  const HostTensor ids = make_ids({1, 4, 1, 0, 3, 3, 3, 2, 4});
  HostTensor w("w", DType::kF64, {V, C}), dout("dout", DType::kF64, {N, C});
  w.FillNormal(Rng(13, "w"), 0, 1.0);
  dout.FillNormal(Rng(13, "dout"), 0, 1.0);
  HostTensor y0("y0", DType::kF64, {N, C}), y1("y1", DType::kF64, {N, C});
  y1.Fill(123.0);
  embedding_forward({}, {y0.view(), ids.view(), w.view(), 0});
  embedding_forward({}, {y1.view(), ids.view(), w.view(), 0});
  for (int64_t i = 0; i < N * C; ++i) EXPECT_EQ(y1.get(i), y0.get(i));

  HostTensor dw0("dw0", DType::kF64, {V, C}), dw1("dw1", DType::kF64, {V, C});
  dw1.Fill(0.5);  // a previous micro-batch's gradient that must be kept
  embedding_backward({}, {dw0.view(), dout.view(), ids.view(), 0});
  embedding_backward({}, {dw1.view(), dout.view(), ids.view(), 0});
  for (int64_t i = 0; i < V * C; ++i) EXPECT_DOUBLE_EQ(dw1.get(i), dw0.get(i) + 0.5);
}

TEST(Embedding, WeightGradientIsBitIdenticalForAnyThreadCount) {
  const int64_t N = 3000, V = 50, C = 96;
  HostTensor ids("ids", DType::kI32, {N}), dout("dout", DType::kF32, {N, C});
  const Rng id_rng(14, "ids");
  for (int64_t n = 0; n < N; ++n) ids.data<int32_t>()[n] = static_cast<int32_t>(id_rng.Uniform(n) * V);
  dout.FillNormal(Rng(14, "dout"), 0, 1.0);
  const int saved = omp_get_max_threads();
  HostTensor dw1("dweight (1 thread)", DType::kF32, {V, C});
  omp_set_num_threads(1);
  embedding_backward({}, {dw1.view(), dout.view(), ids.view(), 0});
  CheckList results;
  for (int threads : {2, 3, 8}) {
    HostTensor dwk("dweight", DType::kF32, {V, C});
    omp_set_num_threads(threads);
    embedding_backward({}, {dwk.view(), dout.view(), ids.view(), 0});
    results.push_back(compare_tensors("embedding", format_message("%d threads vs 1", threads), dwk, dw1, exact()));
  }
  omp_set_num_threads(saved);
  expect_all_ok(results);
}

TEST(EmbeddingDeathTest, WrongIdsTypeAndShapeNameTheTensor) {
  HostTensor ids("batch.tokens", DType::kF32, {4}), w("embed.weight", DType::kF32, {10, 8}),
      y("y", DType::kF32, {4, 8}), dout("dout", DType::kF32, {4, 6});
  EXPECT_DEATH(embedding_forward({}, {y.view(), ids.view(), w.view(), 0}), "'batch.tokens' is f32 but expected i32");
  HostTensor ids32("batch.tokens", DType::kI32, {4}), dw("embed.weight.grad", DType::kF32, {10, 8});
  EXPECT_DEATH(embedding_backward({}, {dw.view(), dout.view(), ids32.view(), 0}),
               "'dout' has shape \\(4, 6\\) but expected \\(4, 8\\)");
}

}  // namespace
}  // namespace om
