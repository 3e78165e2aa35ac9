// TrainOptions: every flag of ortho_megatron, parsed and validated before any work starts.
// Flags come from the command line and, with --config FILE, from a file of `name = value` lines
// (command line wins). Megatron's long names are accepted as aliases (--tensor-model-parallel-size
// for --tp, --data-parallel-size for --dp). Bad input is a Status whose message names the flag.
#pragma once

#include <cstdint>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
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
  bool overlap_grad_reduce = false;    // reduce gradient buckets during the last backward (DistributedOptimizer)
  int64_t ddp_bucket_size = 40000000;  // elements per gradient bucket with overlap_grad_reduce (Megatron's default)
  // Batch and schedule
  int64_t micro_batch_size = 8;
  int64_t global_batch_size = 0;       // 0: micro_batch_size * dp (no accumulation)
  int64_t train_iters = 100;
  // Optimizer
  std::string optimizer = "adamw";     // adamw | orthoadam
  int64_t ortho_block = 1024;          // B: optimizer unit rows and OrthoAdam's column-block width
  std::string ortho_transform = "haar";  // haar | identity | signed-permutation (tests, ablations)
  std::string ortho_precision = "fp32";  // fp32 | tf32 (CUDA: the rotations on TF32 tensor cores)
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
  bool bos = false;                    // "<s>" at position 0 of every sequence (data/sampler.h BOS mode)
  int64_t eval_interval = 0;           // validation every N steps (and at the end); 0 = only at the end
  int64_t eval_iters = 4;              // global batches per validation
  bool eval_metrics = false;           // also the paper's metrics on the validation batches (metrics.jsonl)
  // Logging and output
  int64_t log_interval = 1;
  int64_t profile_steps = 0;           // time every op of N steps after the first (core/profiler.h); 0 = off
  std::string save;                    // run directory: checkpoints (checkpoints/FORMAT.md) and metrics.jsonl
  int64_t save_interval = 0;           // checkpoint every N steps (and after the last); 0 = after the last only
  int64_t save_keep = 0;               // keep the newest K checkpoints; 0 = all
  std::string load;                    // run directory (its `latest`) or a step_* directory to resume from
  bool no_load_optim = false;          // load weights only: fresh m, v and Adam step
  bool no_load_rng = false;            // keep this run's --seed for the data order
  double exit_duration_in_mins = 0;    // save and exit (code 75) after this wall time; 0 = off
  std::string log_dir;                 // metrics.jsonl here instead (or as well) when set
  double peak_tflops = 0.0;            // for MFU; 0: the default for the device (printed at start)
  // Faults: what a job does when things go wrong
  std::string nan_policy = "abort";    // abort | skip: a non-finite loss or gradient norm
  double comm_timeout_s = 600;         // hang watchdog (parallel/watchdog.h); 0 = off
  std::string inject_fault;            // tests: "nan@STEP[:RANK]" or "hang@STEP[:RANK]" (parse_fault)
  // Runtime
  bool dry_run = false;                // validate, print the per-rank memory plan, exit (launch/memory_plan.h)
  std::string device = "cpu";         // cpu | cuda | auto (the command line's default: cuda when a GPU is visible)
  std::string dtype = "auto";          // f32 | bf16 (CUDA) | auto: bf16 on CUDA, f32 on the CPU (resolve_dtype)
  int threads = 0;                     // OpenMP threads; 0: OMP_NUM_THREADS or all cores
  bool cuda_graphs = false;            // replay each micro-batch from a CUDA graph (Llama::ForwardBackward)

  int64_t accumulation_steps() const { return global_batch_size / (micro_batch_size * dp); }
};

// The checks parse_train_options applies after parsing (each error names its flag); also for
// TrainOptions built in code. `world_size` is the number of MPI ranks (tp * dp must equal it).
Status validate_train_options(const TrainOptions& o, int world_size);

// The device a rank trains on for --device `flag`: cpu; cuda → GPU `local_rank` (one rank per GPU of a
// node); auto → cuda when this build has CUDA and the node shows a GPU for this rank, else cpu.
// Unavailable for cuda without a CUDA build or a visible GPU, InvalidArgument when the node has fewer
// GPUs than ranks; the messages name the flag and the fix.
StatusOr<Device> resolve_device(const std::string& flag, int local_rank);

// The model dtype for --dtype `flag` on `device` (model/llama.h "Precision"): f32; bf16 (CUDA only:
// bf16 matrices and activations, f32 gains, statistics, gradients and master weights); auto → bf16 on
// CUDA, f32 on the CPU. InvalidArgument for bf16 on the CPU or an unknown value, naming the flag.
StatusOr<DType> resolve_dtype(const std::string& flag, Device device);

// --inject-fault KIND@STEP[:RANK]: at training step STEP (1-based) on RANK (world rank; every rank when
// omitted) — nan: the rank's loss and one gradient element become NaN after backward; hang: the rank
// sleeps for an hour inside the step (the watchdog test). For tests and for checking a cluster's
// alerting; "" = none.
struct FaultInjection {
  enum class Kind : uint8_t { kNone, kNan, kHang };
  Kind kind = Kind::kNone;
  int64_t step = 0;
  int rank = -1;  // -1: every rank
  bool Applies(int64_t at_step, int at_rank) const {
    return kind != Kind::kNone && step == at_step && (rank < 0 || rank == at_rank);
  }
};
StatusOr<FaultInjection> parse_fault(const std::string& spec);

enum class ParseOutcome : uint8_t { kRun, kHelpShown };

// Parses argv (and --config). On --help prints the grouped help to stdout and returns kHelpShown.
// `world_size` is the number of MPI ranks (tp * dp must equal it).
StatusOr<ParseOutcome> parse_train_options(int argc, char** argv, int world_size, TrainOptions* out);

}  // namespace om
