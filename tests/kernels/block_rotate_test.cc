// block_rotate: the f32-vs-f64, round-trip and exact-permutation checks
// (kernels/check/block_rotate_check.cc), the determinism claim of kernels/block_rotate.h (bit-identical
// for any thread count and any batching of the units) and the argument error.
#include <omp.h>

#include <string>
#include <vector>

#include "core/orthogonal.h"
#include "kernels/block_rotate.h"
#include "kernels/check/checks.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TEST(BlockRotate, F32MatchesF64RoundTripsAndPermutesExactly) { expect_all_ok(check_block_rotate()); }

// A unit's storage: x (R, K), q_r (R, R), q_c[b] (K_b, K_b), Haar Q's and normal x rounded to dt.
struct Unit {
  HostTensor x, q_r;
  std::vector<HostTensor> q_c;
  RotationUnit view() {
    RotationUnit u{x.view(), q_r.cview(), {}};
    for (const HostTensor& q : q_c) u.q_c.push_back(q.cview());
    return u;
  }
};

HostTensor haar(int64_t n, const std::string& stream, DType dt) {
  const std::vector<double> q = haar_orthogonal(Rng(21, stream), n);
  HostTensor t("q", dt, {n, n});
  for (int64_t i = 0; i < n * n; ++i) t.set(i, q[static_cast<size_t>(i)]);
  return t;
}

// Shapes from tiny to one large enough that dnnl would split it over threads if it were allowed to
// (256 x 384): a thread-count dependence would show there.
std::vector<Unit> make_batch(DType dt) {
  struct Spec {
    int64_t R;
    std::vector<int64_t> blocks;
  };
  const std::vector<Spec> specs = {{5, {3, 4}}, {256, {128, 256}}, {1, {9}}, {64, {32, 16}}, {6, {1}},
                                   {33, {17, 16}}, {128, {128}}};
  std::vector<Unit> units;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string id = "block_rotate_test/" + std::to_string(i);
    int64_t K = 0;
    for (int64_t kb : specs[i].blocks) K += kb;
    Unit u{HostTensor("x", dt, {specs[i].R, K}), haar(specs[i].R, id + "/q_r", dt), {}};
    u.x.FillNormal(Rng(21, id + "/x"), 0, 1.0);
    for (size_t b = 0; b < specs[i].blocks.size(); ++b)
      u.q_c.push_back(haar(specs[i].blocks[b], id + "/q_c/" + std::to_string(b), dt));
    units.push_back(std::move(u));
  }
  return units;
}

void rotate_batch(std::vector<Unit>& units, RotateDirection dir) {
  std::vector<RotationUnit> batch;
  for (Unit& u : units) batch.push_back(u.view());
  block_rotate({}, batch, dir);
}

void expect_same_x(const std::vector<Unit>& a, const std::vector<Unit>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  CheckList results;
  for (size_t i = 0; i < a.size(); ++i)
    results.push_back(compare_tensors("block_rotate unit " + std::to_string(i), what, a[i].x, b[i].x, exact()));
  expect_all_ok(results);
}

TEST(BlockRotate, BitIdenticalForOneAndTwoThreads) {
  for (DType dt : {DType::kF32, DType::kF64}) {
    std::vector<Unit> one = make_batch(dt), two = make_batch(dt);
    const int saved = omp_get_max_threads();
    // Forward then inverse, so the inverse also sees a rotated (not freshly drawn) input.
    for (RotateDirection dir : {RotateDirection::kForward, RotateDirection::kInverse}) {
      omp_set_num_threads(1);
      rotate_batch(one, dir);
      omp_set_num_threads(2);
      rotate_batch(two, dir);
      omp_set_num_threads(saved);
      expect_same_x(one, two, std::string(dtype_name(dt)) + " 1 vs 2 threads");
    }
  }
}

TEST(BlockRotate, BatchEqualsOneUnitAtATime) {
  for (DType dt : {DType::kF32, DType::kF64}) {
    std::vector<Unit> batched = make_batch(dt), single = make_batch(dt);
    for (RotateDirection dir : {RotateDirection::kForward, RotateDirection::kInverse}) {
      rotate_batch(batched, dir);
      for (Unit& u : single) {
        const RotationUnit one[] = {u.view()};
        block_rotate({}, one, dir);
      }
      expect_same_x(batched, single, std::string(dtype_name(dt)) + " batch vs one unit at a time");
    }
  }
}

TEST(BlockRotateDeathTest, ColumnBlocksMustCoverK) {
  HostTensor x("layers.0.mlp.up.weight", DType::kF32, {4, 6}), q_r("q_r", DType::kF32, {4, 4}),
      q0("q_c0", DType::kF32, {3, 3}), q1("q_c1", DType::kF32, {2, 2});
  const RotationUnit units[] = {{x.view(), q_r.cview(), {q0.cview(), q1.cview()}}};
  EXPECT_DEATH(block_rotate({}, units, RotateDirection::kForward),
               "block_rotate: the column blocks of unit 'layers.0.mlp.up.weight' \\(4, 6\\) cover 5 columns, not "
               "K = 6");
}

TEST(BlockRotateDeathTest, Tf32IsCudaOnly) {
  HostTensor x("x", DType::kF32, {2, 2}), q_r("q_r", DType::kF32, {2, 2}), q_c("q_c", DType::kF32, {2, 2});
  const RotationUnit units[] = {{x.view(), q_r.cview(), {q_c.cview()}}};
  EXPECT_DEATH(block_rotate({}, units, RotateDirection::kForward, RotatePrecision::kTF32),
               "block_rotate: TF32 rotations run on CUDA tensor cores only; cpu rotates in fp32 "
               "\\(--ortho-precision fp32\\)");
}

}  // namespace
}  // namespace om
