// DistributedOptimizer: AdamW sharded over the data-parallel group (ZeRO-1, DESIGN.md "ZeRO-1
// distributed optimizer"). Every dp rank holds the full parameters; each rank owns the optimizer state
// (fp32 master weights, m, v) of one contiguous 1/dp shard of a flat gradient buffer, steps only that
// shard, and all-gathers the updated parameters.
//
// Flat layout. Every parameter's elements back to back in parameter order (no alignment gaps, unlike
// the model's arenas), then zero padding up to a multiple of dp:
//   padded_numel = ceil(N / dp) · dp,  N = Σ numel(params),  S = padded_numel / dp
//   shard r = flat elements [r·S, (r+1)·S)
// A shard may straddle parameters; the piece list (precomputed once) splits it at parameter
// boundaries so weight decay applies only to pieces of Parameter::weight_decay parameters. Padding
// belongs to no piece: it is reduced (zeros) but never updated.
//
// A step (trainer side: norm = ReduceGradients(); coef = clip_coefficient(norm, max); Step(lr, coef)),
// the same shape as the single-process global_grad_norm + AdamW::Step:
//   ReduceGradients  1. copy each Parameter::grad into the flat gradient buffer
//                    2. reduce_scatter over dp into this rank's shard, in place, then × 1/dp (the mean
//                       over replicas, as Megatron averages)
//                    3. global norm: sum_squares of the shard (every element is owned by exactly one
//                       dp rank, so counted once), all_reduce(kSum) over dp, sqrt
//   Step             4. adamw_update on each piece of the master shard with grad_scale = the caller's
//                       clip coefficient (optim/grad_clip.h); step counter and bias correction as AdamW
//                    5. all_gather the master shard into the flat parameter buffer; copy into every
//                       Parameter::value
// Splitting the step lets the trainer log the norm and skip a non-finite step before anything changes.
//
// Exactness. MpiComm sums in rank order, ((g_0 + g_1) + g_2) + …, then × (1/dp) here, and adamw_update
// is element-wise: the parameters equal, bit for bit, a single-process AdamW given that mean gradient
// and the same grad_scale, on every rank (tests/parallel/distributed_optimizer_test.cc). Only the
// norm differs in f64 rounding (summed per shard, then across ranks).
//
// Memory per parameter element (CPU, f32 everywhere): 4 (flat gradient) + 4 (flat parameters, the
// all_gather target) + 12/dp (master, m, v of the shard), besides the model's own value and grad.
// Later changes: the model's gradient arena becomes the flat gradient buffer (drops the copy in step 1
// and 4 bytes), and with bf16 compute on the GPU the flat parameter buffer is the model's bf16
// parameters: 2 + 4 + 12/dp = 6 + 12/dp bytes (DESIGN.md).
// Tensor parallelism: one DistributedOptimizer per tp rank over its tp-local parameters and its dp
// group, given the tp Comm and which parameters are replicated over tp (the norm gains,
// Llama::tp_replicated). Step 3 then adds the squares of replicated parameters' pieces on tp_rank 0
// only and all-reduces the partial sum over dp and then over tp, so each logical element counts once
// in the world. Without a tp Comm (or tp size 1) the norm is as above.
//
// REQUIRES: params non-empty, f32, contiguous, on the CPU (MpiComm), grad shaped like value, and the
// same list (names, shapes, order, values) on every dp rank; every dp rank calls ReduceGradients and
// Step in the same order (they are collectives). Thread safety: one thread drives an optimizer; `dp`
// must outlive it and carry no other collective concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "core/parameter.h"
#include "optim/adamw.h"
#include "parallel/comm.h"

namespace om {

// A run of consecutive elements that lies in one parameter and in this rank's shard.
struct ShardPiece {
  size_t param_index = 0;    // into the params list
  int64_t param_offset = 0;  // first element within the parameter (flattened)
  int64_t shard_offset = 0;  // first element within the shard, 0 ≤ shard_offset < S
  int64_t numel = 0;         // ≥ 1
};

class DistributedOptimizer {
 public:
  // Copies this rank's shard of the parameters into the master weights; m = v = 0.
  // `tp` (optional, must outlive the optimizer): the tensor-parallel group; `tp_replicated` has one
  // entry per parameter (true: the same tensor on every tp rank) and is required when tp is given.
  DistributedOptimizer(std::span<const Parameter> params, const AdamWConfig& config, Comm& dp, Comm* tp = nullptr,
                       std::vector<bool> tp_replicated = {});

  DistributedOptimizer(const DistributedOptimizer&) = delete;
  DistributedOptimizer& operator=(const DistributedOptimizer&) = delete;

  // Steps 1–3 above; collective over dp (and over tp when given). Returns the global gradient norm of
  // the mean gradient (also grad_norm()). Leaves every Parameter untouched.
  double ReduceGradients();
  // Steps 4–5; collective over dp. `grad_scale` multiplies the mean gradient (the clip coefficient;
  // 1 without clipping). REQUIRES: ReduceGradients was called since the last Step. Increments step()
  // before the update (bias correction uses t ≥ 1), as AdamW::Step.
  void Step(float lr, float grad_scale = 1.0f);

  int64_t step() const { return step_; }
  const AdamWConfig& config() const { return config_; }
  double grad_norm() const { return grad_norm_; }  // of the last ReduceGradients (0 before)

  int64_t numel() const { return numel_; }                // N
  int64_t padded_numel() const { return padded_numel_; }  // multiple of dp.size()
  int64_t shard_begin() const { return shard_begin_; }    // r·S, in flat elements
  int64_t shard_size() const { return shard_size_; }      // S
  const std::vector<ShardPiece>& pieces() const { return pieces_; }  // ascending shard_offset

  // Views for checkpoints and tests, all (S) f32 over this rank's shard.
  ConstTensorView master_shard() const;  // fp32 master weights
  ConstTensorView m_shard() const;
  ConstTensorView v_shard() const;
  ConstTensorView grad_shard() const;    // the mean gradient after ReduceGradients (padding: 0)

  // Bytes this rank sent over dp (Comm::bytes_sent model) during the last ReduceGradients + Step:
  // ring reduce_scatter and all_gather of padded_numel f32, plus an 8-byte f64 all_reduce.
  uint64_t last_step_bytes_sent() const { return reduce_bytes_ + step_bytes_; }

 private:
  std::vector<Parameter> params_;
  std::vector<int64_t> flat_offset_;  // (params) first flat element of each parameter
  AdamWConfig config_;
  Comm* dp_;
  Comm* tp_ = nullptr;
  std::vector<bool> tp_replicated_;  // (params), with tp_

  int64_t numel_ = 0, padded_numel_ = 0, shard_begin_ = 0, shard_size_ = 0;
  std::vector<ShardPiece> pieces_;

  Buffer flat_grad_;    // (padded_numel) f32; this rank's chunk holds the reduced shard
  Buffer flat_param_;   // (padded_numel) f32; all_gather target
  Buffer state_;        // 3·(S) f32: master | m | v, zeroed (m = v = 0, padding = 0)
  Buffer norm_sq_;      // (1) f64 accumulator for the norm

  int64_t step_ = 0;
  double grad_norm_ = 0.0;
  bool reduced_ = false;  // ReduceGradients since the last Step
  uint64_t reduce_bytes_ = 0, step_bytes_ = 0;
};

}  // namespace om
