// MemoryPlan: the bytes one rank of a training run holds on its device, computed from TrainOptions
// without allocating (ortho_megatron --dry-run, issue 9). Each line is what the Trainer allocates
// through Buffer (core/buffer.h), which counts it (Buffer::live_bytes / peak_bytes: "measured").
// On the CPU the plan equals the measured peak of Trainer::Create + TrainStep byte for byte
// (tests/launch/memory_plan_test.cc); the CUDA workspace lines are estimates (see below).
//
// Letters: Bm = --micro-batch-size, T, C, F, H, L, V of the model; tp, dp; Cl = C/tp, Fl = F/tp,
// Hl = H/tp, Vl = Vp/tp with Vp = V rounded up to 128·tp. "⌈x⌉₂₅₆" rounds bytes up to 256 (one
// Arena view, Arena::BytesFor). e = the model dtype's size (--dtype: 4 for f32, 2 for bf16); only the
// matrices and the activations are at e — norm gains, statistics, gradients and all optimizer state
// are f32 (4 bytes) in both (model/llama.h "Precision").
//   P = tp-local parameter elements (vocabulary padding included) = 2·Vl·C + L·(4·C·Cl + 3·C·Fl) + n_norm
//       with n_norm = (2L + 1)·C (rmsnorm) or 2L + 1 (rmsnorm-s), the replicated norm gains
//   N = elements in optimizer units (P without the padding rows), B = --ortho-block
//   S = ZeRO-1 shard size = the largest dp rank's load of whole units (optim/optimizer_units.h)
// Lines (model/llama.h, optim/distributed_optimizer.h):
//   parameters   Σ_p ⌈e_p·numel_p⌉₂₅₆ ≈ e·(P − n_norm) + 4·n_norm           (Llama parameter arena)
//   gradients    Σ_p ⌈4·numel_p⌉₂₅₆ ≈ 4·P (f32: = parameters)                (Llama gradient arena)
//   activations  Σ_views ⌈·⌉₂₅₆ of e·Bm·T·[L·(4C + 4Cl + 3Fl) + 3C + Vl + max(3Cl, 2Fl, C) + max(C, Fl)]
//                + 4·Bm·T·[L·(2 + Hl) + 5] (rstd, lse, cross-entropy statistics) + 2·4·Bm·T (i32 tokens,
//                targets)
//   master, m, v 4·S each                                                   (ZeRO-1 shard state)
//   flat grad    4·dp·S, flat param 4·dp·S (0 at dp = 1)                    (reduce_scatter / all_gather)
//                --overlap-grad-reduce at dp > 1: S is the sum of the gradient buckets' largest loads
//                (optim/optimizer_units.h), and with > 1 bucket a grad shard of 4·S more
//                bf16: flat param dp·SB, SB = the largest shard's value bytes (2 per matrix element, 4 per
//                gain element, each unit aligned to 32 bytes: optim/optimizer_units.h PublishLayout)
//   grad norm    8                                                          (f64 accumulator)
//   rotations    OrthoAdam: 4·Σ_u (R_u² + Σ_b K_b²) over the rank's units (R_u rows, K_b ≤ B column
//                blocks; optim/orthoadam.h rotation_numel), ≤ 4·(R/K + B/R) per unit element; AdamW: 0
//   workspace    kernel scratch through Buffer. CPU: 0. CUDA: block_rotate's plan, kept for the run
//                (OrthoAdam; kernels/cuda/block_rotate.cu): 4·(largest chunk's Σ R·K; chunks ≤ 256 MiB
//                of one unit shape) + 2·8·3·Σ_u (1 + blocks_u) (both directions' pointer arrays); plus
//                the largest per-call scratch of the model's kernels (calls run one after another and
//                free theirs as they go), the max of
//                  embedding_backward        4 × ⌈4·Bm·T⌉₂₅₆ + 4·Vl + ≈ 8·Bm·T (CUB's sort buffers)
//                  rmsnorm_backward          4·⌈Bm·T/32⌉·C (rmsnorm-s: ·1)
//                  attention_backward        4·Bm·Hl·T
//                  sum_squares               ≤ 8·1024
//   cuBLASLt     CUDA: 32 MiB per device, cudaMalloc'd by kernels/cuda/matmul.cu outside Buffer (not
//                measured by Buffer::peak_bytes)
//   eval probs   --eval-metrics: 4·Bm·Hl·T² (the probe's attention probabilities, Llama::ProbeBytes)
// Not in the plan: the CUDA context, cuBLAS/NCCL internals, the OrthoAdam host staging copy of the
// rotations on CUDA (freed after construction), host std::vector temporaries, the dataset (mmap).
//
// Which rank: tp rank 0's parameter layout. Every tensor has the same shape on every tp rank except
// that the vocabulary padding rows (no units) lie on the last ranks, so tp rank 0 holds the most unit
// elements; its S is assumed to be every tp rank's (LPT keeps shards within one unit of each other).
// Shards are padded to S, so master/m/v/flat lines are the same on every dp rank; the rotations and
// the block_rotate workspace are those of the dp rank with the most rotation elements (the worst one).
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/device.h"
#include "core/status.h"
#include "launch/train_options.h"

namespace om {

struct MemoryPlan {
  // What was planned.
  Device device;
  DType dtype = DType::kF32;      // the model's (resolve_dtype of --dtype on device)
  int64_t tp = 1, dp = 1;
  int64_t micro_batch = 0;        // Bm
  int64_t seq_length = 0;         // T
  std::string model;              // LlamaConfig::ToString()
  std::string optimizer;          // e.g. "orthoadam (haar, B = 1024)"
  bool eval_metrics = false;
  int64_t param_elements = 0;     // P
  int64_t unit_elements = 0;      // N
  int64_t units = 0;              // optimizer units of the tp rank (all dp ranks together)
  int64_t shard_size = 0;         // S
  int worst_dp_rank = 0;          // the dp rank whose rotations are planned

  // Bytes on the rank's device, one per line of the header.
  size_t parameters = 0, gradients = 0, activations = 0;
  size_t master = 0, exp_avg = 0, exp_avg_sq = 0;
  size_t flat_grad = 0, flat_param = 0;
  bool gradients_in_place = false;  // dp = 1 AdamW: ZeRO-1 steps the gradients, no flat copy (flat_grad = 0)
  size_t grad_shard = 0;          // --overlap-grad-reduce with more than one bucket
  int64_t grad_buckets = 1;       // gradient buckets (> 1 only with --overlap-grad-reduce at dp > 1)
  size_t grad_norm = 0;
  size_t rotations = 0;
  size_t workspace = 0;           // through Buffer (measured)
  size_t cublaslt_workspace = 0;  // outside Buffer (not measured)
  size_t eval_probs = 0;

  size_t model_bytes() const { return parameters + gradients + activations; }
  size_t optimizer_bytes() const {
    return master + exp_avg + exp_avg_sq + flat_grad + grad_shard + flat_param + grad_norm + rotations;
  }
  // What Buffer::peak_bytes(device.kind) should rise by over Create + training (+ validation).
  size_t buffer_bytes() const { return model_bytes() + optimizer_bytes() + workspace + eval_probs; }
  size_t total() const { return buffer_bytes() + cublaslt_workspace; }
};

// The plan of one rank of `o` on `device` (the device a rank would train on: resolve_device).
// Validates as the Trainer would before allocating: the flags (validate_train_options for tp·dp
// ranks), the model (model_config_for: reads --data-path's JSON description), the optimizer
// (optimizer_config_for), the lr schedule, the layout (ParallelDims::Make, ValidateModel). Errors name
// the flag.
StatusOr<MemoryPlan> plan_training_memory(const TrainOptions& o, Device device);

// Whether the plan fits in `available` bytes of its device (core/buffer.h available_bytes) shared by
// `sharing` ranks (a node's ranks share its host memory; each GPU is one rank's): OK, or ResourceExhausted
// naming what the rank needs and has, its largest lines with the flags that size them, and the fixes.
// The Trainer checks this before it allocates, so a run too large for its device fails with this message
// instead of an allocation failure part-way through the set-up.
Status check_memory_fits(const MemoryPlan& plan, size_t available, int sharing);

// A table in MiB, one line per entry above with its formula and the letters' values; ends with the
// total. Multi-line, each line ending in '\n'.
std::string format_memory_plan(const MemoryPlan& plan);

}  // namespace om
