// ProcessGroups for every tp·dp factorisation of the job (tp2·dp4 among them at 8 ranks): which ranks
// share a tp and a dp group (checked against the layout formula), exact collectives inside each group,
// a mismatched world size as a Status, and move semantics.
#include "parallel/process_groups.h"

#include <mpi.h>

#include <vector>

#include "tests/parallel/collective_checks.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

std::vector<int64_t> divisors(int n) {
  std::vector<int64_t> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// The layout's answer (DESIGN.md): tp group of rank r = {dp_rank·tp + t}, dp group = {d·tp + tp_rank}.
std::vector<int> tp_members(const ParallelDims& dims, int rank) {
  std::vector<int> m;
  for (int t = 0; t < dims.tp; ++t) m.push_back(static_cast<int>(dims.dp_rank(rank) * dims.tp + t));
  return m;
}
std::vector<int> dp_members(const ParallelDims& dims, int rank) {
  std::vector<int> m;
  for (int d = 0; d < dims.dp; ++d) m.push_back(static_cast<int>(d * dims.tp + dims.tp_rank(rank)));
  return m;
}

// The world ranks MPI actually put in `comm`, in group-rank order (gathered, not assumed).
std::vector<int> gathered_members(Comm& comm, int world_rank) {
  HostTensor mine("world_rank", DType::kI32, Shape{1});
  mine.set(0, world_rank);
  HostTensor all("group_world_ranks", DType::kI32, Shape{comm.size()});
  comm.all_gather(mine.cview(), all.view());
  std::vector<int> m;
  for (int g = 0; g < comm.size(); ++g) m.push_back(static_cast<int>(all.get(g)));
  return m;
}

TEST(ProcessGroups, GroupsMatchTheLayoutForEveryFactorisation) {
  const int n = world_size();
  for (int64_t tp : divisors(n)) {
    ParallelDims dims = ParallelDims::Make(tp, n / tp, n).value();
    StatusOr<ProcessGroups> groups = ProcessGroups::Create(dims);
    ASSERT_TRUE(groups.ok()) << groups.status().ToString();  // identical on every rank
    ProcessGroups& g = *groups;
    const int r = g.rank();
    SCOPED_TRACE("tp" + std::to_string(tp) + "·dp" + std::to_string(n / tp) + " rank " + std::to_string(r));
    EXPECT_EQ(g.tp_rank(), r % tp);
    EXPECT_EQ(g.dp_rank(), r / tp);
    EXPECT_EQ(g.world().rank(), r);
    EXPECT_EQ(g.world().size(), n);
    EXPECT_EQ(g.tp().rank(), g.tp_rank());
    EXPECT_EQ(g.tp().size(), tp);
    EXPECT_EQ(g.dp().rank(), g.dp_rank());
    EXPECT_EQ(g.dp().size(), n / tp);
    EXPECT_EQ(g.tp().name(), "tp");
    EXPECT_EQ(g.dp().name(), "dp");

    const std::vector<int> tp_expected = tp_members(dims, r), dp_expected = dp_members(dims, r);
    EXPECT_EQ(gathered_members(g.tp(), r), tp_expected);
    EXPECT_EQ(gathered_members(g.dp(), r), dp_expected);
    std::vector<int> all(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
    EXPECT_EQ(gathered_members(g.world(), r), all);

    // Exact collectives in each group, expected values from the layout's member lists.
    test::check_collectives(g.tp(), tp_expected);
    test::check_collectives(g.dp(), dp_expected);
    test::check_collectives(g.world(), all);
  }
}

TEST(ProcessGroups, Tp2Dp4Membership) {
  // The layout of the design's example, spelled out (runs only with 8 ranks).
  if (world_size() != 8) GTEST_SKIP() << "needs 8 ranks";
  ProcessGroups g = ProcessGroups::Create(ParallelDims::Make(2, 4, 8).value()).value();
  const std::vector<std::vector<int>> tp_groups = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  const std::vector<std::vector<int>> dp_groups = {{0, 2, 4, 6}, {1, 3, 5, 7}};
  EXPECT_EQ(gathered_members(g.tp(), g.rank()), tp_groups[static_cast<size_t>(g.rank() / 2)]);
  EXPECT_EQ(gathered_members(g.dp(), g.rank()), dp_groups[static_cast<size_t>(g.rank() % 2)]);
}

TEST(ProcessGroups, GroupsDoNotInterfere) {
  // The same collective issued on tp and then dp: each sums only its own members.
  const int n = world_size();
  if (n < 4 || n % 2 != 0) GTEST_SKIP() << "needs an even world of at least 4 ranks";
  ProcessGroups g = ProcessGroups::Create(ParallelDims::Make(2, n / 2, n).value()).value();
  HostTensor a("a", DType::kI64, Shape{1}), b("b", DType::kI64, Shape{1});
  a.set(0, int64_t{1} << g.rank());
  b.set(0, int64_t{1} << g.rank());
  g.tp().all_reduce(a.view(), ReduceOp::kSum);
  g.dp().all_reduce(b.view(), ReduceOp::kSum);
  int64_t tp_bits = 0, dp_bits = 0;
  for (int w : tp_members(g.dims(), g.rank())) tp_bits |= int64_t{1} << w;
  for (int w : dp_members(g.dims(), g.rank())) dp_bits |= int64_t{1} << w;
  EXPECT_EQ(static_cast<int64_t>(a.get(0)), tp_bits);
  EXPECT_EQ(static_cast<int64_t>(b.get(0)), dp_bits);
}

TEST(ProcessGroups, WrongWorldSizeIsAStatus) {
  const int n = world_size();
  StatusOr<ProcessGroups> g = ProcessGroups::Create(ParallelDims::Make(2, n, 2 * n).value());
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  const std::string expected = "tp(2) * dp(" + std::to_string(n) + ") = " + std::to_string(2 * n) +
                               " processes expected but the job has world_size(" + std::to_string(n) +
                               "): start it with mpirun -np " + std::to_string(2 * n) + " (or srun -n " +
                               std::to_string(2 * n) + "), or change --tp/--dp";
  EXPECT_EQ(g.status().message(), expected);

  // A hand-built ParallelDims that bypassed Make is validated again.
  ParallelDims bad;
  bad.tp = 3;
  bad.dp = 1;
  bad.world_size = n;
  if (n != 3) {
    StatusOr<ProcessGroups> g2 = ProcessGroups::Create(bad);
    ASSERT_FALSE(g2.ok());
    EXPECT_NE(g2.status().message().find("tp(3) * dp(1) = 3 != world_size(" + std::to_string(n) + ")"),
              std::string::npos)
        << g2.status().message();
  }
}

TEST(ProcessGroups, MoveKeepsTheCommunicators) {
  const int n = world_size();
  StatusOr<ProcessGroups> made = ProcessGroups::Create(ParallelDims::Make(1, n, n).value());
  ASSERT_TRUE(made.ok());
  ProcessGroups a = std::move(made).value();
  ProcessGroups b = std::move(a);
  ProcessGroups c = ProcessGroups::Create(ParallelDims::Make(n, 1, n).value()).value();
  c = std::move(b);  // c's own communicators are freed here
  EXPECT_EQ(c.dims().tp, 1);
  EXPECT_EQ(c.dp().size(), n);
  HostTensor x("x", DType::kI32, Shape{1});
  x.set(0, 1);
  c.dp().all_reduce(x.view(), ReduceOp::kSum);
  EXPECT_EQ(x.get(0), n);
}

}  // namespace
}  // namespace om
