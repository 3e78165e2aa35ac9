// main() for MPI test binaries (tests/parallel, run by ctest under mpirun). Every rank runs the same
// tests in the same order, so their collectives match. Rank 0 prints gtest's usual output; the other
// ranks print only their failures, tagged "[rank r]". The exit code is non-zero on every rank when any
// rank failed, so mpirun and ctest report the failure whichever rank saw it.
// Tests in these binaries use EXPECT for values (a failed ASSERT on one rank would return early and
// leave the others waiting in a collective; ctest's TIMEOUT is the last resort).
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/check.h"

namespace {

// Failures of a non-zero rank: each failed assertion with file, line and message, then the test name.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::printf("[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                result.line_number(), result.message());
    std::fflush(stdout);
  }
  void OnTestEnd(const testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::printf("[rank %d] [  FAILED  ] %s.%s\n", rank_, info.test_suite_name(), info.name());
      std::fflush(stdout);
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  om::set_process_rank(rank);

  testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  // Which ranks failed, reported once by rank 0.
  std::vector<int> failed_by_rank(static_cast<size_t>(size), 0);
  MPI_Gather(&failed, 1, MPI_INT, failed_by_rank.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) {
    if (any_failed) {
      std::string ranks;
      for (int r = 0; r < size; ++r)
        if (failed_by_rank[static_cast<size_t>(r)]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
      std::printf("[mpi] FAILED on rank(s) %s of %d\n", ranks.c_str(), size);
    } else {
      std::printf("[mpi] all %d ranks passed\n", size);
    }
    std::fflush(stdout);
  }
  MPI_Finalize();
  return any_failed ? 1 : 0;
}
