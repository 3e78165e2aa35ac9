// Trainer: builds the model, optimizer and data from TrainOptions and runs the training loop.
//   step: zero grads → for each micro-batch: forward, backward(1/accumulation) → global grad norm →
//         clip coefficient → lr schedule → optimizer step → log (stdout + metrics.jsonl)
// A non-finite loss or gradient norm stops the run with a Status naming the step (nothing is
// half-written: metrics lines are flushed as they are produced).
// RAII: the metrics file is flushed and closed on every exit path.
// Parallel (DESIGN.md "Tensor parallel", "ZeRO-1"): given ProcessGroups for a tp·dp layout, the model is
// this rank's tp part (Llama with the tp Comm), the optimizer is the ZeRO-1 DistributedOptimizer over
// the dp group (its grad norm also all-reduced over tp, norm gains counted once), dp rank d trains on
// rows [d·mb, (d+1)·mb) of each micro-batch slice (all tp ranks of a replica read the same rows), and
// the logged loss is the mean over dp. Rank 0 alone logs and writes metrics.jsonl. Every step is then
// collective over the world. Without ProcessGroups (or with world size 1) the same optimizer runs
// over a LocalComm (dp = 1), so AdamW and OrthoAdam (--optimizer) take one code path in every layout.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "core/timer.h"
#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "launch/startup.h"
#include "launch/train_options.h"
#include "model/llama.h"
#include "optim/distributed_optimizer.h"
#include "optim/lr_schedule.h"
#include "parallel/local_comm.h"
#include "parallel/process_groups.h"
#include "parallel/watchdog.h"

namespace om {

struct StepStats {
  int64_t step = 0;  // 1-based, after the optimizer step
  double loss = 0, grad_norm = 0, lr = 0;
  double seconds = 0;  // wall time of this step
  bool skipped = false;  // --nan-policy skip dropped this step's update (loss or norm not finite)
};

// The model configuration the options describe: --model's preset, then --attention, --norm,
// --seq-length, and the vocabulary of --data-path's dataset (or --vocab-size). Reads only the
// dataset's small JSON description. Bad input → Status naming the flag.
StatusOr<LlamaConfig> model_config_for(const TrainOptions& options);
// The optimizer configuration the options describe (--optimizer, --ortho-*, --adam-*, --weight-decay).
StatusOr<OptimizerConfig> optimizer_config_for(const TrainOptions& options);

class Trainer {
 public:
  // Opens the data, checks it against the model config, builds everything. Bad input → Status.
  // On a tp·dp layout: `groups` (not owned; must outlive the Trainer; nullptr = one process)
  // must match options.tp and options.dp. InvalidArgument when the model does not split over --tp.
  // Collective over the world when groups is given.
  // Device: the groups' device (train_main resolves --device per rank before creating them); without
  // groups, resolve_device(options.device, 0). On CUDA the model, its gradients and activations and the
  // optimizer's state live on the GPU (--dtype: bf16 matrices and activations by default, model/llama.h
  // "Precision"), the model's tp layers and the optimizer run over the groups' NCCL communicators, and
  // each micro-batch is copied to the GPU from page-locked memory without waiting (TrainStep).
  // --eval-metrics is CPU-only for now (the metrics read activations on the host).
  // `startup` continues train_main's timeline (from main's entry through MPI and the process groups):
  // Create marks device, data, model (allocation), weights (initialisation), optimizer and checkpoint
  // (--load), Run marks the first step, and rank 0 logs the breakdown then ("time to first step ...")
  // and writes it into that step's metrics.jsonl line ("startup": StartupTimeline::Json()). The default
  // starts one at the call (its "exec" is then the process's age at Create).
  static StatusOr<std::unique_ptr<Trainer>> Create(const TrainOptions& options, ProcessGroups* groups = nullptr,
                                                   StartupTimeline startup = StartupTimeline());
  ~Trainer();

  // Trains until --train-iters (from the loaded step when resuming), saving every --save-interval steps
  // and after the last one when --save is set. Stops early, after saving, when preemption is requested
  // (launch/preemption.h) or --exit-duration-in-mins passes: then preempted() is true.
  Status Run();
  // Writes a checkpoint of the current state to --save (collective over the world).
  Status Save();
  bool preempted() const { return preempted_; }
  int64_t step() const { return step_; }
  int64_t skipped_steps() const { return skipped_steps_; }  // --nan-policy skip, this run and resumed ones
  int64_t consumed_samples() const { return consumed_samples_; }
  // --eval-metrics: the paper's metrics of the last Validate (empty before one).
  const nlohmann::json& last_eval_metrics() const { return last_metrics_; }
  // One optimizer step (exposed for tests). A non-finite loss or gradient norm: FailedPrecondition
  // naming the step and the ranks whose loss was not finite (--nan-policy abort), or the step counts
  // as taken, its data as consumed, and no update is applied (--nan-policy skip; StepStats::skipped).
  // --comm-timeout-s: the collectives of a step are watched (parallel/watchdog.h).
  // Waiting for the device: the host samples every micro-batch into its own slot of host memory and
  // issues forward and backward without reading anything back (Llama::Forward with a losses view; each
  // micro-batch's losses also go into the optimizer's finiteness check on the device, so that all ranks
  // agree on a non-finite step: DistributedOptimizer::CheckFinite), then waits once, after the last
  // backward, inside DistributedOptimizer::ReduceGradients for the gradient norm; the losses have landed
  // in their host slots by then. One synchronous call per step, whatever the depth and the accumulation
  // (tests/launch/trainer_test.cc).
  StatusOr<StepStats> TrainStep();
  // Mean loss over eval_iters global batches of the held-out set (the same batches every time).
  double Validate();

  const Llama& model() const { return *model_; }
  const DistributedOptimizer& optimizer() const { return *optimizer_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }  // the model's (resolve_dtype)
  const LlamaConfig& config() const { return config_; }

 private:
  Trainer() = default;
  void Log(const StepStats& s, double elapsed_s, std::optional<double> val_loss);
  // --profile-steps: logs the op profiler's table of `steps` profiled steps that took `seconds` in all
  // (rank 0) and writes it to profile.txt next to metrics.jsonl.
  void ReportProfile(int64_t steps, double seconds);
  // --load: resolve, verify, check the model, load the optimizer units, restore the position.
  Status Load();
  // True on every rank when any rank saw a preemption signal or passed --exit-duration-in-mins.
  bool StopRequested();
  Comm* world() { return groups_ != nullptr && groups_->dims().world_size > 1 ? &groups_->world() : nullptr; }
  // The tp group for the model's tensors (NCCL on CUDA), or nullptr without tensor parallelism.
  Comm* device_tp() { return groups_ != nullptr && groups_->dims().tp > 1 ? &groups_->device_tp() : nullptr; }
  nlohmann::json ModelJson() const;
  CheckpointState CurrentState() const;  // what a checkpoint records now
  std::string MetricsFields() const;      // last_metrics_ as ", \"key\": value" JSON fields
  std::string MetricsSummary() const;     // the same for the log line
  // Mean of a per-rank value over the dp group (the value itself without dp).
  double MeanOverDp(double value);
  bool parallel() const { return groups_ != nullptr && groups_->dims().world_size > 1; }
  bool is_logger() const { return groups_ == nullptr || groups_->rank() == 0; }
  int world_rank() const { return groups_ == nullptr ? 0 : groups_->rank(); }
  // "1, 3" — the world ranks whose `local_loss` is not finite (collective over the world), or "".
  std::string NonFiniteRanks(double local_loss);

  TrainOptions options_;
  Device device_;
  DType dtype_ = DType::kF32;
  LlamaConfig config_;
  std::unique_ptr<Llama> model_;
  ProcessGroups* groups_ = nullptr;
  std::unique_ptr<LocalComm> local_dp_;              // the dp group of a single-process run
  std::unique_ptr<DistributedOptimizer> optimizer_;  // ZeRO-1 over dp (dp = 1: local_dp_)
  int64_t dp_rank_ = 0;
  LrSchedule schedule_;
  std::optional<IndexedDataset> train_data_, valid_data_;
  std::unique_ptr<GptSampler> train_sampler_, valid_sampler_;
  std::vector<int32_t> tokens_, targets_;  // one micro-batch, (mb, T), for Validate
  // TrainStep's host side, every micro-batch at its own offset so that no copy still in flight is
  // overwritten: tokens and targets (A, mb, T) i32, per-token losses (A, mb, T) f32, A = accumulation.
  // Page-locked on CUDA (pinned_, Buffer::AllocatePinned), so the copies do not wait; host vectors on
  // the CPU (host_ids_, host_losses_), where copy_async is a memcpy and the memory plan counts no Buffer.
  Buffer pinned_;
  std::vector<int32_t> host_ids_;
  std::vector<float> host_losses_;
  int32_t* step_tokens_ = nullptr;
  int32_t* step_targets_ = nullptr;
  float* step_losses_ = nullptr;
  int64_t consumed_samples_ = 0;
  int64_t step_ = 0;
  int64_t skipped_steps_ = 0;
  FaultInjection fault_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;  // --comm-timeout-s on a multi-rank job
  double peak_flops_ = 0;  // device peak for MFU, FLOP/s
  Timer since_start_;      // for --exit-duration-in-mins
  StartupTimeline startup_;  // until the first step of this run (Create)
  std::string startup_json_;  // written once, into the first step's metrics line
  int64_t saved_step_ = -1;
  bool preempted_ = false;
  nlohmann::json last_metrics_ = nlohmann::json::object();  // --eval-metrics of the last validation
  std::FILE* metrics_ = nullptr;
};

}  // namespace om
