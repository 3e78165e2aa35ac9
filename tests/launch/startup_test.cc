// StartupTimeline (launch/startup.h): the process's age from /proc, phases in order, the summary
// and JSON forms that train_main logs and metrics.jsonl carries.
#include "launch/startup.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace om {
namespace {

TEST(Startup, ProcessAgeGrowsWithWallTime) {
  // /proc's start time and uptime have 10 ms ticks: 300 ms of sleep moves the age by 300 ± 20 ms.
  const double before = process_age_seconds();
  ASSERT_GT(before, 0.0) << "no /proc/self/stat on this machine?";
  // The test binary started moments ago: reading the wrong field of /proc/self/stat (e.g. a 0 start
  // time) would report the machine's uptime instead.
  EXPECT_LT(before, 120.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double after = process_age_seconds();
  EXPECT_GT(after - before, 0.28);
  EXPECT_LT(after - before, 2.0);  // generous: a loaded CI machine may deschedule us
}

TEST(Startup, PhasesAreTimedInOrderAndSumToTheTotal) {
  StartupTimeline t;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  t.Mark("first");
  t.Mark("second");
  ASSERT_EQ(t.phases().size(), 3u);
  EXPECT_EQ(t.phases()[0].first, "exec");
  EXPECT_EQ(t.phases()[1].first, "first");
  EXPECT_EQ(t.phases()[2].first, "second");
  EXPECT_GE(t.phases()[1].second, 0.045);
  EXPECT_LT(t.phases()[2].second, t.phases()[1].second);  // no sleep in it
  EXPECT_DOUBLE_EQ(t.Total(), t.phases()[0].second + t.phases()[1].second + t.phases()[2].second);

  const nlohmann::json j = nlohmann::json::parse(t.Json());
  ASSERT_EQ(j.at("phases").size(), 3u);
  EXPECT_EQ(j.at("phases").at(1).at(0), "first");
  EXPECT_NEAR(j.at("phases").at(1).at(1).get<double>(), t.phases()[1].second, 1e-4);
  EXPECT_NEAR(j.at("total_s").get<double>(), t.Total(), 1e-4);

  const std::string s = t.Summary();
  EXPECT_LT(s.find("exec"), s.find("first"));
  EXPECT_LT(s.find("first"), s.find("second"));
  EXPECT_EQ(s.substr(s.find(' '), 3), " s:") << s;  // "<total> s: exec ..., first ..., second ..."
  EXPECT_EQ(s.find('('), std::string::npos) << s;
  EXPECT_FALSE(j.contains("notes"));
}

// Notes (OrthoAdam's background draw) follow the phases in both forms and leave the total alone.
TEST(Startup, NotesFollowThePhasesAndAreNotInTheTotal) {
  StartupTimeline t;
  t.Mark("first step");
  const double total = t.Total();
  t.Note("rotations drawn", 3.25);
  t.Note("rotations waited", 0.5);
  EXPECT_DOUBLE_EQ(t.Total(), total);
  const std::string s = t.Summary();
  EXPECT_NE(s.find(format_message("first step %.2f (rotations drawn 3.25, rotations waited 0.50)",
                                   t.phases()[1].second)),
            std::string::npos)
      << s;
  const nlohmann::json j = nlohmann::json::parse(t.Json());
  ASSERT_EQ(j.at("notes").size(), 2u);
  EXPECT_EQ(j.at("notes").at(0).at(0), "rotations drawn");
  EXPECT_DOUBLE_EQ(j.at("notes").at(0).at(1).get<double>(), 3.25);
  EXPECT_DOUBLE_EQ(j.at("notes").at(1).at(1).get<double>(), 0.5);
  EXPECT_EQ(j.at("phases").size(), 2u);
}

}  // namespace
}  // namespace om
