// Sharded HDF5 checkpoints (checkpoints/FORMAT.md, DESIGN.md invariant 5): every rank writes the
// optimizer units it owns (fp32 master weights, m, v) with their logical coordinates; rank 0 adds an
// index of virtual datasets presenting every full logical tensor and a manifest with checksums, and
// publishes the step directory atomically. Any layout loads any checkpoint through the index.
//
// Collectives: save_checkpoint and load_checkpoint are collective over `world` (every rank calls them,
// in the same order); a failure on any rank is returned on every rank (so no rank is left waiting).
// `world` may be nullptr for one process. Thread safety: one thread (serial HDF5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "optim/distributed_optimizer.h"
#include "parallel/comm.h"

namespace om {

inline constexpr int kCheckpointFormatVersion = 1;

// The run-level facts a checkpoint records (manifest.json); sections are written as given.
struct CheckpointState {
  int64_t step = 0;              // optimizer steps taken
  int64_t consumed_samples = 0;  // the data sampler's position
  nlohmann::json model;          // LlamaConfig fields (compared on load)
  nlohmann::json optimizer;      // kind, transform, block, seed, betas, ... (+ "step" is added)
  nlohmann::json schedule;       // lr, min_lr, warmup_iters, decay_iters
  nlohmann::json data;           // seed, global_batch_size, data_path
  int64_t skipped_steps = 0;     // steps whose update --nan-policy skip dropped (manifest "skipped_steps")
};

// Where this rank sits: tp × dp ranks, this one (tp_rank, dp_rank).
struct CheckpointLayout {
  int tp = 1, dp = 1, tp_rank = 0, dp_rank = 0;
};

// "step_00001000" for step 1000.
std::string checkpoint_dir_name(int64_t step);

// FORMAT.md's naming of a unit: its dataset under /master, /exp_avg and /exp_avg_sq is
// "<logical>/r<row0>_c<col0>", and its region in the logical tensor (of `ndim` 1 or 2 dimensions) is
// [start, start + count) with start (row0, col0) and count (rows, cols), or (row0) and (rows) in 1-D.
std::string checkpoint_unit_key(const std::string& logical, int64_t row0, int64_t col0);
std::vector<int64_t> unit_region_start(int ndim, int64_t row0, int64_t col0);
std::vector<int64_t> unit_region_count(int ndim, int64_t rows, int64_t cols);

// Writes DIR/step_NNNNNNNN (state.step) atomically and points DIR/latest at it; keeps the newest `keep`
// checkpoints (keep <= 0: all). Returns the step directory's path.
StatusOr<std::string> save_checkpoint(const std::string& dir, int keep, const CheckpointState& state,
                                      const DistributedOptimizer& optimizer, const CheckpointLayout& layout,
                                      Comm* world);

// A run directory (its `latest`; without one, its newest step_* directory) or a step directory (with
// manifest.json) → the step directory. NotFound when `path` holds none.
StatusOr<std::string> resolve_checkpoint(const std::string& path);

// manifest.json of a step directory, format checked.
StatusOr<nlohmann::json> read_manifest(const std::string& step_dir);

// Every file of the manifest exists with its size and CRC-32; Corruption naming the first bad file.
Status verify_checkpoint(const std::string& step_dir, const nlohmann::json& manifest);

// The differences between a checkpoint's section and the run's, one "key: checkpoint X, run Y" each.
std::vector<std::string> manifest_mismatches(const nlohmann::json& saved, const nlohmann::json& run,
                                             const std::string& section);

struct LoadReport {
  int64_t units = 0;            // local units loaded
  int64_t converted_units = 0;  // OrthoAdam units whose moments were converted (grids differ)
};

// REQUIRES verify_checkpoint first (the trainer verifies on one rank): this checks only that every
// listed file exists, since HDF5 reads a missing virtual-dataset source as zeros.
// Loads this rank's units (master; m and v when load_optim) from step_dir/index.h5 and all-gathers the
// weights into the parameters; sets the optimizer's step from the manifest when load_optim. Moments are
// converted between bases when the saved and current optimizer units or rotations differ
// (FORMAT.md "Loading under any layout"). Collective over the optimizer's dp group and `world`.
StatusOr<LoadReport> load_checkpoint(const std::string& step_dir, const nlohmann::json& manifest,
                                     DistributedOptimizer& optimizer, bool load_optim, Comm* world);

}  // namespace om
