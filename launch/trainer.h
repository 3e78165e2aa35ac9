// Trainer: builds the model, optimizer and data from TrainOptions and runs the training loop.
//   step: zero grads → for each micro-batch: forward, backward(1/accumulation) → global grad norm →
//         clip coefficient → lr schedule → optimizer step → log (stdout + metrics.jsonl)
// A non-finite loss or gradient norm stops the run with a Status naming the step (nothing is
// half-written: metrics lines are flushed as they are produced).
// RAII: the metrics file is flushed and closed on every exit path.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>

#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "launch/train_options.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace om {

struct StepStats {
  int64_t step = 0;  // 1-based, after the optimizer step
  double loss = 0, grad_norm = 0, lr = 0;
  double seconds = 0;  // wall time of this step
};

class Trainer {
 public:
  // Opens the data, checks it against the model config, builds everything. Bad input → Status.
  static StatusOr<std::unique_ptr<Trainer>> Create(const TrainOptions& options);
  ~Trainer();

  Status Run();
  // One optimizer step (exposed for tests). FailedPrecondition on a non-finite loss or norm.
  StatusOr<StepStats> TrainStep();
  // Mean loss over eval_iters global batches of the held-out set (the same batches every time).
  double Validate();

  const Llama& model() const { return *model_; }
  const LlamaConfig& config() const { return config_; }

 private:
  Trainer() = default;
  void Log(const StepStats& s, double elapsed_s, std::optional<double> val_loss);

  TrainOptions options_;
  LlamaConfig config_;
  std::unique_ptr<Llama> model_;
  std::unique_ptr<AdamW> optimizer_;
  LrSchedule schedule_;
  std::optional<IndexedDataset> train_data_, valid_data_;
  std::unique_ptr<GptSampler> train_sampler_, valid_sampler_;
  std::vector<int32_t> tokens_, targets_;  // one micro-batch, (mb, T)
  int64_t consumed_samples_ = 0;
  int64_t step_ = 0;
  double peak_flops_ = 0;  // device peak for MFU, FLOP/s
  std::FILE* metrics_ = nullptr;
};

}  // namespace om
