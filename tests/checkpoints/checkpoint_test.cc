// Single-process checkpoints through the Trainer (LocalComm path, no MPI): bitwise resume for AdamW and
// OrthoAdam, --save-keep pruning, damaged files refused by verify_checkpoint and --load without
// touching the run directory, another configuration refused with every mismatched field named, the
// --load edge cases, and resolve_checkpoint on a dangling `latest`.
// CheckpointFixture.WriteScriptDataset is not a test of its own: ctest runs it (with
// OM_CHECKPOINT_FIXTURE_DIR set) as the fixture that writes the dataset the script tests
// (h5py_index_test.py, crash_safety_test.sh) train on; elsewhere it skips.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "launch/trainer.h"
#include "tests/support/synthetic_dataset.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

// The synthetic period-8 dataset of tests/launch/trainer_test.cc, written once per binary.
const std::string& dataset() {
  static const std::string prefix = write_synthetic_dataset(::testing::TempDir() + "/om_ckpt_test_data", 40, 200);
  return prefix;
}

// An empty directory under the test temp dir (removed first if left by an earlier run).
std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/om_ckpt_test_" + name;
  fs::remove_all(dir);
  return dir;
}

// tiny at T = 32 with warm-up and decay inside the 6 steps, so the resumed steps see a moving lr.
TrainOptions small_options(const std::string& optimizer = "adamw") {
  TrainOptions o;
  o.model = "tiny";
  o.attention = "softmax1";
  o.seq_length = 32;
  o.data_path = dataset();
  o.micro_batch_size = 2;
  o.global_batch_size = 4;  // 2 micro-batches accumulated: the position covers more than one sampler call
  o.train_iters = 6;
  o.lr = 3e-3f;
  o.min_lr = 3e-4f;
  o.lr_warmup_iters = 2;
  o.lr_decay_iters = 6;
  o.optimizer = optimizer;
  o.ortho_block = 64;  // tiny's 256-row tensors split into 4 units; OrthoAdam blocks of 64 columns
  return o;
}

std::unique_ptr<Trainer> create(const TrainOptions& o) {
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  return std::move(t).value();
}

std::vector<StepStats> steps(Trainer& t, int64_t n) {
  std::vector<StepStats> out;
  for (int64_t i = 0; i < n; ++i) {
    StatusOr<StepStats> s = t.TrainStep();
    OM_CHECK(s.ok(), "%s", s.status().ToString().c_str());
    out.push_back(s.value());
  }
  return out;
}

// Every entry under `dir` (recursively) with its size and modification time: equal snapshots mean
// nothing was created, removed, grown or rewritten (a directory's mtime moves when an entry is
// added or removed in it).
std::map<std::string, std::pair<uintmax_t, int64_t>> snapshot(const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, int64_t>> out;
  const auto stamp = [](const fs::path& p) { return static_cast<int64_t>(fs::last_write_time(p).time_since_epoch().count()); };
  out[dir] = {0, stamp(dir)};
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir))
    out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, stamp(e.path())};
  return out;
}

std::string read_latest(const std::string& dir) {
  std::ifstream in(dir + "/latest");
  std::string name;
  std::getline(in, name);
  return name;
}

// One checkpoint at step 3 (AdamW) in `dir`, returned as its step directory.
std::string save_step3(const std::string& dir, const TrainOptions& base = small_options()) {
  TrainOptions o = base;
  o.save = dir;
  std::unique_ptr<Trainer> t = create(o);
  steps(*t, 3);
  OM_CHECK(t->Save().ok(), "save");
  return dir + "/" + checkpoint_dir_name(3);
}

// ---- (a) save at step 3, resume, continue to 6: bitwise the uninterrupted run -------------------

class ResumeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ResumeTest, LossesAndWeightsAreBitwiseTheUninterruptedRun) {
  const TrainOptions o = small_options(GetParam());
  std::unique_ptr<Trainer> whole = create(o);
  const std::vector<StepStats> reference = steps(*whole, 6);

  const std::string dir = fresh_dir(std::string("resume_") + GetParam());
  save_step3(dir, o);
  TrainOptions resumed = o;
  resumed.load = dir;
  std::unique_ptr<Trainer> t = create(resumed);
  ASSERT_EQ(t->step(), 3);
  ASSERT_EQ(t->consumed_samples(), 3 * o.global_batch_size);
  const std::vector<StepStats> tail = steps(*t, 3);
  for (size_t i = 0; i < tail.size(); ++i) {
    // Exact by construction: the same weights, moments, step count, lr and samples feed the same
    // deterministic CPU kernels, so every bit must agree (a tolerance would hide a lost moment).
    EXPECT_EQ(tail[i].step, reference[i + 3].step);
    EXPECT_EQ(tail[i].loss, reference[i + 3].loss) << "step " << tail[i].step;
    EXPECT_EQ(tail[i].grad_norm, reference[i + 3].grad_norm) << "step " << tail[i].step;
    EXPECT_EQ(tail[i].lr, reference[i + 3].lr) << "step " << tail[i].step;
  }
  const std::span<const Parameter> a = whole->model().parameters();
  const std::span<const Parameter> b = t->model().parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p) {
    ASSERT_EQ(a[p].value.nbytes(), b[p].value.nbytes()) << a[p].name;
    EXPECT_EQ(std::memcmp(a[p].value.data, b[p].value.data, a[p].value.nbytes()), 0) << a[p].name << " differs";
  }
  // The resume is not vacuous: the weights moved after the checkpoint.
  EXPECT_NE(reference[3].loss, reference[5].loss);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, ResumeTest, ::testing::Values("adamw", "orthoadam"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

// ---- (b) --save-keep 2 --save-interval 1 --------------------------------------------------------

TEST(Checkpoint, SaveKeepLeavesTheNewestTwoAndLatestNamesTheNewest) {
  TrainOptions o = small_options();
  o.train_iters = 5;
  o.save = fresh_dir("keep");
  o.save_interval = 1;
  o.save_keep = 2;
  std::unique_ptr<Trainer> t = create(o);
  ASSERT_TRUE(t->Run().ok());
  std::vector<std::string> entries;
  for (const fs::directory_entry& e : fs::directory_iterator(o.save)) entries.push_back(e.path().filename().string());
  std::sort(entries.begin(), entries.end());
  // Nothing else: no step_00000001..3, no .step_*.tmp or .old left, no latest.tmp.
  EXPECT_EQ(entries, (std::vector<std::string>{"latest", "metrics.jsonl", "step_00000004", "step_00000005"}));
  EXPECT_EQ(read_latest(o.save), "step_00000005");
  for (const char* step : {"step_00000004", "step_00000005"}) {
    StatusOr<nlohmann::json> m = read_manifest(o.save + "/" + step);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(verify_checkpoint(o.save + "/" + step, *m).ok()) << step;
  }
}

// ---- (c) damaged files ----------------------------------------------------------------------------

enum class Damage : uint8_t { kTruncate, kFlipBit, kDelete };

void damage(const std::string& path, Damage d) {
  const uintmax_t size = fs::file_size(path);
  switch (d) {
    case Damage::kTruncate: fs::resize_file(path, size / 2); break;
    case Damage::kDelete: fs::remove(path); break;
    case Damage::kFlipBit: {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(size / 2));
      char c = 0;
      f.read(&c, 1);
      c = static_cast<char>(c ^ 0x10);
      f.seekp(static_cast<std::streamoff>(size / 2));
      f.write(&c, 1);
      OM_CHECK(f.good(), "flip a bit of '%s'", path.c_str());
      break;
    }
  }
}

TEST(Checkpoint, DamagedFileFailsVerifyAndLoadNamingItAndLoadWritesNothing) {
  const std::string original = fresh_dir("damage_original");
  save_step3(original);
  const struct {
    const char* name;
    const char* file;
    Damage damage;
    const char* says;  // a phrase of verify_checkpoint's message for this damage
  } cases[] = {
      {"truncated_shard", "shard_tp0_dp0.h5", Damage::kTruncate, "truncated"},
      {"flipped_shard", "shard_tp0_dp0.h5", Damage::kFlipBit, "CRC-32"},
      {"flipped_index", "index.h5", Damage::kFlipBit, "CRC-32"},
      {"missing_shard", "shard_tp0_dp0.h5", Damage::kDelete, "missing"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dir = fresh_dir(std::string("damage_") + c.name);
    fs::copy(original, dir, fs::copy_options::recursive);  // the original stays intact
    const std::string step_dir = dir + "/" + checkpoint_dir_name(3), path = step_dir + "/" + c.file;
    damage(path, c.damage);

    StatusOr<nlohmann::json> m = read_manifest(step_dir);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    const Status v = verify_checkpoint(step_dir, *m);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.code(), StatusCode::kCorruption) << v.ToString();
    EXPECT_NE(v.message().find(path), std::string::npos) << v.ToString();
    EXPECT_NE(v.message().find(c.says), std::string::npos) << v.ToString();

    // --load DIR --save DIR (the auto-resume pattern): the failed load must not create metrics.jsonl,
    // a .tmp directory or anything else in the run directory.
    const auto before = snapshot(dir);
    TrainOptions o = small_options();
    o.load = dir;
    o.save = dir;
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kCorruption) << t.status().ToString();
    EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status().ToString();
    EXPECT_NE(t.status().message().find("--load"), std::string::npos) << t.status().ToString();
    EXPECT_EQ(snapshot(dir), before);
  }
  // The undamaged original still loads: the failures above are the damage, not the copy.
  TrainOptions o = small_options();
  o.load = original;
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t.value()->step(), 3);
}

// ---- (d) a checkpoint of another configuration ----------------------------------------------------

// The "model.<field>" names of a FailedPrecondition message, one per "  model.<field>: ..." line.
std::vector<std::string> mismatched_fields(const std::string& message) {
  std::vector<std::string> out;
  for (size_t pos = message.find("\n  model."); pos != std::string::npos; pos = message.find("\n  model.", pos + 1)) {
    const size_t begin = pos + 3, end = message.find(':', begin);
    out.push_back(message.substr(begin, end - begin));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Checkpoint, AnotherConfigurationFailsListingEveryMismatchedField) {
  const std::string dir = fresh_dir("mismatch");
  save_step3(dir);  // tiny, softmax1, T 32

  const struct {
    const char* name;
    void (*change)(TrainOptions&);
    std::vector<std::string> fields;  // sorted
  } cases[] = {
      {"attention_and_seq_length",
       [](TrainOptions& o) {
         o.attention = "softmax";
         o.seq_length = 16;
       },
       {"model.attention", "model.seq_length"}},
      {"norm", [](TrainOptions& o) { o.norm = "rmsnorm-s"; }, {"model.norm"}},
      // small: hidden 384, ffn 1024, 6 heads, 6 layers (model/llama_config.cc) against tiny's 256, 688, 4, 4.
      {"model", [](TrainOptions& o) { o.model = "small"; },
       {"model.ffn", "model.hidden", "model.n_heads", "model.n_layers", "model.name"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TrainOptions o = small_options();
    c.change(o);
    o.load = dir;
    StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kFailedPrecondition) << t.status().ToString();
    EXPECT_NE(t.status().message().find("--load"), std::string::npos) << t.status().ToString();
    EXPECT_EQ(mismatched_fields(t.status().message()), c.fields) << t.status().ToString();
  }
}

// ---- (e) --load edge cases -------------------------------------------------------------------------

TEST(Checkpoint, LoadOfAMissingDirectoryFailsNamingTheFlag) {
  TrainOptions o = small_options();
  o.load = fresh_dir("does_not_exist");
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound) << t.status().ToString();
  EXPECT_NE(t.status().message().find("--load"), std::string::npos) << t.status().ToString();
  EXPECT_NE(t.status().message().find(o.load), std::string::npos) << t.status().ToString();
  EXPECT_FALSE(fs::exists(o.load));
}

TEST(Checkpoint, LoadOfAnEmptyDirectoryStartsFromStepZero) {
  TrainOptions o = small_options();
  o.load = fresh_dir("empty");
  fs::create_directories(o.load);
  std::unique_ptr<Trainer> t = create(o);
  EXPECT_EQ(t->step(), 0);
  EXPECT_EQ(t->consumed_samples(), 0);
  // The same first step as a run without --load (bitwise: same seed, same data, same kernels).
  TrainOptions plain = small_options();
  std::unique_ptr<Trainer> reference = create(plain);
  EXPECT_EQ(steps(*t, 1)[0].loss, steps(*reference, 1)[0].loss);
}

// ---- (f) resolve_checkpoint ---------------------------------------------------------------------------

TEST(Checkpoint, ResolveFollowsLatestAndRefusesADanglingOne) {
  const std::string dir = fresh_dir("resolve");
  const std::string step_dir = save_step3(dir);
  StatusOr<std::string> r = resolve_checkpoint(dir);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(fs::canonical(*r), fs::canonical(step_dir));
  r = resolve_checkpoint(step_dir);  // a step directory is itself
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, step_dir);

  std::ofstream(dir + "/latest") << "step_00000009\n";  // no such directory
  r = resolve_checkpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("step_00000009"), std::string::npos) << r.status().ToString();

  fs::create_directories(dir + "/step_00000009");  // exists, but holds no manifest.json
  r = resolve_checkpoint(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();

  // --load of such a directory is that Corruption too, not a silent fresh start.
  TrainOptions o = small_options();
  o.load = dir;
  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kCorruption) << t.status().ToString();

  EXPECT_EQ(resolve_checkpoint(fresh_dir("resolve_none")).status().code(), StatusCode::kNotFound);
}

// ---- fixture for the script tests (tests/CMakeLists.txt) ---------------------------------------------

TEST(CheckpointFixture, WriteScriptDataset) {
  const char* dir = std::getenv("OM_CHECKPOINT_FIXTURE_DIR");
  if (dir == nullptr) GTEST_SKIP() << "OM_CHECKPOINT_FIXTURE_DIR is not set (ctest sets it for the script tests)";
  fs::create_directories(dir);
  const std::string prefix = write_synthetic_dataset(std::string(dir) + "/synthetic", 40, 200);
  EXPECT_TRUE(fs::exists(prefix + ".bin") && fs::exists(prefix + ".idx") && fs::exists(prefix + ".json"));
}

}  // namespace
}  // namespace om
