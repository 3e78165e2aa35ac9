// MpiComm on the world (borrowed MPI_COMM_WORLD) and on MPI_COMM_SELF: exact collectives, the byte
// counter, and the determinism contract of mpi_comm.h — every rank holds the same bits, equal to the
// rank-order sum ((x_0 + x_1) + x_2) + … computed locally, for random (non-integer) floats.
#include "parallel/mpi_comm.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "tests/parallel/collective_checks.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::vector<int> identity_members(int n) {
  std::vector<int> m(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) m[static_cast<size_t>(i)] = i;
  return m;
}

TEST(MpiComm, RankAndSizeMatchMpi) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(world.rank(), world_rank());
  EXPECT_EQ(world.size(), size);
  EXPECT_EQ(world.name(), "world");
}

TEST(MpiComm, ExactCollectivesOnWorld) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  test::check_collectives(world, identity_members(world.size()));
}

TEST(MpiComm, ExactCollectivesOnSelf) {
  // A group of one (tp = 1 or dp = 1): collectives are copies and send nothing.
  MpiComm self(MPI_COMM_SELF, "self", CommOwnership::kBorrowed);
  EXPECT_EQ(self.size(), 1);
  test::check_collectives(self, {world_rank()});
}

// reduce_scatter_deferred on a blocking backend: the sums are there on return (as reduce_scatter's), and
// until join_deferred any other collective on the Comm is refused naming it (the death test's child
// fails in the base class, before any MPI call).
TEST(MpiComm, DeferredReduceScatterSumsAndBlocksOtherCollectivesUntilJoined) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  const int n = world.size();
  HostTensor in("in", DType::kF32, Shape{2 * n}), out("out", DType::kF32, Shape{2});
  for (int64_t i = 0; i < 2 * n; ++i) in.set(i, static_cast<double>(world.rank() + 1) * static_cast<double>(i));
  world.reset_bytes();
  world.reduce_scatter_deferred(in.view(), out.view());
  EXPECT_TRUE(world.deferred_pending());
  EXPECT_EQ(world.bytes_sent(), ring_reduce_scatter_bytes(in.view().nbytes(), n));
  const double ranks = n * (n + 1) / 2.0;  // Σ (r + 1)
  EXPECT_EQ(out.get(0), ranks * static_cast<double>(2 * world.rank()));
  EXPECT_EQ(out.get(1), ranks * static_cast<double>(2 * world.rank() + 1));
  HostTensor x("x", DType::kF32, Shape{1});
  x.Fill(1);
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_DEATH(world.all_reduce(x.view(), ReduceOp::kSum),
               "Comm 'world' all_reduce: a deferred collective .* is still outstanding .* join_deferred");
  world.join_deferred();
  EXPECT_FALSE(world.deferred_pending());
  world.all_reduce(x.view(), ReduceOp::kSum);
  EXPECT_EQ(x.get(0), n);
}

// all_reduce_deferred (the tp backward's, parallel/tensor_parallel.h) under the same contract: the sum is
// there on return on a blocking backend, other collectives are refused until join_deferred, and the bytes
// are an all_reduce's.
TEST(MpiComm, DeferredAllReduceSumsAndBlocksOtherCollectivesUntilJoined) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  const int n = world.size();
  HostTensor x("x", DType::kF32, Shape{3});
  for (int64_t i = 0; i < 3; ++i) x.set(i, static_cast<double>(world.rank() + 1) * static_cast<double>(i + 1));
  world.reset_bytes();
  world.all_reduce_deferred(x.view(), ReduceOp::kSum);
  EXPECT_TRUE(world.deferred_pending());
  EXPECT_EQ(world.bytes_sent(), ring_all_reduce_bytes(x.view().nbytes(), n));
  const double ranks = n * (n + 1) / 2.0;  // Σ (r + 1)
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(x.get(i), ranks * static_cast<double>(i + 1));
  HostTensor in("in", DType::kF32, Shape{n}), out("out", DType::kF32, Shape{1});
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_DEATH(world.reduce_scatter(in.view(), out.view()),
               "Comm 'world' reduce_scatter: a deferred collective .* is still outstanding .* join_deferred");
  world.join_deferred();
  EXPECT_FALSE(world.deferred_pending());
}

TEST(MpiComm, OwnedDuplicateWorksAndIsFreed) {
  MPI_Comm dup = MPI_COMM_NULL;
  OM_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
  {
    MpiComm owned(dup, "world_dup", CommOwnership::kOwned);
    test::check_collectives(owned, identity_members(owned.size()));
  }
  // MPI_Comm_free nulls the handle it frees, but ours was copied; what we can check is that the
  // world still works after the owned communicator was destroyed.
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  HostTensor one("one", DType::kI32, Shape{1});
  one.Fill(1);
  world.all_reduce(one.view(), ReduceOp::kSum);
  EXPECT_EQ(one.get(0), world.size());
}

// Rank r's random input for the determinism tests: element i = N(0,1) draw (r·len + i).
HostTensor random_input(const char* name, DType dtype, int rank, int64_t len) {
  HostTensor t(name, dtype, Shape{len});
  t.FillNormal(Rng(20251128, "mpi_comm_test/random_input"), static_cast<uint64_t>(rank) * len, 1.0);
  return t;
}

// The contract: result = ((x_0 + x_1) + x_2) + … in the tensor's own precision.
template <typename T>
std::vector<T> rank_order_sum(DType dtype, int n, int64_t len) {
  std::vector<T> acc(static_cast<size_t>(len));
  for (int r = 0; r < n; ++r) {
    HostTensor x = random_input("x", dtype, r, len);
    for (int64_t i = 0; i < len; ++i)
      acc[static_cast<size_t>(i)] = r == 0 ? x.data<T>()[i] : acc[static_cast<size_t>(i)] + x.data<T>()[i];
  }
  return acc;
}

template <typename T>
void check_bitwise_all_reduce(MpiComm& world, DType dtype, int64_t len) {
  const int n = world.size(), me = world.rank();
  HostTensor buf = random_input("random_buf", dtype, me, len);
  world.all_reduce(buf.view(), ReduceOp::kSum);

  // 1. Bit-identical to the rank-order sum computed here (so also independent of MPI's algorithm).
  const std::vector<T> expected = rank_order_sum<T>(dtype, n, len);
  int64_t differ = 0;
  for (int64_t i = 0; i < len; ++i) {
    if (std::memcmp(&buf.data<T>()[i], &expected[static_cast<size_t>(i)], sizeof(T)) != 0) {
      if (differ < 3)
        ADD_FAILURE() << dtype_name(dtype) << " element " << i << ": " << buf.data<T>()[i] << " vs rank-order sum "
                      << expected[static_cast<size_t>(i)];
      ++differ;
    }
  }
  EXPECT_EQ(differ, 0) << dtype_name(dtype) << " len " << len;

  // 2. Every rank holds the same bits: gather every rank's result and compare bytes.
  HostTensor all("all_results", dtype, Shape{n * len});
  world.all_gather(buf.cview(), all.view());
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(std::memcmp(all.data<T>() + r * len, buf.data<T>(), static_cast<size_t>(len) * sizeof(T)), 0)
        << dtype_name(dtype) << ": rank " << r << "'s all_reduce result differs from rank " << me << "'s";
  }
}

TEST(MpiComm, AllReduceOfRandomFloatsIsBitIdenticalOnEveryRank) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  for (int64_t len : {int64_t{1}, int64_t{1001}, int64_t{4096}}) {
    check_bitwise_all_reduce<float>(world, DType::kF32, len);
    check_bitwise_all_reduce<double>(world, DType::kF64, len);
  }
}

TEST(MpiComm, AllReduceChunkEqualsReduceScatterBitwise) {
  // ZeRO's reduce-scatter and a plain all-reduce agree on every shard, bit for bit.
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  const int n = world.size(), me = world.rank();
  const int64_t m = 257;
  HostTensor full = random_input("full", DType::kF32, me, n * m);
  HostTensor shard("shard", DType::kF32, Shape{m});
  world.reduce_scatter(full.cview(), shard.view());
  world.all_reduce(full.view(), ReduceOp::kSum);
  EXPECT_EQ(std::memcmp(shard.data<float>(), full.data<float>() + me * m, m * sizeof(float)), 0);
}

TEST(MpiComm, MaxPropagatesNaN) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  HostTensor buf("nan_buf", DType::kF32, Shape{3});
  buf.Fill(static_cast<double>(world.rank()));
  // The NaN comes from the last rank, so it is folded in last and must still win.
  if (world.rank() == world.size() - 1) buf.set(1, std::numeric_limits<double>::quiet_NaN());
  world.all_reduce(buf.view(), ReduceOp::kMax);
  EXPECT_EQ(buf.get(0), world.size() - 1);
  EXPECT_TRUE(std::isnan(buf.get(1)));
  EXPECT_EQ(buf.get(2), world.size() - 1);
}

TEST(MpiComm, ZeroElementsIsANoOp) {
  MpiComm world(MPI_COMM_WORLD, "world", CommOwnership::kBorrowed);
  float dummy = 0;
  TensorView empty = make_view(&dummy, DType::kF32, Shape{0}, Device::Cpu(), "empty");
  world.reset_bytes();
  world.all_reduce(empty, ReduceOp::kSum);
  world.broadcast(empty, 0);
  world.all_gather(empty, empty);
  world.reduce_scatter(empty, empty);
  EXPECT_EQ(world.bytes_sent(), 0u);
}

TEST(MpiComm, RingCostModelFormulas) {
  // The documented model on a concrete case: 8 ranks, 1 MiB.
  const uint64_t mib = 1 << 20;
  EXPECT_EQ(ring_all_reduce_bytes(mib, 8), 2 * 7 * mib / 8);
  EXPECT_EQ(ring_reduce_scatter_bytes(mib, 8), 7 * mib / 8);
  EXPECT_EQ(ring_all_gather_bytes(mib, 8), 7 * mib / 8);
  EXPECT_EQ(ring_all_reduce_bytes(mib, 1), 0u);
  EXPECT_EQ(ring_broadcast_bytes(mib, 8, /*rank=*/3, /*root=*/3), mib);
  EXPECT_EQ(ring_broadcast_bytes(mib, 8, /*rank=*/2, /*root=*/3), 0u);  // the chain's last rank
  EXPECT_EQ(ring_broadcast_bytes(mib, 8, /*rank=*/7, /*root=*/0), 0u);
  EXPECT_EQ(ring_broadcast_bytes(mib, 1, 0, 0), 0u);
}

TEST(MpiComm, ErrorStringNamesTheCode) {
  const std::string s = mpi_error_string(MPI_ERR_COMM);
  EXPECT_NE(s.find(format_message("(%d)", MPI_ERR_COMM)), std::string::npos) << s;
  EXPECT_GT(s.size(), 4u) << s;
}

}  // namespace
}  // namespace om
