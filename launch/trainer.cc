#include "launch/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>

#include "core/log.h"
#include "core/profiler.h"
#include "core/timer.h"
#include "data/dataset_info.h"
#include "checkpoints/checkpoint.h"
#include "eval/metrics.h"
#include "launch/memory_plan.h"
#include "launch/preemption.h"
#include "optim/grad_clip.h"

namespace om {
namespace {

// fp32 FMA peak per core, by the CPU's widest FMA, as bench/kernels/fma_peak_bench measured it on every
// core at once: 222.5 GFLOP/s with AVX-512 (445 on the 2-core development machine: bench/results/
// 2026-11-28_cpu-2core_matmul.md), 95 with AVX2 only (187-192 on a 2-core AMD EPYC: bench/results/
// 2026-12-01_cpu-2core-avx2_fma_peak.md). Other CPUs differ; --peak-tflops overrides it.
bool cpu_has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") != 0;
#else
  return false;
#endif
}
double cpu_peak_flops_per_core() { return cpu_has_avx512() ? 222.5e9 : 95.0e9; }
const char* cpu_peak_source() {
  return cpu_has_avx512() ? "fp32 FMA peak per AVX-512 core x threads"
                          : "fp32 FMA peak per AVX2 core x threads: no AVX-512";
}
// The dense bf16 GEMM limit measured on the lent H200 (≈ 790 TFLOP/s, ../shared/ENVIRONMENT.md): MFU is
// quoted against what the product's bf16 path could reach; give --peak-tflops for another GPU.
constexpr double kCudaPeakFlops = 790e12;
// HBM3e bandwidth of the H200 (NVIDIA's datasheet: 4.8 TB/s), for the op profiler's GB/s column.
constexpr double kCudaPeakBytesPerS = 4.8e12;

std::string format_eta(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  return format_message("%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

StatusOr<IndexedDataset> open_dataset(const std::string& prefix, const std::string& flag) {
  StatusOr<IndexedDataset> d = IndexedDataset::Open(prefix);
  if (!d.ok()) return d.status().WithContext(flag + " '" + prefix + "'");
  return d;
}

}  // namespace

StatusOr<LlamaConfig> model_config_for(const TrainOptions& o) {
  // Preset, then the flags that override it, then the dataset's vocabulary.
  OM_ASSIGN_OR_RETURN(LlamaConfig c, LlamaConfig::Preset(o.model));
  OM_ASSIGN_OR_RETURN(c.attention, parse_attention_kind(o.attention));
  OM_ASSIGN_OR_RETURN(c.norm, parse_norm_kind(o.norm));
  if (o.seq_length > 0) c.seq_length = o.seq_length;
  StatusOr<DatasetInfo> info = read_dataset_info(o.data_path);
  if (!info.ok()) return info.status().WithContext("--data-path '" + o.data_path + "'");
  if (o.vocab_size > 0) {
    if (o.vocab_size < info->vocab_size) {
      return Status::InvalidArgument(format_message(
          "--vocab-size %ld is smaller than the tokenizer vocabulary of --data-path '%s' (%ld); omit --vocab-size",
          o.vocab_size, o.data_path.c_str(), static_cast<long>(info->vocab_size)));
    }
    c.vocab_size = o.vocab_size;
  } else {
    c.vocab_size = info->vocab_size;
  }
  c.name = o.model;
  OM_RETURN_IF_ERROR(c.Validate());
  return c;
}

StatusOr<OptimizerConfig> optimizer_config_for(const TrainOptions& o) {
  OptimizerConfig opt;
  opt.adam = AdamWConfig{o.adam_beta1, o.adam_beta2, o.adam_eps, o.weight_decay};
  OM_ASSIGN_OR_RETURN(opt.kind, parse_optimizer_kind(o.optimizer));
  OM_ASSIGN_OR_RETURN(opt.transform, parse_ortho_transform(o.ortho_transform));
  opt.block = o.ortho_block;
  opt.seed = o.seed;
  opt.rotate_precision = o.ortho_precision == "tf32" ? RotatePrecision::kTF32 : RotatePrecision::kF32;
  opt.grad_bucket = o.overlap_grad_reduce ? o.ddp_bucket_size : 0;
  return opt;
}

StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainOptions& o, ProcessGroups* groups,
                                                   StartupTimeline startup) {
  std::unique_ptr<Trainer> t(new Trainer());
  t->startup_ = std::move(startup);
  t->options_ = o;
  t->groups_ = groups;
  if (groups != nullptr) {
    const ParallelDims& d = groups->dims();
    if (d.tp != o.tp || d.dp != o.dp) {
      return Status::InvalidArgument(
          format_message("--tp %ld --dp %ld do not match the process groups (tp %ld, dp %ld)", o.tp, o.dp,
                         static_cast<long>(d.tp), static_cast<long>(d.dp)));
    }
    t->dp_rank_ = groups->dp_rank();
  }
  OM_ASSIGN_OR_RETURN(t->fault_, parse_fault(o.inject_fault));
  if (groups != nullptr && groups->dims().world_size > 1 && o.comm_timeout_s > 0) {
    t->watchdog_ = std::make_unique<CollectiveWatchdog>(o.comm_timeout_s, process_identity());
  }
  if (groups != nullptr) {
    t->device_ = groups->device();
  } else {
    OM_ASSIGN_OR_RETURN(t->device_, resolve_device(o.device, 0));
  }
  OM_ASSIGN_OR_RETURN(t->dtype_, resolve_dtype(o.dtype, t->device_));
  if (t->device_.kind == DeviceKind::kCuda && o.eval_metrics) {
    return Status::InvalidArgument("--eval-metrics runs on the CPU only for now: train with --device cpu, or drop "
                                   "--eval-metrics and run ortho_eval on the checkpoints");
  }
  OM_RETURN_IF_ERROR(validate_train_options(o, groups != nullptr ? static_cast<int>(groups->dims().world_size) : 1));
  if (o.threads > 0) omp_set_num_threads(o.threads);
  t->startup_.Mark("device");

  OM_ASSIGN_OR_RETURN(t->config_, model_config_for(o));
  OM_ASSIGN_OR_RETURN(DatasetInfo info, read_dataset_info(o.data_path));
  if (groups != nullptr) {
    OM_RETURN_IF_ERROR(groups->dims().ValidateModel(t->config_.n_heads, t->config_.ffn, t->config_.vocab_size));
  }

  OM_ASSIGN_OR_RETURN(IndexedDataset train, open_dataset(o.data_path, "--data-path"));
  t->train_data_.emplace(std::move(train));
  OM_RETURN_IF_ERROR(verify_dataset_info(o.data_path, info, *t->train_data_));
  if (t->train_data_->num_tokens() < t->config_.seq_length + 1) {
    return Status::InvalidArgument(format_message("--data-path '%s' holds %ld tokens, fewer than one sequence of "
                                                  "--seq-length %ld + 1; use more text or a shorter --seq-length",
                                                  o.data_path.c_str(), t->train_data_->num_tokens(),
                                                  t->config_.seq_length));
  }
  if (o.bos && info.bos_id < 0) {
    return Status::InvalidArgument("--bos: the tokenizer of --data-path '" + o.data_path + "' (" + info.tokenizer_model +
                                   ") has no <s> piece; train the tokenizer with ortho_data tokenizer-train, or drop --bos");
  }
  const int32_t bos_id = o.bos ? info.bos_id : -1;  // the samplers keep it (GptSampler::bos_id)
  t->train_sampler_ = std::make_unique<GptSampler>(*t->train_data_, t->config_.seq_length, o.seed, bos_id);
  if (!o.valid_data_path.empty()) {
    OM_ASSIGN_OR_RETURN(DatasetInfo vinfo, read_dataset_info(o.valid_data_path));
    if (vinfo.vocab_size != info.vocab_size || vinfo.tokenizer_fnv1a64 != info.tokenizer_fnv1a64) {
      return Status::FailedPrecondition("--valid-data-path '" + o.valid_data_path + "' was tokenized with '" +
                                        vinfo.tokenizer_model + "', --data-path '" + o.data_path + "' with '" +
                                        info.tokenizer_model + "' (different files); preprocess both with one tokenizer");
    }
    OM_ASSIGN_OR_RETURN(IndexedDataset valid, open_dataset(o.valid_data_path, "--valid-data-path"));
    OM_RETURN_IF_ERROR(verify_dataset_info(o.valid_data_path, vinfo, valid));
    if (valid.num_tokens() < t->config_.seq_length + 1) {
      return Status::InvalidArgument("--valid-data-path '" + o.valid_data_path +
                                     "' holds fewer tokens than one sequence; use a larger held-out fraction");
    }
    t->valid_data_.emplace(std::move(valid));
    // The held-out order is fixed (seed 0) so every validation sees the same batches.
    t->valid_sampler_ = std::make_unique<GptSampler>(*t->valid_data_, t->config_.seq_length, 0, bos_id);
  }

  t->startup_.Mark("data");
  // A run too large for its device is refused here, before any of it is allocated (launch/memory_plan.h).
  // Where the plan or the free memory cannot be had, the checks below and the allocations report instead.
  if (StatusOr<MemoryPlan> plan = plan_training_memory(o, t->device_); plan.ok()) {
    if (StatusOr<size_t> free = available_bytes(t->device_); free.ok()) {
      const bool host = t->device_.kind == DeviceKind::kCpu;
      OM_RETURN_IF_ERROR(check_memory_fits(*plan, *free, host && groups != nullptr ? groups->local_size() : 1));
    }
  }
  Comm* tp = t->device_tp();
  t->model_ = std::make_unique<Llama>(t->config_, o.micro_batch_size, t->device_, t->dtype_, tp);
  t->startup_.Mark("model");
  t->model_->Initialize(o.seed);
  t->startup_.Mark("weights");
  if (o.cuda_graphs) {
    if (t->device_.kind != DeviceKind::kCuda) {
      return Status::InvalidArgument("--cuda-graphs needs a GPU, but this rank trains on " + device_name(t->device_) +
                                     " (--device " + o.device + "); drop --cuda-graphs or run on a GPU node");
    }
    t->model_->set_cuda_graphs(true);
  }
  OM_ASSIGN_OR_RETURN(OptimizerConfig opt, optimizer_config_for(o));
  // A GPU rank's host cores are idle: OrthoAdam draws its rotations there while the rest starts
  // (DistributedOptimizer::AwaitRotations). On the CPU those cores are the device, so it draws them first.
  opt.background_rotations = t->device_.kind == DeviceKind::kCuda;
  if (opt.rotate_precision == RotatePrecision::kTF32 && t->device_.kind != DeviceKind::kCuda) {
    return Status::InvalidArgument("--ortho-precision tf32 needs a GPU's tensor cores, but this rank trains on " +
                                   device_name(t->device_) + " (--device " + o.device +
                                   "); use --ortho-precision fp32 or run on a GPU node");
  }
  Comm* dp = nullptr;
  if (t->parallel()) {
    dp = &groups->device_dp();
  } else {
    t->local_dp_ = std::make_unique<LocalComm>("dp");
    dp = t->local_dp_.get();
  }
  t->optimizer_ = std::make_unique<DistributedOptimizer>(t->model_->parameters(), opt, *dp, tp,
                                                         t->model_->tp_replicated());
  t->startup_.Mark("optimizer");
  t->schedule_ = LrSchedule{o.lr, o.min_lr, o.lr_warmup_iters, o.lr_decay_iters};
  OM_RETURN_IF_ERROR(t->schedule_.Validate());
  if (!o.load.empty()) {
    OM_RETURN_IF_ERROR(t->Load());
    t->startup_.Mark("checkpoint");
  }
  const size_t n = static_cast<size_t>(o.micro_batch_size * t->config_.seq_length);
  t->tokens_.resize(n);
  t->targets_.resize(n);
  const bool cuda = t->device_.kind == DeviceKind::kCuda;
  const size_t step_n = n * static_cast<size_t>(o.accumulation_steps());
  if (cuda) {
    t->pinned_ = Buffer::AllocatePinned(step_n * (2 * sizeof(int32_t) + sizeof(float)), "step batch and losses (host)");
    t->step_tokens_ = static_cast<int32_t*>(t->pinned_.data());
    t->step_targets_ = t->step_tokens_ + step_n;
    t->step_losses_ = reinterpret_cast<float*>(t->step_targets_ + step_n);
  } else {
    t->host_ids_.resize(2 * step_n);
    t->host_losses_.resize(step_n);
    t->step_tokens_ = t->host_ids_.data();
    t->step_targets_ = t->host_ids_.data() + step_n;
    t->step_losses_ = t->host_losses_.data();
  }
  t->peak_flops_ = o.peak_tflops > 0 ? o.peak_tflops * 1e12
                   : cuda            ? kCudaPeakFlops
                                     : cpu_peak_flops_per_core() * omp_get_max_threads();
  // The logged throughput is the job's (global batch tokens per second), so MFU is against every rank.
  if (t->parallel()) t->peak_flops_ *= static_cast<double>(groups->dims().world_size);

  const std::string dir = !o.save.empty() ? o.save : o.log_dir;
  if (!dir.empty() && t->is_logger()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError("--save/--log-dir '" + dir + "': cannot create the directory: " + ec.message());
    const std::string path = dir + "/metrics.jsonl";
    t->metrics_ = std::fopen(path.c_str(), "a");
    if (t->metrics_ == nullptr) return Status::IOError("cannot open '" + path + "' for appending");
  }

  if (!t->is_logger()) return t;
  OM_LOG_INFO("model %s", t->config_.ToString().c_str());
  const DistributedOptimizer& op = *t->optimizer_;
  OM_LOG_INFO("optimizer %s%s: %zu units of <= %ld rows; %.1f MiB of state on this rank (master, m, v%s)",
              std::string(optimizer_kind_name(opt.kind)).c_str(),
              opt.kind == OptimizerKind::kOrthoAdam
                  ? (" (" + std::string(ortho_transform_name(opt.transform)) + " rotations" +
                     (opt.rotate_precision == RotatePrecision::kTF32 ? ", tf32" : "") + ")")
                        .c_str()
                  : "",
              op.units().size(), static_cast<long>(opt.block),
              static_cast<double>(3 * op.shard_size() * 4 + op.rotation_bytes()) / (1 << 20),
              op.rotation_bytes() > 0 ? format_message(", %.1f MiB rotations", static_cast<double>(op.rotation_bytes()) /
                                                                                   (1 << 20)).c_str()
                                      : "");
  if (t->parallel()) {
    OM_LOG_INFO("parallel: tp %ld x dp %ld = %ld ranks; ZeRO-1 optimizer over dp; padded vocabulary %ld",
                static_cast<long>(groups->dims().tp), static_cast<long>(groups->dims().dp),
                static_cast<long>(groups->dims().world_size), static_cast<long>(t->model_->padded_vocab()));
  }
  if (op.overlaps()) {
    OM_LOG_INFO("--overlap-grad-reduce: %zu gradient buckets (--ddp-bucket-size %ld), each reduced during the last "
                "backward as soon as it is complete", op.buckets(), static_cast<long>(o.ddp_bucket_size));
  } else if (o.overlap_grad_reduce) {
    OM_LOG_INFO("--overlap-grad-reduce has no effect at dp 1 (there is nothing to reduce)");
  }
  OM_LOG_INFO("data %s: %ld documents, %ld tokens, %ld samples of %ld+1 tokens per epoch", o.data_path.c_str(),
              t->train_data_->num_documents(), t->train_data_->num_tokens(), t->train_sampler_->samples_per_epoch(),
              t->config_.seq_length);
  OM_LOG_INFO("batch: global %ld = micro %ld x accumulation %ld x dp %ld; %ld steps, lr %g -> %g, warm-up %ld",
              o.global_batch_size, o.micro_batch_size, o.accumulation_steps(), o.dp, o.train_iters, o.lr, o.min_lr,
              o.lr_warmup_iters);
  const char* peak_source = o.peak_tflops > 0 ? "--peak-tflops"
                            : cuda            ? "the H200 bf16 GEMM limit; --peak-tflops for other GPUs"
                                              : cpu_peak_source();
  OM_LOG_INFO("device %s, %s; memory %.1f MiB (parameters, gradients, activations); %d threads; MFU against %.1f "
              "GFLOP/s (%s%s)",
              device_name(t->device_).c_str(),
              t->dtype_ == DType::kBF16 ? "bf16 (f32 gradients and master weights)" : "f32",
              static_cast<double>(t->model_->memory_bytes()) / (1 << 20),
              omp_get_max_threads(), t->peak_flops_ / 1e9, peak_source, t->parallel() ? " x ranks" : "");
  return t;
}

Trainer::~Trainer() {
  if (metrics_) std::fclose(metrics_);
}

StatusOr<StepStats> Trainer::TrainStep() {
  Timer timer;
  const int64_t accumulation = options_.accumulation_steps();
  const int64_t T = config_.seq_length, mb = options_.micro_batch_size;
  collective_record::set_step(step_ + 1);
  // The hang watchdog's idle rule applies inside the step only (parallel/watchdog.h).
  collective_record::arm();
  struct Disarm {
    ~Disarm() { collective_record::disarm(); }
  } disarm;
  if (fault_.kind == FaultInjection::Kind::kHang && fault_.Applies(step_ + 1, world_rank())) {
    OM_LOG_WARN("--inject-fault: rank %d sleeps for an hour in step %ld", world_rank(), step_ + 1);
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
  model_->ZeroGrad();
  // Nothing is read back inside the loop: each micro-batch has its own slots (see trainer.h).
  const int64_t n = mb * T;
  std::vector<int64_t> target_counts(static_cast<size_t>(accumulation));
  const bool inject_nan = fault_.kind == FaultInjection::Kind::kNan && fault_.Applies(step_ + 1, world_rank());
  for (int64_t micro = 0; micro < accumulation; ++micro) {
    int32_t* tok = step_tokens_ + micro * n;
    int32_t* tgt = step_targets_ + micro * n;
    train_sampler_->MicroBatch(consumed_samples_, micro, mb, dp_rank_, options_.dp, {tok, static_cast<size_t>(n)},
                               {tgt, static_cast<size_t>(n)});
    const bool last = micro == accumulation - 1;
    if (last && inject_nan) {
      // Into layer 0's qkv weight gradient, before the last backward adds to it (so NaN stays, and is there
      // before --overlap-grad-reduce reduces it): every tp rank holds its own slice, always in an optimizer
      // unit and counted by the norm (an embedding row may be vocabulary padding, a norm gain is counted on
      // tp rank 0 only).
      const float nan = std::numeric_limits<float>::quiet_NaN();
      for (const Parameter& p : model_->parameters()) {
        if (p.name.find("qkv") == std::string::npos) continue;
        copy_bytes(p.grad.data, p.grad.device, &nan, Device::Cpu(), sizeof nan);
        break;
      }
    }
    // --overlap-grad-reduce: the last backward reduces each gradient bucket as soon as it is final.
    if (last && optimizer_->overlaps()) {
      model_->set_grad_ready([this](size_t first, size_t count) { optimizer_->GradientsReady(first, count); });
    }
    // Forward then Backward (with --cuda-graphs replayed from a CUDA graph: Llama::ForwardBackward).
    model_->ForwardBackward(make_view(tok, DType::kI32, {mb, T}, Device::Cpu(), "batch.tokens"),
                            make_view(tgt, DType::kI32, {mb, T}, Device::Cpu(), "batch.targets"),
                            make_view(step_losses_ + micro * n, DType::kF32, {mb, T}, Device::Cpu(), "batch.losses"),
                            1.0f / static_cast<float>(accumulation));
    model_->set_grad_ready({});
    target_counts[static_cast<size_t>(micro)] = model_->target_count();
    // A non-finite loss anywhere poisons the global norm (below), checked on the device: no wait here.
    optimizer_->CheckFinite(model_->last_losses());
  }
  // The global norm counts every logical element once across the world (ZeRO-1: over dp shards and
  // tp ranks); the loss is the mean over dp replicas of their micro-batch means.
  // A non-finite local loss poisons the global norm (CheckFinite above), so every rank of the world sees
  // a non-finite norm and takes the same branch below: the mean loss is only over dp, so a tp rank's own
  // NaN would otherwise send the ranks down different paths (a deadlock in the next collective).
  // The step's one wait, inside ReduceGradients (the norm is read back): the losses copied into the host
  // slots before it have landed too. Each micro-batch's mean as Llama::Forward(tokens, targets) returns it.
  const double norm = optimizer_->ReduceGradients();
  double loss = 0.0;
  for (int64_t micro = 0; micro < accumulation; ++micro) {
    const ConstTensorView losses = make_view(step_losses_ + micro * n, DType::kF32, {n}, Device::Cpu(), "batch.losses");
    loss += Llama::MeanLoss(losses, target_counts[static_cast<size_t>(micro)]) / static_cast<double>(accumulation);
  }
  if (inject_nan) loss = std::numeric_limits<double>::quiet_NaN();
  const double local_loss = loss;
  loss = MeanOverDp(loss);
  const float lr = schedule_.At(step_);
  if (!std::isfinite(loss) || !std::isfinite(norm)) {
    const std::string ranks = NonFiniteRanks(local_loss);
    const std::string where =
        ranks.empty() ? "every rank's own loss was finite, so a gradient overflowed"
                      : "the loss was not finite on rank(s) " + ranks + (parallel() ? " of the world" : "");
    if (options_.nan_policy != "skip") {
      return Status::FailedPrecondition(format_message(
          "step %ld: loss %g, gradient norm %g are not finite (%s); no update was applied. Lower --lr, set "
          "--clip-grad, check the data, or pass --nan-policy skip to drop such steps",
          step_ + 1, loss, norm, where.c_str()));
    }
    ++skipped_steps_;
    consumed_samples_ += options_.global_batch_size;
    ++step_;
    if (is_logger()) {
      OM_LOG_WARN("step %ld skipped (--nan-policy skip): loss %g, gradient norm %g (%s); %ld step(s) skipped so far",
                  step_, loss, norm, where.c_str(), skipped_steps_);
    }
    return StepStats{step_, loss, norm, lr, timer.Seconds(), true};
  }
  const float coef = clip_coefficient(norm, options_.clip_grad);
  if (optimizer_->rotations_pending()) {  // OrthoAdam's first step waits for its background draw: host
    collective_record::disarm();          // work, not a stuck rank, so the watchdog's idle rule is off
    optimizer_->AwaitRotations();
    collective_record::arm();
  }
  optimizer_->Step(lr, coef);
  consumed_samples_ += options_.global_batch_size;
  ++step_;
  return StepStats{step_, loss, norm, lr, timer.Seconds()};
}

namespace {

// --eval-metrics: feeds the validation forward passes to the paper's metrics (eval/metrics.h). A tp rank
// holds heads [head0, head0 + Hl); the residual stream is the same on every tp rank, so only tp rank 0
// counts it.
class ValidationProbe final : public ForwardProbe {
 public:
  ValidationProbe(MetricsAccumulator& m, int64_t head0, bool hidden) : m_(m), head0_(head0), hidden_(hidden) {}
  bool wants_attention() const override { return true; }
  void OnAttention(int64_t layer, ConstTensorView probs) override { m_.AddAttention(layer, probs, head0_); }
  void OnBlockOutput(int64_t layer, ConstTensorView x) override {
    if (hidden_) m_.AddHidden(layer, x);
  }

 private:
  MetricsAccumulator& m_;
  int64_t head0_;
  bool hidden_;
};

}  // namespace

double Trainer::Validate() {
  const int64_t T = config_.seq_length, mb = options_.micro_batch_size;
  const int64_t accumulation = options_.accumulation_steps();
  double sum = 0.0;
  int64_t count = 0;
  std::optional<MetricsAccumulator> metrics;
  std::optional<ValidationProbe> probe;
  if (options_.eval_metrics) {
    const int64_t Hl = config_.n_heads / model_->tp_size();
    metrics.emplace(config_.n_layers, config_.n_heads, T);
    probe.emplace(*metrics, model_->tp_rank() * Hl, model_->tp_rank() == 0);
    model_->set_probe(&*probe);
  }
  for (int64_t batch = 0; batch < options_.eval_iters; ++batch) {
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      valid_sampler_->MicroBatch(batch * options_.global_batch_size, micro, mb, dp_rank_, options_.dp, tokens_,
                                 targets_);
      const ConstTensorView tok = make_view(tokens_.data(), DType::kI32, {mb, T}, Device::Cpu(), "valid.tokens");
      const ConstTensorView tgt = make_view(targets_.data(), DType::kI32, {mb, T}, Device::Cpu(), "valid.targets");
      sum += model_->Forward(tok, tgt);
      ++count;
    }
  }
  if (metrics) {
    model_->set_probe(nullptr);
    if (Comm* w = world()) metrics->Reduce(*w);
    EvalReport r;
    metrics->Fill(r);
    last_metrics_ = {{"first_token_mass", r.first_mass_overall}, {"first_token_argmax", r.first_argmax_overall},
                     {"first_token_chance", r.chance},         {"kurtosis_first", r.kurtosis_first_mean},
                     {"kurtosis_rest", r.kurtosis_rest_mean},  {"maxabs_first", r.maxabs_first_mean},
                     {"maxabs_rest", r.maxabs_rest_mean}};
  }
  return MeanOverDp(sum / static_cast<double>(count));
}

std::string Trainer::NonFiniteRanks(double local_loss) {
  const int n = parallel() ? static_cast<int>(groups_->dims().world_size) : 1;
  std::vector<double> flags(static_cast<size_t>(n), 0.0);
  double mine = std::isfinite(local_loss) ? 0.0 : 1.0;
  if (Comm* w = world()) {
    w->all_gather(make_view(&mine, DType::kF64, Shape{1}, Device::Cpu(), "nonfinite"),
                  make_view(flags.data(), DType::kF64, Shape{n}, Device::Cpu(), "nonfinite.all"));
  } else {
    flags[0] = mine;
  }
  std::string out;
  for (int r = 0; r < n; ++r) {
    if (flags[static_cast<size_t>(r)] > 0) out += (out.empty() ? "" : ", ") + std::to_string(r);
  }
  return out;
}

double Trainer::MeanOverDp(double value) {
  if (groups_ == nullptr || groups_->dims().dp == 1) return value;
  double v = value;
  groups_->dp().all_reduce(make_view(&v, DType::kF64, Shape{1}, Device::Cpu(), "loss"), ReduceOp::kSum);
  return v / static_cast<double>(groups_->dims().dp);
}

void Trainer::Log(const StepStats& s, double elapsed_s, std::optional<double> val_loss) {
  const double tokens = static_cast<double>(options_.global_batch_size * config_.seq_length);
  const double tokens_per_s = tokens / s.seconds;
  const double flops = config_.flops_per_token() * tokens_per_s;  // achieved FLOP/s
  const double mfu = flops / peak_flops_;
  const double eta = s.seconds * static_cast<double>(options_.train_iters - s.step);
  if (!is_logger()) return;
  if (s.step % options_.log_interval == 0 || s.step == options_.train_iters || val_loss) {
    OM_LOG_INFO("step %6ld/%ld | loss %.4f | lr %.3e | grad-norm %.3f | %.0f tok/s | %.3f TFLOP/s | MFU %.1f%% | "
                "mem %.0f MiB | ETA %s%s",
                s.step, options_.train_iters, s.loss, s.lr, s.grad_norm, tokens_per_s, flops / 1e12, 100 * mfu,
                static_cast<double>(model_->memory_bytes()) / (1 << 20), format_eta(eta).c_str(),
                val_loss ? (format_message(" | val loss %.4f", *val_loss) + MetricsSummary()).c_str() : "");
  }
  if (metrics_) {
    // JSON has no NaN or Infinity: a non-finite loss or norm (a skipped step) is written as null.
    const auto number = [](const char* fmt, double v) { return std::isfinite(v) ? format_message(fmt, v) : "null"; };
    std::fprintf(metrics_,
                 "{\"step\": %ld, \"loss\": %s, \"lr\": %.6e, \"grad_norm\": %s, \"tokens_per_s\": %.1f, "
                 "\"tflops\": %.6f, \"mfu\": %.6f, \"elapsed_s\": %.3f, \"skipped_steps\": %ld%s%s%s}\n",
                 s.step, number("%.6f", s.loss).c_str(), s.lr, number("%.6f", s.grad_norm).c_str(), tokens_per_s,
                 flops / 1e12, mfu, elapsed_s, skipped_steps_, s.skipped ? ", \"skipped\": true" : "",
                 val_loss ? (format_message(", \"val_loss\": %.6f", *val_loss) + MetricsFields()).c_str() : "",
                 startup_json_.empty() ? "" : (", \"startup\": " + startup_json_).c_str());
    startup_json_.clear();
    std::fflush(metrics_);
  }
}

void Trainer::ReportProfile(int64_t steps, double seconds) {
  const std::vector<profiler::OpStats> ops = profiler::Collect();
  const std::vector<profiler::OpStats> details = profiler::CollectDetails();
  if (!is_logger()) return;
  const double world = parallel() ? static_cast<double>(groups_->dims().world_size) : 1.0;
  const std::string table =
      profiler::FormatTable(ops, steps, seconds / static_cast<double>(steps), peak_flops_ / world,
                            device_.kind == DeviceKind::kCuda ? kCudaPeakBytesPerS : 0.0, details);
  OM_LOG_INFO("--profile-steps: %ld step(s) of %.1f ms on %s (%s), rank 0; device time per op (core/profiler.h):",
              steps, 1e3 * seconds / static_cast<double>(steps), device_name(device_).c_str(),
              std::string(dtype_name(dtype_)).c_str());
  for (size_t at = 0; at < table.size();) {
    const size_t end = table.find('\n', at);
    OM_LOG_INFO("  %s", table.substr(at, end - at).c_str());
    at = end + 1;
  }
  const std::string dir = !options_.save.empty() ? options_.save : options_.log_dir;
  if (dir.empty()) return;
  const std::string path = dir + "/profile.txt";
  if (std::FILE* f = std::fopen(path.c_str(), "w")) {
    std::fprintf(f, "# ortho_megatron --profile-steps: %ld step(s), model %s, %s, micro-batch %ld, device %s\n%s",
                 steps, config_.ToString().c_str(), std::string(dtype_name(dtype_)).c_str(), options_.micro_batch_size,
                 device_name(device_).c_str(), table.c_str());
    std::fclose(f);
  } else {
    OM_LOG_WARN("--profile-steps: cannot write '%s'; the table is in the log above", path.c_str());
  }
}

Status Trainer::Run() {
  Timer total;
  const int64_t first = step_;
  // --profile-steps N: steps first + 2 .. first + N + 1 (the first step warms up: allocations, cuBLASLt
  // heuristics), TrainStep only (validation and saves are not counted).
  int64_t profiled = 0;
  double profiled_seconds = 0;
  while (step_ < options_.train_iters) {
    const bool profiling = profiled < options_.profile_steps && step_ > first;
    if (profiling && profiled == 0) profiler::Reset();
    profiler::set_enabled(profiling);
    StatusOr<StepStats> stepped = TrainStep();
    profiler::set_enabled(false);
    OM_RETURN_IF_ERROR(stepped.status());
    const StepStats s = *stepped;
    if (step_ == first + 1) {
      startup_.Mark("first step");
      if (optimizer_->rotation_bytes() > 0) {  // OrthoAdam: the draw's own time, inside or beside the phases
        optimizer_->AwaitRotations();          // done by the step's update (not after a skipped step)
        startup_.Note("rotations drawn", optimizer_->rotation_draw_seconds());
        if (optimizer_->config().background_rotations) {
          startup_.Note("rotations waited", optimizer_->rotation_wait_seconds());
        }
      }
      startup_json_ = startup_.Json();
      if (is_logger()) OM_LOG_INFO("time to first step %s", startup_.Summary().c_str());
    }
    if (profiling) {
      profiled_seconds += s.seconds;
      if (++profiled == options_.profile_steps) ReportProfile(profiled, profiled_seconds);
    }
    std::optional<double> val;
    const bool last = s.step == options_.train_iters;
    if (valid_sampler_ && (last || (options_.eval_interval > 0 && s.step % options_.eval_interval == 0))) {
      val = Validate();
    }
    Log(s, total.Seconds(), val);
    if (options_.save_interval > 0 && step_ % options_.save_interval == 0) OM_RETURN_IF_ERROR(Save());
    if (!last && StopRequested()) {
      if (!options_.save.empty() && saved_step_ != step_) OM_RETURN_IF_ERROR(Save());
      preempted_ = true;
      if (is_logger()) {
        OM_LOG_INFO("stopping at step %ld (a preemption signal or --exit-duration-in-mins); exit code %d asks for a "
                    "requeue that resumes with --load",
                    step_, kPreemptedExitCode);
      }
      return Status::Ok();
    }
  }
  if (profiled > 0 && profiled < options_.profile_steps) ReportProfile(profiled, profiled_seconds);
  if (options_.profile_steps > 0 && profiled == 0 && is_logger()) {
    OM_LOG_WARN("--profile-steps: no step after the first one in this run; nothing was profiled");
  }
  if (!options_.save.empty() && saved_step_ != step_) OM_RETURN_IF_ERROR(Save());
  if (is_logger()) {
    OM_LOG_INFO("done: %ld steps (%ld in this run), %ld samples in %.1f s", step_, step_ - first, consumed_samples_,
                total.Seconds());
    if (model_->cuda_graphs()) {
      const Llama::GraphCounts g = model_->graph_counts();
      OM_LOG_INFO("--cuda-graphs: %ld micro-batch(es) replayed from %ld captured graph(s), %ld run eagerly (warm-up, "
                  "profiled steps)", g.launches, g.captures, g.eager);
    }
    if (optimizer_->overlaps()) {
      OM_LOG_INFO("--overlap-grad-reduce: %ld gradient bucket reduction(s) issued during the backward, %ld after it",
                  static_cast<long>(optimizer_->buckets_overlapped()),
                  static_cast<long>(optimizer_->buckets_after_backward()));
    }
  }
  return Status::Ok();
}

std::string Trainer::MetricsSummary() const {
  if (last_metrics_.empty()) return "";
  return format_message(" | first-token attn %.1f%% (chance %.1f%%) | kurtosis %.2f first, %.2f rest",
                        100 * last_metrics_["first_token_mass"].get<double>(),
                        100 * last_metrics_["first_token_chance"].get<double>(),
                        last_metrics_["kurtosis_first"].get<double>(), last_metrics_["kurtosis_rest"].get<double>());
}

std::string Trainer::MetricsFields() const {
  std::string out;
  for (auto it = last_metrics_.begin(); it != last_metrics_.end(); ++it)
    out += format_message(", \"%s\": %.6g", it.key().c_str(), it.value().get<double>());
  return out;
}

bool Trainer::StopRequested() {
  const bool timed_out =
      options_.exit_duration_in_mins > 0 && since_start_.Seconds() > 60.0 * options_.exit_duration_in_mins;
  double flag = preemption_requested() || timed_out ? 1.0 : 0.0;
  if (Comm* w = world()) w->all_reduce(make_view(&flag, DType::kF64, Shape{1}, Device::Cpu(), "stop"), ReduceOp::kMax);
  return flag > 0.0;
}

nlohmann::json Trainer::ModelJson() const {
  return {{"name", config_.name},         {"vocab_size", config_.vocab_size}, {"hidden", config_.hidden},
          {"ffn", config_.ffn},           {"n_heads", config_.n_heads},       {"n_layers", config_.n_layers},
          {"seq_length", config_.seq_length}, {"attention", attention_kind_name(config_.attention)},
          {"norm", norm_kind_name(config_.norm)}};
}

namespace {

// A float as the shortest decimal that reads back as the same float (0.9f → 0.9, not 0.8999999761…).
double short_decimal(float f) {
  for (int digits = 6; digits <= 9; ++digits) {
    const double d = std::strtod(format_message("%.*g", digits, static_cast<double>(f)).c_str(), nullptr);
    if (static_cast<float>(d) == f) return d;
  }
  return static_cast<double>(f);
}

}  // namespace

CheckpointState Trainer::CurrentState() const {
  const OptimizerConfig& oc = optimizer_->config();
  CheckpointState st;
  st.step = step_;
  st.consumed_samples = consumed_samples_;
  st.skipped_steps = skipped_steps_;
  st.model = ModelJson();
  st.optimizer = {{"kind", optimizer_kind_name(oc.kind)}, {"transform", ortho_transform_name(oc.transform)},
                  {"block", oc.block}, {"seed", oc.seed}, {"beta1", short_decimal(oc.adam.beta1)},
                  {"beta2", short_decimal(oc.adam.beta2)}, {"eps", short_decimal(oc.adam.eps)},
                  {"weight_decay", short_decimal(oc.adam.weight_decay)}};
  st.schedule = {{"lr", short_decimal(schedule_.lr)},
                 {"min_lr", short_decimal(schedule_.min_lr)},
                 {"warmup_iters", schedule_.warmup_iters},
                 {"decay_iters", schedule_.decay_iters}, {"train_iters", options_.train_iters}};
  st.data = {{"seed", options_.seed}, {"global_batch_size", options_.global_batch_size},
             {"data_path", options_.data_path}, {"bos", options_.bos}};
  return st;
}

Status Trainer::Save() {
  Timer timer;
  const CheckpointState st = CurrentState();
  CheckpointLayout layout;
  if (groups_ != nullptr) {
    layout = {static_cast<int>(groups_->dims().tp), static_cast<int>(groups_->dims().dp), groups_->tp_rank(),
              groups_->dp_rank()};
  }
  OM_ASSIGN_OR_RETURN(std::string path,
                      save_checkpoint(options_.save, static_cast<int>(options_.save_keep), st, *optimizer_, layout, world()));
  saved_step_ = step_;
  if (is_logger()) OM_LOG_INFO("saved checkpoint %s in %.2f s", path.c_str(), timer.Seconds());
  return Status::Ok();
}

Status Trainer::Load() {
  const TrainOptions& o = options_;
  StatusOr<std::string> dir = resolve_checkpoint(o.load);
  if (!dir.ok()) {
    std::error_code ec;
    // Nothing to resume: the directory is new (the auto-resume pattern --load DIR --save DIR on a job's
    // first run) or empty. Anything else without a checkpoint (a typo, leftovers of a failed save in
    // another directory) is an error rather than a silent restart.
    const bool fresh = dir.status().code() == StatusCode::kNotFound &&
                       (o.load == o.save || (std::filesystem::is_directory(o.load, ec) &&
                                             std::filesystem::is_empty(o.load, ec)));
    if (!fresh) return dir.status().WithContext("--load");
    // The auto-resume pattern (--load DIR --save DIR): the first run of a job finds nothing yet.
    if (is_logger()) OM_LOG_INFO("--load '%s' holds no checkpoint yet: starting from step 0", o.load.c_str());
    return Status::Ok();
  }
  OM_ASSIGN_OR_RETURN(nlohmann::json manifest, read_manifest(*dir));
  // One rank reads every file for the checksums; all learn the outcome.
  Status verified = Status::Ok();
  if (groups_ == nullptr || groups_->rank() == 0) verified = verify_checkpoint(*dir, manifest);
  double bad = verified.ok() ? 0.0 : 1.0;
  if (Comm* w = world()) w->all_reduce(make_view(&bad, DType::kF64, Shape{1}, Device::Cpu(), "verify"), ReduceOp::kMax);
  if (!verified.ok()) return verified.WithContext("--load");
  if (bad > 0.0) return Status::Corruption("--load '" + *dir + "' failed its checksum check (see rank 0's message)");

  const std::vector<std::string> diff = manifest_mismatches(manifest, ModelJson(), "model");
  if (!diff.empty()) {
    std::string m = "--load '" + *dir + "' was saved from another model:";
    for (const std::string& d : diff) m += "\n  " + d;
    return Status::FailedPrecondition(m + "\nUse the checkpoint's --model/--attention/--norm/--seq-length and data, or "
                                          "start without --load");
  }
  OM_ASSIGN_OR_RETURN(LoadReport report, load_checkpoint(*dir, manifest, *optimizer_, !o.no_load_optim, world()));
  double converted = static_cast<double>(report.converted_units);  // over the world, for the log line
  if (Comm* w = world()) w->all_reduce(make_view(&converted, DType::kF64, Shape{1}, Device::Cpu(), "n"), ReduceOp::kSum);
  report.converted_units = static_cast<int64_t>(converted);
  step_ = manifest["step"].get<int64_t>();
  consumed_samples_ = manifest["consumed_samples"].get<int64_t>();
  skipped_steps_ = manifest.value("skipped_steps", int64_t{0});
  // Resuming a finished run from --save itself: that checkpoint is already there, no need to re-save it.
  std::error_code ec;
  if (!o.save.empty() && std::filesystem::equivalent(*dir, o.save + "/" + checkpoint_dir_name(step_), ec)) {
    saved_step_ = step_;
  }
  const uint64_t data_seed = manifest["data"].value("seed", o.seed);
  if (!o.no_load_rng && data_seed != o.seed) {
    train_sampler_ = std::make_unique<GptSampler>(*train_data_, config_.seq_length, data_seed,
                                                  train_sampler_->bos_id());
  }
  if (is_logger()) {
    const nlohmann::json& lay = manifest["layout"];
    OM_LOG_INFO("resumed from %s: step %ld, %ld samples consumed; saved on tp %d x dp %d%s%s", dir->c_str(), step_,
                consumed_samples_, lay.value("tp", 1), lay.value("dp", 1),
                o.no_load_optim ? "; weights only (--no-load-optim)" : "",
                report.converted_units > 0
                    ? format_message("; OrthoAdam moments of %ld units (all ranks) converted to this run's units (m "
                                     "exactly, v by the diagonal approximation: checkpoints/FORMAT.md)",
                                     static_cast<long>(report.converted_units))
                          .c_str()
                    : "");
    // Allowed to change on resume (a new schedule, data or optimizer setting), but never silently.
    const CheckpointState now = CurrentState();
    nlohmann::json saved_opt = manifest["optimizer"];
    saved_opt.erase("step");
    const std::pair<const char*, const nlohmann::json*> sections[] = {
        {"optimizer", &now.optimizer}, {"schedule", &now.schedule}, {"data", &now.data}};
    for (const auto& [section, run] : sections) {
      nlohmann::json m2 = manifest;
      m2["optimizer"] = saved_opt;
      for (const std::string& d : manifest_mismatches(m2, *run, section)) OM_LOG_INFO("resume: %s", d.c_str());
    }
  }
  return Status::Ok();
}

}  // namespace om
