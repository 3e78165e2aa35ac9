// ZeRO-1 AdamW / OrthoAdam over the dp group (optim/distributed_optimizer.h).
#include "optim/distributed_optimizer.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <limits>
#include <string>
#include <utility>

#include <omp.h>
#include <pthread.h>

#include "core/timer.h"
#include "kernels/adamw.h"
#include "kernels/cast.h"
#include "kernels/sum_squares.h"

namespace om {
namespace {

constexpr size_t kF32 = sizeof(float);

float* f32_at(const Buffer& b, int64_t offset) { return static_cast<float*>(b.data()) + offset; }

TensorView f32_view(const Buffer& b, int64_t offset, int64_t n, const char* name) {
  return make_view(f32_at(b, offset), DType::kF32, Shape{n}, b.device(), name);
}

}  // namespace

DistributedOptimizer::DistributedOptimizer(std::span<const Parameter> params, const OptimizerConfig& config,
                                           Comm& dp, Comm* tp, std::vector<bool> tp_replicated)
    : params_(params.begin(), params.end()),
      config_(config),
      ctx_{params.empty() ? Device::Cpu() : params.front().value.device, Stream{}},
      dp_(&dp),
      tp_(tp),
      tp_replicated_(std::move(tp_replicated)) {
  OM_CHECK(tp_ == nullptr || tp_replicated_.size() == params_.size(),
           "DistributedOptimizer: tp_replicated has %zu entries for %zu parameters", tp_replicated_.size(),
           params_.size());
  OM_CHECK(!params_.empty(), "DistributedOptimizer: no parameters to optimise");
  for (const Parameter& p : params_) {
    OM_CHECK((p.value.dtype == DType::kF32 || p.value.dtype == DType::kBF16) && p.grad.dtype == DType::kF32,
             "DistributedOptimizer: parameter '%s' must be f32 or bf16 with an f32 gradient (got %s, %s)", p.name.c_str(),
             std::string(dtype_name(p.value.dtype)).c_str(), std::string(dtype_name(p.grad.dtype)).c_str());
    OM_CHECK(p.value.shape == p.grad.shape, "DistributedOptimizer: parameter '%s' is %s but its gradient is %s",
             p.name.c_str(), p.value.shape.ToString().c_str(), p.grad.shape.ToString().c_str());
    OM_CHECK(p.value.is_contiguous() && p.grad.is_contiguous(),
             "DistributedOptimizer: parameter '%s' and its gradient must be contiguous", p.name.c_str());
    OM_CHECK(p.value.device == ctx_.device && p.grad.device == ctx_.device,
             "DistributedOptimizer: parameter '%s' and its gradient must live on %s, the first parameter's device",
             p.name.c_str(), device_name(ctx_.device).c_str());
  }
  OM_CHECK(config_.grad_bucket >= 0,
           "DistributedOptimizer: gradient bucket of %ld elements (--ddp-bucket-size must be >= 1)",
           static_cast<long>(config_.grad_bucket));
  units_ = make_units(params_, config_.block);
  const int64_t bucket = effective_grad_bucket(config_.grad_bucket, dp.size());
  overlap_ = bucket > 0;
  buckets_ = grad_buckets(units_, params_.size(), bucket);
  plan_ = assign_units(units_, dp.size(), buckets_.unit_bucket);
  param_ready_.assign(params_.size(), false);
  for (size_t u = 0; u < units_.size(); ++u) {
    numel_ += units_[u].numel();
    if (plan_.owner[u] == dp.rank()) local_.push_back(u);
  }
  OM_CHECK(numel_ > 0, "DistributedOptimizer: the parameters hold no elements");

  // Zeroed once: the gradient padding stays 0 forever (step 1 writes only units), and so do m = v = 0
  // initially and the master padding (in no unit).
  const Device dev = ctx_.device;
  const int64_t S = plan_.shard_size, total = padded_numel();
  // dp = 1, one bucket, AdamW, and the gradients lie as the shard would (optimizer_units.h
  // gradients_form_shard: the model's gradient arena): the shard is the gradients themselves, read in place
  // (AdamW never writes them; OrthoAdam computes its direction in place over the shard, so it keeps a copy).
  gradients_in_place_ =
      config_.kind == OptimizerKind::kAdamW &&
      gradients_form_shard(units_, plan_, [&](size_t p) { return reinterpret_cast<uintptr_t>(params_[p].grad.data); });
  if (gradients_in_place_) {
    grad_base_ = static_cast<float*>(params_[units_[0].param].grad.data) + units_[0].param_offset();
  } else {
    flat_grad_ = Buffer::Allocate(dev, static_cast<size_t>(total) * kF32, "zero1 flat grad");
    flat_grad_.Zero();
    grad_base_ = f32_at(flat_grad_, dp.rank() * S);
  }
  if (buckets_.size() > 1) {  // the buckets' reduced parts are not contiguous in flat_grad_: their own shard
    grad_shard_ = Buffer::Allocate(dev, static_cast<size_t>(S) * kF32, "zero1 grad shard");
    grad_shard_.Zero();
    grad_base_ = f32_at(grad_shard_, 0);
  }
  // dp = 1: the master shard is every unit already (PublishMaster). dp > 1 with a value that is not
  // f32: the weights travel in their own dtypes (PublishLayout); else as the f32 master.
  narrow_publish_ = dp.size() > 1 && std::any_of(params_.begin(), params_.end(), [](const Parameter& p) {
                      return p.value.dtype != DType::kF32;
                    });
  std::vector<size_t> all(units_.size());
  for (size_t u = 0; u < all.size(); ++u) all[u] = u;
  const auto elements = [&](size_t u) { return units_[u].numel(); };
  for (size_t b = 0; b < buckets_.size(); ++b) {
    std::vector<size_t> in_bucket;
    for (size_t u = 0; u < all.size(); ++u) {
      if (plan_.bucket[u] == static_cast<int>(b)) in_bucket.push_back(u);
    }
    bucket_runs_.push_back(MakeRuns(in_bucket, [&](size_t u) { return plan_.flat_offset(u); }, elements));
  }
  gathered_runs_ = MakeRuns(all, [&](size_t u) { return plan_.gathered_offset(u); }, elements);
  local_runs_ = MakeRuns(local_, [&](size_t u) { return plan_.offset[u]; }, elements);
  if (narrow_publish_) {
    publish_ = publish_layout(units_, plan_, params_);
    const auto bytes = [&](size_t u) {
      return units_[u].numel() * static_cast<int64_t>(dtype_size(params_[units_[u].param].value.dtype));
    };
    publish_runs_ = MakeRuns(all, [&](size_t u) { return publish_.flat_offset(plan_, u); }, bytes);
    local_publish_runs_ = MakeRuns(local_, [&](size_t u) { return publish_.flat_offset(plan_, u); }, bytes);
    flat_param_ = Buffer::Allocate(dev, static_cast<size_t>(dp.size() * publish_.shard_bytes), "zero1 flat param");
    flat_param_.Zero();
  } else if (dp.size() > 1) {
    flat_param_ = Buffer::Allocate(dev, static_cast<size_t>(total) * kF32, "zero1 flat param");
    flat_param_.Zero();
  }
  state_ = Buffer::Allocate(dev, 3 * static_cast<size_t>(S) * kF32, "zero1 master|m|v");
  state_.Zero();
  norm_sq_ = Buffer::Allocate(dev, 2 * sizeof(double), "zero1 grad norm sq and finiteness check");
  norm_sq_.Zero();

  // The master weights start as the model's values (bf16 values convert exactly), one grouped cast.
  std::vector<CastArgs> init;
  for (const Run& run : local_runs_) {
    init.push_back({ShardView(0, plan_.offset[run.first], run.numel, "zero1.master"), RunValue(run)});
  }
  cast_group(ctx_, init);

  if (config_.kind != OptimizerKind::kOrthoAdam) return;
  // The rotations of this rank's units: offsets and views first, then the draw (in parallel, each unit's
  // matrices a function of the unit only), here or on a thread of its own (AwaitRotations).
  std::vector<int64_t> rot_offset(local_.size() + 1, 0);
  std::vector<const OptimizerUnit*> draw_units(local_.size());
  rotation_units_.resize(local_.size());
  for (size_t k = 0; k < local_.size(); ++k) {
    const OptimizerUnit& unit = units_[local_[k]];
    draw_units[k] = &unit;
    rot_offset[k + 1] = rot_offset[k] + rotation_numel(unit, config_.block);
  }
  const size_t rot_bytes = static_cast<size_t>(rot_offset.back()) * kF32;
  rotations_ = Buffer::Allocate(dev, rot_bytes, "orthoadam rotations");
  for (size_t k = 0; k < local_.size(); ++k) {
    const OptimizerUnit& unit = units_[local_[k]];
    RotationUnit& ru = rotation_units_[k];
    ru.x = make_view(grad_base_ + plan_.offset[local_[k]], DType::kF32, Shape{unit.rows, unit.cols}, dev,
                     "orthoadam.unit");
    rotation_views(unit, config_.block, f32_at(rotations_, rot_offset[k]), dev, &ru);
  }
  // Drawn on the host (double, LAPACK) and rounded to f32 there: into the cache itself on the CPU, else
  // into host memory that AwaitRotations copies to the device once.
  if (dev.kind != DeviceKind::kCpu) {
    rotation_staging_ = Buffer::Allocate(Device::Cpu(), rot_bytes, "orthoadam rotations (host)");
  }
  float* dst = f32_at(dev.kind == DeviceKind::kCpu ? rotations_ : rotation_staging_, 0);
  const int threads = omp_get_max_threads();  // this thread's (--threads), which a new thread does not inherit
  if (!config_.background_rotations) {
    rotation_threads_ = threads;
    Timer timer;
    draw_rotations(config_, draw_units, rot_offset, dst, threads);
    rotation_draw_seconds_ = timer.Seconds();
    AwaitRotations();
    return;
  }
  // One core fewer than the main thread's team: the main thread keeps issuing the first step meanwhile.
  // The thread (and the OpenMP team it starts) blocks every signal, inherited from the mask in force here:
  // SIGTERM / SIGUSR1 must reach the main thread, the one with the handlers' own stack
  // (launch/preemption.cc). Named "om-rotations" (top -H, gdb) the same way: a new thread, its OpenMP team
  // too, starts with its creator's name.
  rotation_threads_ = std::max(1, threads - 1);
  sigset_t every_signal, old_mask;
  sigfillset(&every_signal);
  pthread_sigmask(SIG_BLOCK, &every_signal, &old_mask);
  char old_name[16] = {};
  pthread_getname_np(pthread_self(), old_name, sizeof old_name);
  pthread_setname_np(pthread_self(), "om-rotations");
  draw_thread_ = std::thread([this, draw_units = std::move(draw_units), rot_offset = std::move(rot_offset), dst] {
    Timer timer;
    draw_rotations(config_, draw_units, rot_offset, dst, rotation_threads_, &stop_draw_);
    rotation_draw_seconds_ = timer.Seconds();
  });
  pthread_setname_np(pthread_self(), old_name);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

DistributedOptimizer::~DistributedOptimizer() {
  if (draw_thread_.joinable()) {  // destroyed before the first Step: the units not begun are skipped
    stop_draw_.store(true, std::memory_order_relaxed);
    draw_thread_.join();
  }
}

void DistributedOptimizer::AwaitRotations() {
  if (draw_thread_.joinable()) {
    const Timer timer;
    draw_thread_.join();
    rotation_wait_seconds_ = timer.Seconds();
  }
  if (rotation_staging_.size() > 0) {
    copy_bytes(rotations_.data(), rotations_.device(), rotation_staging_.data(), Device::Cpu(), rotations_.size());
    rotation_staging_ = Buffer();
  }
}

template <typename OffsetFn, typename SizeFn>
std::vector<DistributedOptimizer::Run> DistributedOptimizer::MakeRuns(const std::vector<size_t>& units, OffsetFn offset,
                                                                      SizeFn size) const {
  std::vector<Run> runs;
  for (size_t k = 0; k < units.size(); ++k) {
    const size_t u = units[k];
    if (!runs.empty()) {
      Run& r = runs.back();
      const size_t last = r.first + r.count - 1;
      const OptimizerUnit &a = units_[last], &b = units_[u];
      if (u == last + 1 && b.param == a.param && b.param_offset() == a.param_offset() + a.numel() &&
          offset(u) == offset(last) + size(last)) {
        ++r.count;
        r.numel += b.numel();
        continue;
      }
    }
    runs.push_back(Run{u, 1, units_[u].numel()});
  }
  return runs;
}

TensorView DistributedOptimizer::RunValue(const Run& run) const {
  const OptimizerUnit& unit = units_[run.first];
  const Parameter& p = params_[unit.param];
  char* base = static_cast<char*>(p.value.data) + unit.param_offset() * static_cast<int64_t>(dtype_size(p.value.dtype));
  return make_view(static_cast<void*>(base), p.value.dtype, Shape{run.numel}, p.value.device, p.name.c_str());
}

TensorView DistributedOptimizer::ShardView(int64_t which, int64_t offset, int64_t n, const char* name) const {
  return f32_view(state_, which * plan_.shard_size + offset, n, name);
}

TensorView DistributedOptimizer::GradView(int64_t offset, int64_t n) const {
  return make_view(grad_base_ + offset, DType::kF32, Shape{n}, ctx_.device, "zero1.grad");
}

ConstTensorView DistributedOptimizer::master_shard() const { return ShardView(0, 0, plan_.shard_size, "zero1.master"); }
ConstTensorView DistributedOptimizer::m_shard() const { return ShardView(1, 0, plan_.shard_size, "zero1.exp_avg"); }
ConstTensorView DistributedOptimizer::v_shard() const { return ShardView(2, 0, plan_.shard_size, "zero1.exp_avg_sq"); }
ConstTensorView DistributedOptimizer::grad_shard() const { return GradView(0, plan_.shard_size); }

void DistributedOptimizer::CheckFinite(ConstTensorView x) {
  sum_squares(ctx_, {make_view(static_cast<double*>(norm_sq_.data()) + 1, DType::kF64, Shape{1}, ctx_.device,
                               "zero1.finite_check"),
                     x});
}

void DistributedOptimizer::IssueBucket(size_t b) {
  if (gradients_in_place_) return;  // dp = 1: the shard is the gradients, nothing to copy or reduce
  const uint64_t bytes_before = dp_->bytes_sent();
  const Device dev = ctx_.device;
  // 1. Unit gradients → the bucket's slice of the flat buffer (every rank fills every rank's part:
  // reduce_scatter sums them all). One grouped copy (an f32 cast_group) over the bucket's runs of units:
  // stream-ordered, no host wait, a few launches however many parameters the bucket holds.
  std::vector<CastArgs> copies;
  copies.reserve(bucket_runs_[b].size());
  for (const Run& run : bucket_runs_[b]) {
    const OptimizerUnit& unit = units_[run.first];
    const Parameter& p = params_[unit.param];
    copies.push_back({f32_view(flat_grad_, plan_.flat_offset(run.first), run.numel, "zero1.flat_grad"),
                      make_view(static_cast<const float*>(p.grad.data) + unit.param_offset(), DType::kF32,
                                Shape{run.numel}, dev, p.name.c_str())});
  }
  cast_group(ctx_, copies);
  // 2. Sum over replicas into this rank's part (one bucket: its chunk of the flat buffer, in place). The
  // mean's 1/dp is applied by Step, folded into grad_scale, and to the norm (the header says why that is
  // the same arithmetic).
  const int64_t start = plan_.bucket_start[b], size = plan_.bucket_size[b];
  const TensorView in = f32_view(flat_grad_, dp_->size() * start, dp_->size() * size, "zero1.flat_grad");
  if (overlap_) {
    dp_->reduce_scatter_deferred(in, GradView(start, size));
  } else {
    dp_->reduce_scatter(in, GradView(start, size));
  }
  issued_bytes_ += dp_->bytes_sent() - bytes_before;
}

void DistributedOptimizer::GradientsReady(size_t first, size_t count) {
  OM_CHECK(first + count <= params_.size(), "DistributedOptimizer::GradientsReady: parameters [%zu, %zu) of %zu", first,
           first + count, params_.size());
  if (!overlap_) return;
  for (size_t p = first; p < first + count; ++p) param_ready_[p] = true;
  while (next_bucket_ < buckets_.size() &&
         std::all_of(param_ready_.begin() + static_cast<std::ptrdiff_t>(buckets_.first_param[next_bucket_]),
                     param_ready_.begin() + static_cast<std::ptrdiff_t>(buckets_.end_param[next_bucket_]),
                     [](bool ready) { return ready; })) {
    IssueBucket(next_bucket_++);
    ++buckets_overlapped_;
  }
}

double DistributedOptimizer::ReduceGradients() {
  const Device dev = ctx_.device;
  // 1–2 for every bucket GradientsReady has not issued (all of them without overlap), then the join:
  // the compute stream's work below (the norm) follows every bucket's reduce_scatter.
  for (; next_bucket_ < buckets_.size(); ++buckets_after_) IssueBucket(next_bucket_++);
  dp_->join_deferred();
  next_bucket_ = 0;
  std::fill(param_ready_.begin(), param_ready_.end(), false);
  const uint64_t bytes_before = dp_->bytes_sent();
  const int64_t S = plan_.shard_size;
  const TensorView shard = GradView(0, S);

  // 3. Each unit lives in exactly one shard, so the shards' sums of squares add up to the global one.
  // The padding is zero and adds nothing.
  // Element 0: Σ g² of this rank's units; element 1: CheckFinite's Σ x² since the last ReduceGradients
  // (zeroed after its read below), reduced with it so a non-finite element anywhere reaches every rank.
  zero_async(ctx_, norm_sq_.data(), sizeof(double));
  const TensorView sum_sq = make_view(norm_sq_.data(), DType::kF64, Shape{1}, dev, "zero1.grad_norm_sq");
  const TensorView both = make_view(norm_sq_.data(), DType::kF64, Shape{2}, dev, "zero1.grad_norm_sq_and_check");
  if (tp_ != nullptr && tp_->size() > 1 && tp_->rank() != 0) {
    // Replicated parameters (norm gains) are counted by tp_rank 0 alone.
    for (size_t u : local_) {
      if (tp_replicated_[units_[u].param]) continue;
      sum_squares(ctx_, {sum_sq, GradView(plan_.offset[u], units_[u].numel())});
    }
  } else {
    sum_squares(ctx_, {sum_sq, shard});
  }
  dp_->all_reduce(both, ReduceOp::kSum);
  if (tp_ != nullptr && tp_->size() > 1) tp_->all_reduce(both, ReduceOp::kSum);
  // The one wait of a step: the host needs the norm to decide (skip, stop, clip) before Step.
  double sums[2] = {0.0, 0.0};
  copy_bytes(sums, Device::Cpu(), norm_sq_.data(), dev, sizeof sums);
  zero_async(ctx_, static_cast<double*>(norm_sq_.data()) + 1, sizeof(double));
  grad_norm_ = std::isfinite(sums[1]) ? std::sqrt(sums[0]) * static_cast<double>(inv_dp())
                                      : std::numeric_limits<double>::quiet_NaN();

  reduced_ = true;
  // Every bucket's reduce_scatter (some issued before this call) and the norm's all_reduce.
  reduce_bytes_ = issued_bytes_ + (dp_->bytes_sent() - bytes_before);
  issued_bytes_ = 0;
  return grad_norm_;
}

void DistributedOptimizer::Step(float lr, float grad_scale) {
  OM_CHECK(reduced_, "DistributedOptimizer::Step without ReduceGradients since the last step (step %lld)",
           static_cast<long long>(step_));
  reduced_ = false;
  const uint64_t bytes_before = dp_->bytes_sent();
  ++step_;
  const AdamWConfig& a = config_.adam;
  grad_scale *= inv_dp();  // the shard holds the sum over the dp replicas; this makes it their mean
  auto decay = [&](const OptimizerUnit& unit) { return params_[unit.param].weight_decay ? a.weight_decay : 0.0f; };

  // 4. The update of every unit of the shard; the padding is in no unit and never changes. One grouped
  // call over the runs (a run: one parameter's units, one weight decay), a few launches on a GPU. At
  // dp = 1 the update also writes the model's values (the publish, fused: kernels/adamw.h), so step 5
  // has nothing left to do.
  const bool fused_publish = dp_->size() == 1;
  const auto value = [&](const Run& run) { return fused_publish ? RunValue(run) : TensorView{}; };
  if (config_.kind == OptimizerKind::kAdamW) {
    std::vector<AdamWArgs> updates;
    updates.reserve(local_runs_.size());
    for (const Run& run : local_runs_) {
      const Parameter& p = params_[units_[run.first].param];
      const int64_t off = plan_.offset[run.first], n = run.numel;
      updates.push_back(make_adamw_args(a, p.weight_decay, ShardView(0, off, n, p.name.c_str()),
                                        ShardView(1, off, n, "zero1.exp_avg"), ShardView(2, off, n, "zero1.exp_avg_sq"),
                                        GradView(off, n), lr, step_, grad_scale));
      updates.back().value = value(run);
    }
    adamw_update_group(ctx_, updates);
  } else {
    AwaitRotations();  // the first step: the background draw's end
    const int64_t S = plan_.shard_size;
    const TensorView g = GradView(0, S);
    block_rotate(ctx_, rotation_units_, RotateDirection::kForward, config_.rotate_precision);  // G̃ = Q_r G Q_cᵀ
    AdamDirectionArgs d{g, ShardView(1, 0, S, "zero1.exp_avg"), ShardView(2, 0, S, "zero1.exp_avg_sq"), g};
    d.beta1 = a.beta1;
    d.beta2 = a.beta2;
    d.eps = a.eps;
    d.step = step_;
    d.grad_scale = grad_scale;
    adam_direction(ctx_, d);                                          // Ũ, in place
    block_rotate(ctx_, rotation_units_, RotateDirection::kInverse, config_.rotate_precision);  // U = Q_rᵀ Ũ Q_c
    std::vector<AdamApplyArgs> applies;
    applies.reserve(local_runs_.size());
    for (const Run& run : local_runs_) {
      const OptimizerUnit& unit = units_[run.first];
      const int64_t off = plan_.offset[run.first], n = run.numel;
      applies.push_back(
          {ShardView(0, off, n, params_[unit.param].name.c_str()), GradView(off, n), lr, decay(unit), value(run)});
    }
    adam_apply_group(ctx_, applies);
  }

  // 5. Every rank's updated shard → every rank's flat parameters → the model's tensors.
  if (!fused_publish) PublishMaster();
  step_bytes_ = dp_->bytes_sent() - bytes_before;
}

void DistributedOptimizer::PublishMaster() {
  if (narrow_publish_) return PublishNarrow();
  // dp = 1: the one shard holds every unit at its flat offset, so the values are cast from the master
  // itself (no all_gather, no flat parameter buffer: one pass over 4 bytes per parameter saved).
  const bool gather = dp_->size() > 1;
  if (gather) dp_->all_gather(master_shard(), f32_view(flat_param_, 0, padded_numel(), "zero1.flat_param"));
  const Buffer& source = gather ? flat_param_ : state_;
  // f32 values: a copy; bf16 values: the master rounded to nearest even (kernels/cast.h). One grouped
  // cast over the runs.
  std::vector<CastArgs> casts;
  casts.reserve(gathered_runs_.size());
  for (const Run& run : gathered_runs_) {
    casts.push_back({RunValue(run), f32_view(source, plan_.gathered_offset(run.first), run.numel, "zero1.flat_param")});
  }
  cast_group(ctx_, casts);
}

void DistributedOptimizer::PublishNarrow() {
  char* base = static_cast<char*>(flat_param_.data());
  const int64_t SB = publish_.shard_bytes;
  const auto publish_view = [&](const Run& run) {
    return make_view(static_cast<void*>(base + publish_.flat_offset(plan_, run.first)),
                     params_[units_[run.first].param].value.dtype, Shape{run.numel}, ctx_.device, "zero1.flat_param");
  };
  // This rank's units in their values' dtypes (bf16: round to nearest even) into its chunk, ...
  std::vector<CastArgs> casts;
  casts.reserve(std::max(local_publish_runs_.size(), publish_runs_.size()));
  for (const Run& run : local_publish_runs_) {
    casts.push_back({publish_view(run), ShardView(0, plan_.offset[run.first], run.numel, "zero1.master")});
  }
  cast_group(ctx_, casts);
  // ... every chunk to every rank as 4-byte words (a copy: the bytes arrive unchanged), ...
  const int64_t words = SB / 4;
  dp_->all_gather(make_view(static_cast<void*>(base + dp_->rank() * SB), DType::kI32, Shape{words}, ctx_.device,
                            "zero1.flat_param.shard"),
                  make_view(static_cast<void*>(base), DType::kI32, Shape{dp_->size() * words}, ctx_.device,
                            "zero1.flat_param"));
  // ... and every unit into its Parameter::value (same dtype: a copy).
  casts.clear();
  for (const Run& run : publish_runs_) casts.push_back({RunValue(run), publish_view(run)});
  cast_group(ctx_, casts);
}

TensorView DistributedOptimizer::unit_state(int which, size_t u) const {
  OM_CHECK(which >= 0 && which <= 2 && u < units_.size() && plan_.owner[u] == dp_->rank(),
           "DistributedOptimizer::unit_state(%d, %zu): not a state of a unit this rank owns", which, u);
  const OptimizerUnit& unit = units_[u];
  return make_view(f32_at(state_, which * plan_.shard_size + plan_.offset[u]), DType::kF32,
                   Shape{unit.rows, unit.cols}, ctx_.device, which == 0 ? "zero1.master" : "zero1.moment");
}

}  // namespace om
