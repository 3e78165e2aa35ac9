// The op profiler (core/profiler.h) on the CPU: off records nothing; on, each outermost Scope adds one
// call with its FLOPs, bytes and wall time; nested Scopes are counted once (the outer one); the table
// lists every op and the time outside ops.
#include <chrono>
#include <string>
#include <thread>

#include "core/buffer.h"
#include "core/profiler.h"
#include "parallel/local_comm.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

const profiler::OpStats* find(const std::vector<profiler::OpStats>& ops, const std::string& name) {
  for (const profiler::OpStats& s : ops)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(Profiler, OffRecordsNothingAndOnCountsOutermostScopesOnce) {
  const ExecContext cpu{};
  profiler::Reset();
  profiler::set_enabled(false);
  { const profiler::Scope s(cpu, "matmul", 10, 20); }
  EXPECT_TRUE(profiler::Collect().empty());

  profiler::set_enabled(true);
  for (int i = 0; i < 3; ++i) {
    const profiler::Scope outer(cpu, "cross_entropy_forward", 0, 100);
    const profiler::Scope inner(cpu, "cross_entropy_row_max", 0, 1000);  // a piece of the outer op
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  { const profiler::Scope s(cpu, "matmul", 2.0 * 4 * 5 * 6, 8); }
  profiler::set_enabled(false);
  { const profiler::Scope s(cpu, "matmul", 1, 1); }  // after switching off: not counted

  const std::vector<profiler::OpStats> ops = profiler::Collect();
  ASSERT_EQ(ops.size(), 2u);
  const profiler::OpStats* ce = find(ops, "cross_entropy_forward");
  const profiler::OpStats* mm = find(ops, "matmul");
  ASSERT_NE(ce, nullptr);
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(find(ops, "cross_entropy_row_max"), nullptr) << "a nested scope was counted";
  EXPECT_EQ(ce->calls, 3);
  EXPECT_EQ(ce->bytes, 300.0);
  EXPECT_GE(ce->seconds, 3 * 0.002);  // slept inside each: the wall time is at least that
  EXPECT_EQ(mm->calls, 1);
  EXPECT_EQ(mm->flops, 240.0);
  EXPECT_EQ(ops.front().name, "cross_entropy_forward") << "sorted by time, largest first";

  const std::string table = profiler::FormatTable(ops, 3, 0.01, 1e12, 1e10);
  EXPECT_NE(table.find("cross_entropy_forward"), std::string::npos) << table;
  // A no-op (a one-rank collective: 4 GB of message in 1 ns) gets no rate, not 4000000 GB/s.
  const std::vector<profiler::OpStats> noop = {{"comm:dp.reduce_scatter", 1, 1e-9, 0, 4e9}};
  const std::string line = profiler::FormatTable(noop, 1, 0.01, 1e12, 1e10);
  EXPECT_EQ(line.find("4000"), std::string::npos) << line;
  EXPECT_NE(table.find("matmul"), std::string::npos) << table;
  EXPECT_NE(table.find("outside ops"), std::string::npos) << table;
  profiler::Reset();
  EXPECT_TRUE(profiler::Collect().empty());
}

// A Scope's detail is a finer row beside its op's: the op's row is unchanged (one per name, all calls), the
// detail rows split it, a nested Scope's detail counts nowhere, and the table prints them under the ops.
TEST(Profiler, DetailRowsSplitTheirOp) {
  const ExecContext cpu{};
  profiler::Reset();
  profiler::set_enabled(true);
  for (int i = 0; i < 2; ++i) { const profiler::Scope s(cpu, "matmul", 100, 10, "8x8x8 NN f32"); }
  { const profiler::Scope s(cpu, "matmul", 1000, 30, "16x8x8 NT f32"); }
  { const profiler::Scope s(cpu, "matmul", 7, 7); }  // no detail: in matmul's row only
  {
    const profiler::Scope outer(cpu, "swiglu_forward", 0, 5);
    const profiler::Scope inner(cpu, "matmul", 50, 50, "4x4x4 NN f32");  // nested: counted nowhere
  }
  profiler::set_enabled(false);
  const std::vector<profiler::OpStats> ops = profiler::Collect();
  const std::vector<profiler::OpStats> details = profiler::CollectDetails();
  const profiler::OpStats* mm = find(ops, "matmul");
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->calls, 4);
  EXPECT_EQ(mm->flops, 1207.0);
  ASSERT_EQ(details.size(), 2u);
  const profiler::OpStats* small = find(details, "matmul 8x8x8 NN f32");
  const profiler::OpStats* tall = find(details, "matmul 16x8x8 NT f32");
  ASSERT_NE(small, nullptr);
  ASSERT_NE(tall, nullptr);
  EXPECT_EQ(small->calls, 2);
  EXPECT_EQ(small->flops, 200.0);
  EXPECT_EQ(small->bytes, 20.0);
  EXPECT_EQ(tall->calls, 1);
  EXPECT_EQ(tall->flops, 1000.0);
  const std::string table = profiler::FormatTable(ops, 1, 0.01, 1e12, 1e10, details);
  const size_t header = table.find("op detail");
  ASSERT_NE(header, std::string::npos) << table;
  EXPECT_GT(header, table.find("outside ops")) << table;
  EXPECT_NE(table.find("matmul 16x8x8 NT f32", header), std::string::npos) << table;
  EXPECT_EQ(profiler::FormatTable(ops, 1, 0.01, 1e12, 1e10).find("op detail"), std::string::npos);
  profiler::Reset();
  EXPECT_TRUE(profiler::CollectDetails().empty());
}

// A one-rank collective sends nothing: its row carries no bytes, so no GB/s (the emulated GPU run's
// profile showed dp = 1's reduce_scatter at "4588 GB/s, 95.6 % of peak": 13 MB over the host's enqueue time).
TEST(Profiler, OneRankCollectivesRecordNoBytes) {
  Buffer in = Buffer::Allocate(Device::Cpu(), 1 << 19, "in"), out = Buffer::Allocate(Device::Cpu(), 1 << 19, "out");
  LocalComm dp("dp");
  profiler::Reset();
  profiler::set_enabled(true);
  dp.reduce_scatter(make_view(in.data(), DType::kF32, Shape{1 << 17}, Device::Cpu(), "in"),
                    make_view(out.data(), DType::kF32, Shape{1 << 17}, Device::Cpu(), "out"));
  profiler::set_enabled(false);
  const std::vector<profiler::OpStats> ops = profiler::Collect();
  const profiler::OpStats* rs = find(ops, "comm:dp.reduce_scatter");
  ASSERT_NE(rs, nullptr);
  EXPECT_EQ(rs->calls, 1);
  EXPECT_EQ(rs->bytes, 0.0);
  profiler::Reset();
}

}  // namespace
}  // namespace om
