// The per-rank memory plan behind --dry-run (launch/memory_plan.h).
#include "launch/memory_plan.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/buffer.h"
#include "launch/trainer.h"
#include "model/llama.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer_units.h"
#include "optim/orthoadam.h"
#include "parallel/parallel_dims.h"

namespace om {
namespace {

constexpr size_t kF32 = sizeof(float);

// Constants of the CUDA kernels whose per-call scratch the plan estimates. They live in .cu files
// that CPU builds do not compile, so they are restated here; each names its source.
constexpr size_t kRotateChunkBytes = size_t{256} << 20;        // block_rotate.cu kScratchBytes
constexpr size_t kCublasLtWorkspaceBytes = size_t{32} << 20;   // matmul.cu kWorkspaceBytes
constexpr int64_t kRmsNormBackwardRowsPerBlock = 32;           // rmsnorm.cu kBackwardRowsPerBlock
constexpr int64_t kSumSquaresMaxBlocks = 1024;                 // sum_squares.cu kMaxBlocks

size_t round256(size_t bytes) { return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }

// The scratch and pointer arrays CUDA block_rotate keeps for `units` (kernels/cuda/block_rotate.cu's
// cached plan): units grouped by shape (R, K_b…), each group cut into chunks of max(1, 256 MiB / unit
// bytes) units that reuse one scratch (so the largest chunk sizes it), and 3 device pointers per GEMM
// and direction (forward and inverse): one GEMM per unit (pass 1) and one per column block (pass 2).
size_t block_rotate_workspace(const std::vector<const OptimizerUnit*>& units, int64_t block) {
  if (units.empty()) return 0;
  std::map<std::vector<int64_t>, size_t> groups;  // (R, K_0, K_1, …) -> units of that shape
  size_t gemms = 0;
  for (const OptimizerUnit* u : units) {
    std::vector<int64_t> key = {u->rows};
    for (int64_t w : column_blocks(*u, block)) key.push_back(w);
    gemms += key.size();  // 1 (pass 1) + the column blocks (pass 2)
    ++groups[key];
  }
  size_t scratch = 0;
  for (const auto& [key, count] : groups) {
    int64_t K = 0;
    for (size_t i = 1; i < key.size(); ++i) K += key[i];
    const size_t unit_bytes = static_cast<size_t>(key[0] * K) * kF32;
    const size_t per_chunk = std::max<size_t>(1, kRotateChunkBytes / unit_bytes);
    scratch = std::max(scratch, std::min(count, per_chunk) * unit_bytes);
  }
  return scratch + 2 * 3 * gemms * sizeof(void*);
}

// The largest per-call scratch of the model's CUDA kernels (header: workspace), for micro-batches of
// Bm sequences on a tp rank with Vl vocabulary rows.
size_t model_kernel_workspace(const LlamaConfig& c, int64_t Bm, int64_t tp, int64_t Vl) {
  const int64_t N = Bm * c.seq_length, Hl = c.n_heads / tp;
  const int64_t G = c.norm == NormKind::kRmsNormS ? 1 : c.hidden;
  const size_t n_i32 = static_cast<size_t>(N) * sizeof(int32_t);
  // Sorted keys and rows (in and out), the segment ends, then CUB's temporary storage, which for
  // SortPairs is dominated by its alternate key and value buffers (≈ 2·4·N; its histograms are KiB).
  const size_t embedding = 4 * round256(n_i32) + round256(static_cast<size_t>(Vl) * sizeof(int32_t)) + 2 * n_i32;
  const int64_t rmsnorm_blocks = (N + kRmsNormBackwardRowsPerBlock - 1) / kRmsNormBackwardRowsPerBlock;
  const size_t rmsnorm = static_cast<size_t>(rmsnorm_blocks * G) * kF32;
  const size_t attention = static_cast<size_t>(Bm * Hl * c.seq_length) * kF32;
  const size_t sum_squares = static_cast<size_t>(kSumSquaresMaxBlocks) * sizeof(double);
  return std::max({embedding, rmsnorm, attention, sum_squares});
}

double mib(size_t bytes) { return static_cast<double>(bytes) / static_cast<double>(size_t{1} << 20); }

}  // namespace

StatusOr<MemoryPlan> plan_training_memory(const TrainOptions& o, Device device) {
  // The layout first: it bounds tp·dp, which validate_train_options takes as the world size.
  int64_t world = 0;
  if (o.tp < 1 || o.dp < 1 || __builtin_mul_overflow(o.tp, o.dp, &world)) {
    return Status::InvalidArgument(format_message("--tp (%ld) and --dp (%ld) must be >= 1 and their product must "
                                                  "fit the number of processes",
                                                  o.tp, o.dp));
  }
  OM_ASSIGN_OR_RETURN(const ParallelDims dims, ParallelDims::Make(o.tp, o.dp, world));
  OM_RETURN_IF_ERROR(validate_train_options(o, static_cast<int>(dims.world_size)));
  if (device.kind == DeviceKind::kCuda && o.eval_metrics) {  // as Trainer::Create refuses it
    return Status::InvalidArgument("--eval-metrics runs on the CPU only for now: plan with --device cpu, or drop "
                                   "--eval-metrics");
  }
  OM_ASSIGN_OR_RETURN(const LlamaConfig config, model_config_for(o));
  OM_RETURN_IF_ERROR(dims.ValidateModel(config.n_heads, config.ffn, config.vocab_size));
  OM_ASSIGN_OR_RETURN(const OptimizerConfig opt, optimizer_config_for(o));
  OM_RETURN_IF_ERROR((LrSchedule{o.lr, o.min_lr, o.lr_warmup_iters, o.lr_decay_iters}.Validate()));  // as the Trainer
  const int tp = static_cast<int>(dims.tp), dp = static_cast<int>(dims.dp);
  const bool ortho = opt.kind == OptimizerKind::kOrthoAdam;

  MemoryPlan plan;
  plan.device = device;
  OM_ASSIGN_OR_RETURN(plan.dtype, resolve_dtype(o.dtype, device));
  const DType dtype = plan.dtype;
  plan.tp = dims.tp;
  plan.dp = dims.dp;
  plan.micro_batch = o.micro_batch_size;
  plan.seq_length = config.seq_length;
  plan.model = config.ToString();
  plan.optimizer = std::string(optimizer_kind_name(opt.kind)) +
                   (ortho ? format_message(" (%s, B = %ld)", std::string(ortho_transform_name(opt.transform)).c_str(),
                                           static_cast<long>(opt.block))
                          : format_message(" (units of <= %ld rows)", static_cast<long>(opt.block)));
  plan.eval_metrics = o.eval_metrics;

  // The model's three arenas: exact, the constructor sizes them with the same planner.
  const Llama::MemoryBytes arenas = Llama::PlanMemory(config, o.micro_batch_size, dtype, tp);
  plan.parameters = arenas.parameters;
  plan.gradients = arenas.gradients;
  plan.activations = arenas.activations;

  // ZeRO-1: the units and shards DistributedOptimizer computes, on tp rank 0's layout (header).
  const std::vector<Parameter> params = Llama::ParameterLayout(config, dtype, tp, 0);
  for (const Parameter& p : params) plan.param_elements += p.value.numel();
  const std::vector<OptimizerUnit> units = make_units(params, opt.block);
  // --overlap-grad-reduce (dp > 1): the shards are cut per gradient bucket, and the reduced shard has a
  // buffer of its own when there is more than one bucket (DistributedOptimizer).
  const GradBuckets buckets = grad_buckets(units, params.size(), effective_grad_bucket(opt.grad_bucket, dp));
  const ShardPlan shards = assign_units(units, dp, buckets.unit_bucket);
  plan.units = static_cast<int64_t>(units.size());
  for (const OptimizerUnit& u : units) plan.unit_elements += u.numel();
  plan.shard_size = shards.shard_size;
  const size_t S = static_cast<size_t>(shards.shard_size);
  plan.master = plan.exp_avg = plan.exp_avg_sq = kF32 * S;
  // dp = 1 AdamW steps the gradients in place when the arena lays them out as the shard (the Llama
  // constructor carves them in this order, each rounded up to Arena::BytesFor): no flat gradient buffer.
  // Planned only when every tp rank's layout allows it (vocabulary padding rows, in no unit, break it on
  // the last tp rank), so that the plan is never below a rank's use.
  plan.gradients_in_place = !ortho && dp == 1;
  for (int r = 0; r < tp && plan.gradients_in_place; ++r) {
    const std::vector<Parameter> rank_params = Llama::ParameterLayout(config, dtype, tp, r);
    std::vector<uintptr_t> grad_offset(rank_params.size());
    for (size_t p = 1; p < rank_params.size(); ++p) {
      const Parameter& before = rank_params[p - 1];
      grad_offset[p] = grad_offset[p - 1] + Arena::BytesFor(before.grad.dtype, before.grad.shape);
    }
    const std::vector<OptimizerUnit> rank_units = make_units(rank_params, opt.block);
    plan.gradients_in_place = gradients_form_shard(rank_units, assign_units(rank_units, 1),
                                                   [&](size_t p) { return grad_offset[p]; });
  }
  plan.flat_grad = plan.gradients_in_place ? 0 : kF32 * static_cast<size_t>(dp) * S;
  plan.grad_shard = buckets.size() > 1 ? kF32 * S : 0;
  plan.grad_buckets = static_cast<int64_t>(buckets.size());
  // dp = 1 publishes from the master shard itself; a bf16 model gathers its weights in their own
  // dtypes (PublishLayout), an f32 one as f32 (DistributedOptimizer).
  plan.flat_param = dp == 1                 ? 0
                    : dtype == DType::kF32 ? plan.flat_grad
                                           : static_cast<size_t>(dp) *
                                                 static_cast<size_t>(publish_layout(units, shards, params).shard_bytes);
  plan.grad_norm = 2 * sizeof(double);  // the norm's sum of squares and the finiteness check (f64 each)

  // OrthoAdam's cached rotations and (CUDA) block_rotate scratch, per dp rank; the worst rank counts.
  size_t rotate_workspace = 0;
  if (ortho) {
    std::vector<int64_t> rotation_numel_of(static_cast<size_t>(dp), 0);
    std::vector<std::vector<const OptimizerUnit*>> owned(static_cast<size_t>(dp));
    for (size_t u = 0; u < units.size(); ++u) {
      rotation_numel_of[shards.owner[u]] += rotation_numel(units[u], opt.block);
      owned[shards.owner[u]].push_back(&units[u]);
    }
    const auto worst = std::max_element(rotation_numel_of.begin(), rotation_numel_of.end());
    plan.worst_dp_rank = static_cast<int>(worst - rotation_numel_of.begin());
    plan.rotations = kF32 * static_cast<size_t>(*worst);
    if (device.kind == DeviceKind::kCuda) {
      for (const auto& rank_units : owned) {
        rotate_workspace = std::max(rotate_workspace, block_rotate_workspace(rank_units, opt.block));
      }
    }
  }

  if (device.kind == DeviceKind::kCuda) {
    const int64_t Vl = dims.padded_vocab(config.vocab_size) / dims.tp;
    // block_rotate's plan is kept for the run; the model kernels' scratch comes and goes on top of it.
    plan.workspace = rotate_workspace + model_kernel_workspace(config, o.micro_batch_size, dims.tp, Vl);
    plan.cublaslt_workspace = kCublasLtWorkspaceBytes;
  }
  if (o.eval_metrics) plan.eval_probs = Llama::ProbeBytes(config, o.micro_batch_size, dtype, tp);
  return plan;
}

Status check_memory_fits(const MemoryPlan& p, size_t available, int sharing) {
  const size_t share = available / static_cast<size_t>(std::max(sharing, 1));
  if (p.total() <= share) return Status::Ok();
  const double gib = 1024.0 * 1024.0 * 1024.0;
  const bool cuda = p.device.kind == DeviceKind::kCuda;
  std::string where =
      format_message("%.2f GiB %s", static_cast<double>(available) / gib, cuda ? "free" : "available");
  if (sharing > 1) {
    where += format_message(", %.2f GiB for each of this node's %d ranks", static_cast<double>(share) / gib, sharing);
  }
  std::vector<std::string> fixes = {
      "lower --micro-batch-size (--global-batch-size stays: more micro-batches per step)"};
  if (cuda) {
    if (p.dtype != DType::kBF16) fixes.push_back("use --dtype bf16");
    fixes.push_back("split the model over more GPUs with --tp");
    if (p.optimizer_bytes() > p.model_bytes() / 2) {
      fixes.push_back("shard the optimizer state over more GPUs with --dp");
    }
  } else {
    if (sharing > 1) fixes.push_back("start fewer ranks per node");
    fixes.push_back("train on a GPU (--device cuda)");
  }
  std::string fix;
  for (size_t i = 0; i < fixes.size(); ++i) fix += (i == 0 ? "" : i + 1 == fixes.size() ? " or " : ", ") + fixes[i];
  return Status::ResourceExhausted(format_message(
      "this rank's training needs %.2f GiB (activations %.2f GiB for --micro-batch-size %ld x --seq-length %ld, "
      "parameters and gradients %.2f GiB, optimizer state %.2f GiB, %s), but %s has %s; %s. "
      "ortho_megatron --dry-run prints the whole plan",
      static_cast<double>(p.total()) / gib, static_cast<double>(p.activations) / gib, static_cast<long>(p.micro_batch),
      static_cast<long>(p.seq_length), static_cast<double>(p.parameters + p.gradients) / gib,
      static_cast<double>(p.optimizer_bytes()) / gib, p.model.c_str(), device_name(p.device).c_str(), where.c_str(),
      fix.c_str()));
}

std::string format_memory_plan(const MemoryPlan& p) {
  const bool cuda = p.device.kind == DeviceKind::kCuda;
  const bool bf16 = p.dtype == DType::kBF16;
  std::string out = format_message("memory plan per rank on %s (tp %ld x dp %ld, micro-batch %ld, %s)\n",
                                   device_name(p.device).c_str(), static_cast<long>(p.tp), static_cast<long>(p.dp),
                                   static_cast<long>(p.micro_batch),
                                   bf16 ? "bf16 weights and activations, f32 gradients and optimizer" : "f32");
  out += "  model " + p.model + "\n";
  out += format_message("  optimizer %s: %ld units; P = %ld parameter elements on this tp rank, N = %ld in units, "
                        "S = %ld per dp shard\n",
                        p.optimizer.c_str(), static_cast<long>(p.units), static_cast<long>(p.param_elements),
                        static_cast<long>(p.unit_elements), static_cast<long>(p.shard_size));
  out += "  Cl = C/tp, Fl = F/tp, Hl = H/tp, Vl = padded V/tp, Bm = micro-batch; every view rounded up to 256 B\n";
  auto line = [&](const char* name, size_t bytes, const std::string& formula) {
    out += format_message("  %-20s %12.2f MiB%s%s\n", name, mib(bytes), formula.empty() ? "" : "   ", formula.c_str());
  };
  line("parameters", p.parameters,
       bf16 ? "sum over tensors of 2*numel (matrices), 4*numel (norm gains)" : "sum over tensors of 4*numel (~ 4*P)");
  line("gradients", p.gradients, bf16 ? "sum over tensors of 4*numel (~ 4*P)" : "= parameters");
  line("activations", p.activations,
       format_message("%d*Bm*T*[L*(4C + 4Cl + 3Fl) + 3C + Vl + max(3Cl, 2Fl, C) + max(C, Fl)] + "
                      "4*Bm*T*[L*(2 + Hl) + 5] + 8*Bm*T", bf16 ? 2 : 4));
  line("optimizer master", p.master, "4*S");
  line("optimizer m", p.exp_avg, "4*S");
  line("optimizer v", p.exp_avg_sq, "4*S");
  line("zero1 flat grad", p.flat_grad, "4*dp*S; 0 at dp = 1 with AdamW (the gradients, in place)");
  line("zero1 grad shard", p.grad_shard,
       format_message("4*S with --overlap-grad-reduce and > 1 gradient bucket (here %ld); else 0 (reduced in place)",
                      static_cast<long>(p.grad_buckets)));
  line("zero1 flat param", p.flat_param, "4*dp*S; bf16: dp*SB (2 bytes per matrix element); 0 at dp = 1");
  line("grad norm", p.grad_norm, "16 (f64 sum of squares, f64 finiteness check)");
  line("rotations", p.rotations,
       p.rotations > 0 ? format_message("4*sum over units (R^2 + sum_b K_b^2), dp rank %d", p.worst_dp_rank)
                       : std::string("0 (AdamW)"));
  line("workspace", p.workspace,
       cuda ? std::string("block_rotate's kept plan (<= 256 MiB + pointers; OrthoAdam) + the largest per-call "
                          "kernel scratch (embedding sort, ...)")
            : std::string("0 (the CPU kernels allocate no Buffer per call)"));
  if (cuda) line("cuBLASLt workspace", p.cublaslt_workspace, "32 MiB per device (outside Buffer)");
  line("eval probabilities", p.eval_probs, p.eval_metrics ? "4*Bm*Hl*T^2 (--eval-metrics)" : "0 (no --eval-metrics)");
  line("total", p.total(), "");
  return out;
}

}  // namespace om
