// TrainOptions: every flag of ortho_megatron, parsed and validated before any work starts.
// Flags come from the command line and, with --config FILE, from a file of `name = value` lines
// (command line wins). Megatron's long names are accepted as aliases (--tensor-model-parallel-size
// for --tp, --data-parallel-size for --dp). Bad input is a Status whose message names the flag.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace om {

struct TrainOptions {
  // Model
  std::string model = "tiny";          // preset name (LlamaConfig::PresetNames)
  std::string attention = "softmax";   // softmax | softmax1
  std::string norm = "rmsnorm";        // rmsnorm | rmsnorm-s
  int64_t vocab_size = 0;              // 0: from the dataset's metadata
  int64_t seq_length = 0;              // 0: the preset's
  // Parallelism (world size must equal tp * dp)
  int64_t tp = 1;
  int64_t dp = 1;
  // Batch and schedule
  int64_t micro_batch_size = 8;
  int64_t global_batch_size = 0;       // 0: micro_batch_size * dp (no accumulation)
  int64_t train_iters = 100;
  // Optimizer
  std::string optimizer = "adamw";     // adamw | orthoadam
  int64_t ortho_block = 1024;          // B: optimizer unit rows and OrthoAdam's column-block width
  std::string ortho_transform = "haar";  // haar | identity | signed-permutation (tests, ablations)
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t lr_warmup_iters = 0;
  int64_t lr_decay_iters = 0;          // 0: train_iters
  float clip_grad = 0.0f;              // 0: off
  float weight_decay = 0.0f;
  float adam_beta1 = 0.9f;
  float adam_beta2 = 0.999f;
  float adam_eps = 1e-8f;
  uint64_t seed = 1234;
  // Data
  std::string data_path;               // prefix of the training .bin/.idx (+ .json metadata)
  std::string valid_data_path;         // prefix of the held-out set; "" = no validation
  int64_t eval_interval = 0;           // validation every N steps (and at the end); 0 = only at the end
  int64_t eval_iters = 4;              // global batches per validation
  bool eval_metrics = false;           // also the paper's metrics on the validation batches (metrics.jsonl)
  // Logging and output
  int64_t log_interval = 1;
  std::string save;                    // run directory: checkpoints (checkpoints/FORMAT.md) and metrics.jsonl
  int64_t save_interval = 0;           // checkpoint every N steps (and after the last); 0 = after the last only
  int64_t save_keep = 0;               // keep the newest K checkpoints; 0 = all
  std::string load;                    // run directory (its `latest`) or a step_* directory to resume from
  bool no_load_optim = false;          // load weights only: fresh m, v and Adam step
  bool no_load_rng = false;            // keep this run's --seed for the data order
  double exit_duration_in_mins = 0;    // save and exit (code 75) after this wall time; 0 = off
  std::string log_dir;                 // metrics.jsonl here instead (or as well) when set
  double peak_tflops = 0.0;            // for MFU; 0: the default for the device (printed at start)
  // Runtime
  std::string device = "cpu";
  int threads = 0;                     // OpenMP threads; 0: OMP_NUM_THREADS or all cores

  int64_t accumulation_steps() const { return global_batch_size / (micro_batch_size * dp); }
};

// The checks parse_train_options applies after parsing (each error names its flag); also for
// TrainOptions built in code. `world_size` is the number of MPI ranks (tp * dp must equal it).
Status validate_train_options(const TrainOptions& o, int world_size);

enum class ParseOutcome : uint8_t { kRun, kHelpShown };

// Parses argv (and --config). On --help prints the grouped help to stdout and returns kHelpShown.
// `world_size` is the number of MPI ranks (tp * dp must equal it).
StatusOr<ParseOutcome> parse_train_options(int argc, char** argv, int world_size, TrainOptions* out);

}  // namespace om
