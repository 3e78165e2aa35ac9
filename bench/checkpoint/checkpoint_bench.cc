// Checkpoint save and load throughput (checkpoints/FORMAT.md) against the raw sequential write and
// read speed of the same disk, measured in the same run with the same per-rank byte counts.
//   mpirun -np P checkpoint_bench TP DATA_PREFIX [DIR=/tmp/om_ckpt_bench] [REPS=3] [MODEL=small]
// P = TP·DP ranks. Each rep: Trainer::Save of the model after one step (every rank writes its shard,
// rank 0 writes the index and manifest with CRC-32s, then the atomic publish), then a Trainer::Create
// into a fresh model and ZeRO-1 optimizer of the same layout (verify + read + all-gather). Raw: every rank writes, fsyncs and
// reads back a file of its shard's size with 8 MiB write()/read() calls, all ranks at once, as a save does.
// Prints medians on rank 0. Reads after writes are served partly from the page cache (say so).
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/check.h"
#include "core/timer.h"
#include "checkpoints/checkpoint.h"
#include "launch/trainer.h"
#include "model/llama.h"
#include "parallel/local_comm.h"
#include "parallel/process_groups.h"

namespace om {
namespace {

// Seconds for every rank to write+fsync (or read) `bytes` to its own file; the slowest rank's time.
double raw_io(const std::string& path, size_t bytes, bool write) {
  std::vector<char> buf(8 << 20, 'x');
  MPI_Barrier(MPI_COMM_WORLD);
  Timer t;
  const int fd = write ? ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644) : ::open(path.c_str(), O_RDONLY);
  OM_CHECK(fd >= 0, "cannot open '%s'", path.c_str());
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(buf.size(), bytes - done);
    const ssize_t r = write ? ::write(fd, buf.data(), n) : ::read(fd, buf.data(), n);
    OM_CHECK(r > 0, "raw %s of '%s' failed", write ? "write" : "read", path.c_str());
    done += static_cast<size_t>(r);
  }
  if (write) OM_CHECK(::fsync(fd) == 0, "fsync '%s'", path.c_str());
  ::close(fd);
  double s = t.Seconds();
  MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return s;
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

int run(int argc, char** argv) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 3) {
    if (rank == 0) std::fprintf(stderr, "usage: mpirun -np P checkpoint_bench TP DATA_PREFIX [DIR] [REPS] [MODEL]\n");
    return 2;
  }
  const int64_t tp = std::atol(argv[1]), dp = size / tp;
  const std::string data = argv[2], dir = argc > 3 ? argv[3] : "/tmp/om_ckpt_bench";
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  const std::string model = argc > 5 ? argv[5] : "small";
  set_process_rank(rank);
  StatusOr<ParallelDims> dims = ParallelDims::Make(tp, dp, size);
  OM_CHECK(dims.ok(), "%s", dims.status().ToString().c_str());
  StatusOr<ProcessGroups> groups = ProcessGroups::Create(*dims);
  OM_CHECK(groups.ok(), "%s", groups.status().ToString().c_str());
  ProcessGroups* g = size > 1 ? &*groups : nullptr;

  TrainOptions o;
  o.model = model;
  o.data_path = data;
  o.tp = tp;
  o.dp = dp;
  o.micro_batch_size = 1;
  o.global_batch_size = dp;
  o.train_iters = 1;
  o.lr_decay_iters = 1;
  o.save = dir;
  o.save_keep = 1;
  o.threads = 1;
  o.log_interval = 1000;
  if (rank == 0) std::filesystem::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);

  StatusOr<std::unique_ptr<Trainer>> t = Trainer::Create(o, g);
  OM_CHECK(t.ok(), "%s", t.status().ToString().c_str());
  OM_CHECK(t.value()->TrainStep().ok(), "train step");
  std::vector<double> save_s, load_s, verify_s, raw_w, raw_r;
  uint64_t total = 0, shard = 0;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    Timer ts;
    OM_CHECK(t.value()->Save().ok(), "save");
    save_s.push_back(ts.Seconds());
    const std::string step_dir = dir + "/" + checkpoint_dir_name(t.value()->step());
    total = dir_bytes(step_dir);
    shard = std::filesystem::file_size(step_dir + "/shard_tp" + std::to_string(g ? g->tp_rank() : 0) + "_dp" +
                                       std::to_string(g ? g->dp_rank() : 0) + ".h5");

    // Load into a fresh model + optimizer of the same layout: verify (rank 0 reads every file for
    // its CRC-32), then every rank reads its units through index.h5 and the weights are all-gathered.
    Llama fresh(t.value()->config(), 1, Device::Cpu(), DType::kF32, g != nullptr && tp > 1 ? &g->tp() : nullptr);
    LocalComm local("dp");
    DistributedOptimizer opt(fresh.parameters(), OptimizerConfig{}, g != nullptr ? g->dp() : local,
                             g != nullptr && tp > 1 ? &g->tp() : nullptr, fresh.tp_replicated());
    MPI_Barrier(MPI_COMM_WORLD);
    Timer tl;
    const nlohmann::json manifest = read_manifest(step_dir).value();
    if (rank == 0) OM_CHECK(verify_checkpoint(step_dir, manifest).ok(), "verify");
    MPI_Barrier(MPI_COMM_WORLD);
    verify_s.push_back(tl.Seconds());
    OM_CHECK(load_checkpoint(step_dir, manifest, opt, true, g != nullptr ? &g->world() : nullptr).ok(), "load");
    MPI_Barrier(MPI_COMM_WORLD);
    load_s.push_back(tl.Seconds());

    const std::string raw = dir + "/raw_" + std::to_string(rank) + ".bin";
    raw_w.push_back(raw_io(raw, shard, true));
    raw_r.push_back(raw_io(raw, shard, false));
    std::filesystem::remove(raw);
  }
  if (rank == 0) {
    const double mb = static_cast<double>(total) / 1e6;
    uint64_t all_shards = 0;
    MPI_Reduce(&shard, &all_shards, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    const double raw_mb = static_cast<double>(all_shards) / 1e6;
    const double s = bench::median(save_s), l = bench::median(load_s), v = bench::median(verify_s);
    std::printf("checkpoint of %s at tp%ld·dp%ld: %.1f MB (%d shard files + index + manifest), medians of %d reps\n",
                model.c_str(), static_cast<long>(tp), static_cast<long>(dp), mb, size, reps);
    std::printf("%-46s %9s %9s\n", "", "seconds", "MB/s");
    std::printf("%-46s %9.3f %9.0f\n", "save (shards + index + CRC-32 + publish)", s, mb / s);
    std::printf("%-46s %9.3f %9.0f\n", "load (verify CRC-32 + read + all-gather)", l, mb / l);
    std::printf("%-46s %9.3f %9.0f\n", "  of which verify (rank 0 reads every file)", v, mb / v);
    std::printf("%-46s %9.3f %9.0f\n", "raw write + fsync, same bytes per rank", bench::median(raw_w), raw_mb / bench::median(raw_w));
    std::printf("%-46s %9.3f %9.0f\n", "raw read, same bytes per rank (page cache)", bench::median(raw_r), raw_mb / bench::median(raw_r));
    std::printf("%-46s %9.2f\n", "save / raw write", s / bench::median(raw_w));
  } else {
    MPI_Reduce(&shard, nullptr, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
  }
  return 0;
}

}  // namespace
}  // namespace om

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 0;
  {
    rc = om::run(argc, argv);
  }
  MPI_Finalize();
  return rc;
}
