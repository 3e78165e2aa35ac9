// Preemption (launch/preemption.h): a signal only sets a flag; the Trainer's Run then finishes the
// current step, saves a checkpoint and stops with preempted() set, and a resumed run continues from
// exactly that step. The same for --exit-duration-in-mins.
#include "launch/preemption.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoints/checkpoint.h"
#include "launch/trainer.h"
#include "tests/support/synthetic_dataset.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

TrainOptions options(const std::string& name) {
  TrainOptions o;
  o.model = "tiny";
  o.seq_length = 32;
  o.data_path = write_synthetic_dataset(::testing::TempDir() + "/" + name + "_data", 20, 100);
  o.micro_batch_size = 2;
  o.global_batch_size = 2;
  o.train_iters = 50;
  o.lr_decay_iters = 50;
  o.save = ::testing::TempDir() + "/" + name + "_run";
  std::filesystem::remove_all(o.save);
  return o;
}

std::string latest(const std::string& dir) {
  std::ifstream in(dir + "/latest");
  std::string name;
  std::getline(in, name);
  return name;
}

TEST(Preemption, SignalsOnlySetTheFlag) {
  clear_preemption();
  install_preemption_handlers();
  EXPECT_FALSE(preemption_requested());
  std::raise(SIGUSR1);
  EXPECT_TRUE(preemption_requested());
  clear_preemption();
  std::raise(SIGTERM);  // the default action would kill the test
  EXPECT_TRUE(preemption_requested());
  clear_preemption();
}

TEST(Preemption, RunSavesAfterTheCurrentStepAndResumes) {
  TrainOptions o = options("preempt");
  clear_preemption();
  {
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    ASSERT_TRUE(t.value()->TrainStep().ok());
    ASSERT_TRUE(t.value()->TrainStep().ok());
    request_preemption();  // as SIGUSR1 would between steps 2 and 3
    ASSERT_TRUE(t.value()->Run().ok());
    EXPECT_TRUE(t.value()->preempted());
    EXPECT_EQ(t.value()->step(), 3);  // the step in flight completes, then it stops
  }
  clear_preemption();
  EXPECT_EQ(latest(o.save), checkpoint_dir_name(3));
  o.load = o.save;
  o.train_iters = 5;
  StatusOr<std::unique_ptr<Trainer>> resumed = Trainer::Create(o);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed.value()->step(), 3);
  EXPECT_EQ(resumed.value()->consumed_samples(), 3 * o.global_batch_size);
  ASSERT_TRUE(resumed.value()->Run().ok());
  EXPECT_FALSE(resumed.value()->preempted());
  EXPECT_EQ(resumed.value()->step(), 5);
  EXPECT_EQ(latest(o.save), checkpoint_dir_name(5));
}

TEST(Preemption, ExitDurationStopsAfterTheFirstStepPastTheLimit) {
  TrainOptions o = options("duration");
  clear_preemption();
  o.exit_duration_in_mins = 1e-9;  // already past after the first step
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t.value()->Run().ok());
  EXPECT_TRUE(t.value()->preempted());
  EXPECT_EQ(t.value()->step(), 1);
  EXPECT_EQ(latest(o.save), checkpoint_dir_name(1));
}

}  // namespace
}  // namespace om
