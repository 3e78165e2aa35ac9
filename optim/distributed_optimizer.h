// DistributedOptimizer: AdamW or OrthoAdam sharded over the data-parallel group (ZeRO-1, DESIGN.md
// "ZeRO-1 distributed optimizer", "OrthoAdam"). Every dp rank holds the full (tp-local) parameters;
// each rank owns the optimizer state (fp32 master weights, m, v, and for OrthoAdam the rotations) of
// one shard of whole optimizer units (optim/optimizer_units.h), steps only that shard, and
// all-gathers the updated parameters. dp = 1 (a LocalComm) is the single-process optimizer.
//
// Flat layout. A flat f32 buffer of dp·S elements: shard r = [r·S, (r+1)·S) holds the units the
// ShardPlan gives rank r, back to back in unit order, then zero padding up to S (the largest shard).
// Parameter rows in no unit (vocabulary padding) are neither reduced nor updated and stay 0.
//
// A step (trainer side: norm = ReduceGradients(); coef = clip_coefficient(norm, max); Step(lr, coef)):
//   ReduceGradients  1. copy each unit's gradient rows into the flat gradient buffer
//                    2. reduce_scatter over dp into this rank's shard, in place: the SUM over replicas.
//                       The mean (as Megatron averages) is taken by scaling: the norm by 1/dp below, the
//                       update through grad_scale × 1/dp in step 4 — no extra pass over the shard. For
//                       power-of-two dp this is the same arithmetic bit for bit as scaling the shard
//                       first (a product with 2^-k is exact, so (g·2^-k)·s and g·(2^-k·s) round alike;
//                       sqrt(Σ(g·2^-k)²) = sqrt(Σg²)·2^-k exactly); for other dp it may differ in the last bit.
//                    3. global norm: sum_squares of the shard (every unit is owned by exactly one dp
//                       rank, so counted once), all_reduce(kSum) over dp (with CheckFinite's sum, as
//                       one 2-element f64 vector), sqrt, × 1/dp
//   Step             4. AdamW: adamw_update on each unit of the master shard, grad_scale = the
//                       caller's clip coefficient (optim/grad_clip.h).
//                       OrthoAdam: block_rotate forward (G̃, in place in the gradient shard),
//                       adam_direction over the shard (Ũ, in place), block_rotate inverse (U), then
//                       adam_apply per unit (θ −= lr·(U + λθ)); optim/orthoadam.h has the algorithm
//                    5. all_gather the master shard into the flat parameter buffer; copy every unit
//                       into its Parameter::value. dp = 1: nothing, as step 4's kernels wrote every value
//                       (the fused publish, kernels/adamw.h: no flat parameter buffer, no second pass
//                       over the master); PublishMaster casts the master shard into the values
// Splitting the step lets the trainer log the norm and skip a non-finite step before anything changes.
// Overlap (config.grad_bucket > 0 at dp > 1, --overlap-grad-reduce): steps 1–2 run per gradient bucket
// (optim/optimizer_units.h GradBuckets: whole parameters, the last ones first), each bucket's copy and
// reduce_scatter (Comm::reduce_scatter_deferred: on NCCL a stream of its own that the backward's
// kernels do not wait for) issued by GradientsReady as soon as the backward of the step's last
// micro-batch has finished every parameter of it, in bucket order; ReduceGradients issues whatever is
// left, joins, and goes on with step 3. Each bucket's reduced part lands in a separate (S) gradient
// shard (4·S bytes more; in place with one bucket). Element-wise this is the same arithmetic: the CPU
// path gives the same bits as without overlap, and as dp = 1 (tests/parallel/distributed_optimizer_test.cc).
// Launches: steps 1, 4 and 5 (5 at dp > 1 only) work on runs of consecutive units of one parameter (Run below),
// and each is one grouped call over all its runs (kernels/adamw.h adamw_update_group, adam_apply_group;
// kernels/cast.h cast_group: up to 64 or 96 tensors per launch), so on a GPU a step is a few launches
// whatever the parameter count (before: one per run and op, ~3 per parameter), with the same bits
// (tests/cuda/distributed_optimizer_test.cc counts them on the emulator).
//
// Exactness. MpiComm sums in rank order, ((g_0 + g_1) + g_2) + …, then × (1/dp) as above; the Adam kernels
// are element-wise and each unit's rotation is computed by one thread in a fixed order
// (kernels/block_rotate.h). So the parameters equal, bit for bit, the dp = 1 optimizer given that mean
// gradient and the same grad_scale, whichever rank owns a unit (tests/parallel/distributed_optimizer_test.cc).
// Only the norm differs in f64 rounding (summed per shard, then across ranks). That is the CPU path's
// promise. On CUDA, NCCL sums in its own order and the batched rotations (kernels/block_rotate.h) may
// pick other GEMM kernels for another batch of units, so CUDA results match the dp = 1 run within a
// reduction tolerance, not bit for bit. One GPU process (LocalComm) repeats its bits run to run
// (tests/cuda/trainer_test.cc resumes bitwise); with NCCL that holds while it picks the same algorithms.
//
// Devices. Every buffer lives on the parameters' device (all parameters on one device): the CPU with
// MpiComm or LocalComm, CUDA with NcclComm or LocalComm. The ops run through the kernels' device switch
// (CUDA: adamw.cu, block_rotate.cu, sum_squares.cu, cast.cu); the per-unit gradient copies are
// stream-ordered (copy_async). The host waits for the device once per step: ReduceGradients reads the
// norm back (so everything issued before it, the trainer's loss copies included, has finished).
// Precision. Gradients are f32 always; values f32 or bf16 (a bf16 Llama's matrices, model/llama.h
// "Precision"). The master shard is f32 and is the truth: it starts as the model's values (bf16
// converts exactly), and step 5 (step 4 at dp = 1) writes every value as the f32 master (f32: a copy) or its
// round-to-nearest-even bf16 (kernels/cast.h). At dp > 1 with any non-f32 value, step 5 gathers the
// weights in their own dtypes instead of f32 (PublishLayout, optim/optimizer_units.h): each rank casts
// its units into its chunk of a byte buffer (bf16 values rounded there, once), all_gathers the chunks
// as 4-byte words and copies every unit into its value — the same bits as gathering f32 and rounding
// after (rounding is element-wise), in half the bytes for bf16 matrices (tests/parallel/
// distributed_optimizer_test.cc: bitwise vs dp = 1, bytes vs the ring formula). The
// rotations are drawn on the host and copied to the device once; the norm is read back to the host.
// Drawing them is the costly part of OrthoAdam's start (LAPACK QR of every unit's matrices: 29 s for
// llama-130m's 1088 MiB on 2 cores). With config.background_rotations the constructor starts it on a
// thread of its own (omp threads − 1 of them) and returns; the first Step waits for it (AwaitRotations), so
// a checkpoint's load and the first forward and backward run meanwhile. The bits are the same either way.
//
// In place (dp = 1, AdamW): when the parameters' gradients lie in memory exactly as the one shard would
// (back to back in unit order: the model's gradient arena, optimizer_units.h gradients_form_shard), the
// shard is the gradients themselves. Step 1 and the flat gradient buffer go (4 bytes per parameter of
// memory, 8 of traffic per step); the same bits, since step 1 was an exact copy.
// Memory per parameter element: 4 (flat gradient; 0 in place) + the flat parameters, the all_gather target (4; the
// value's size, 2 for bf16, when gathering in the values' dtypes; none at dp = 1) + 12/dp (master, m, v
// of the shard) + 4/dp with more than one gradient bucket (the reduced shard's own buffer), besides the
// model's own value and grad.
// OrthoAdam adds its cached f32 rotations, R² + Σ K_b² floats per (R, K) unit, i.e. 4·(R/K + Σ K_b²/(R·K))
// ≤ 4·(R/K + B/R) bytes per element of the shard's units (rotation_bytes()): 8 bytes for a (256, 256)
// unit, 10 for a (1024, 512) one (B = 1024), divided over dp like the moments. They are cached, not
// regenerated each step: bench/optim/orthoadam_bench.cc measures both.
// Tensor parallelism: one DistributedOptimizer per tp rank over its tp-local parameters and its dp
// group, given the tp Comm and which parameters are replicated over tp (the norm gains,
// Llama::tp_replicated). Step 3 then adds the squares of replicated parameters' units on tp_rank 0
// only and all-reduces the partial sum over dp and then over tp, so each logical element counts once
// in the world. Without a tp Comm (or tp size 1) the norm is as above.
//
// REQUIRES: params non-empty, f32 or bf16 values with f32 gradients, contiguous, all on one device that
// `dp` and `tp` can carry, grad shaped like value, and the same list (names, shapes, order, values) on
// every dp rank; every dp rank calls ReduceGradients and Step in the same order (they are collectives).
// Thread safety: one thread drives an optimizer (its own draw thread touches only the rotations until
// AwaitRotations); `dp` must outlive it and carry no other collective concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <thread>
#include <vector>

#include "core/buffer.h"
#include "core/parameter.h"
#include "kernels/block_rotate.h"
#include "optim/orthoadam.h"
#include "optim/optimizer_units.h"
#include "parallel/comm.h"

namespace om {

class DistributedOptimizer {
 public:
  // Copies this rank's shard of the parameters into the master weights; m = v = 0; OrthoAdam draws
  // and caches the rotations of this rank's units.
  // `tp` (optional, must outlive the optimizer): the tensor-parallel group; `tp_replicated` has one
  // entry per parameter (true: the same tensor on every tp rank) and is required when tp is given.
  DistributedOptimizer(std::span<const Parameter> params, const OptimizerConfig& config, Comm& dp,
                       Comm* tp = nullptr, std::vector<bool> tp_replicated = {});

  DistributedOptimizer(const DistributedOptimizer&) = delete;
  DistributedOptimizer& operator=(const DistributedOptimizer&) = delete;
  ~DistributedOptimizer();  // stops a background draw (the units not begun) and joins it

  // Adds Σ x² (f64, on x's device, stream-ordered: no wait) to a finiteness check that the next
  // ReduceGradients reduces over dp and tp with the norm: a non-finite element of x on any rank makes
  // that norm NaN on every rank of the dp and tp groups. The trainer passes each micro-batch's per-token
  // losses, so all ranks agree on a non-finite step without reading the losses first or a collective of
  // their own. x: f32 or f64 on the CPU, bf16 or f32 on CUDA (kernels/sum_squares.h).
  void CheckFinite(ConstTensorView x);
  // Steps 1–3 above; collective over dp (and over tp when given). Returns the global gradient norm of
  // the mean gradient (also grad_norm()), NaN if CheckFinite saw a non-finite value on any rank since
  // the last call. Leaves every Parameter untouched. The step's one host wait: the norm (with the check)
  // is read back, after everything issued before it.
  double ReduceGradients();
  // With overlap on (overlaps()): the gradients of parameters [first, first + count) are final for this
  // step (the backward of the step's last micro-batch has added its share, on the compute stream); every
  // bucket whose parameters are now all final is reduced, in bucket order, without waiting for it.
  // Collective over dp (every rank reports the same parameters in the same order). Without overlap: nothing.
  void GradientsReady(size_t first, size_t count);
  bool overlaps() const { return overlap_; }
  size_t buckets() const { return buckets_.size(); }
  // Buckets reduced from GradientsReady (during a backward) and from ReduceGradients, since construction.
  int64_t buckets_overlapped() const { return buckets_overlapped_; }
  int64_t buckets_after_backward() const { return buckets_after_; }
  // Steps 4–5; collective over dp. `grad_scale` multiplies the mean gradient (the clip coefficient;
  // 1 without clipping). REQUIRES: ReduceGradients was called since the last Step. Increments step()
  // before the update (bias correction uses t ≥ 1), as AdamW::Step.
  void Step(float lr, float grad_scale = 1.0f);

  int64_t step() const { return step_; }
  const OptimizerConfig& config() const { return config_; }
  double grad_norm() const { return grad_norm_; }  // of the last ReduceGradients (0 before)

  const std::vector<OptimizerUnit>& units() const { return units_; }  // all units, every rank's
  const ShardPlan& plan() const { return plan_; }
  const std::vector<size_t>& local_units() const { return local_; }    // this rank's, ascending
  int64_t numel() const { return numel_; }                 // Σ units' elements (N)
  int64_t padded_numel() const { return plan_.shard_size * plan_.dp; }
  int64_t shard_size() const { return plan_.shard_size; }  // S

  // Views for checkpoints and tests, all (S) f32 over this rank's shard (unit u of local_units() at
  // plan().offset[u]; the rest is padding).
  ConstTensorView master_shard() const;  // fp32 master weights
  ConstTensorView m_shard() const;       // OrthoAdam: in the rotated basis
  ConstTensorView v_shard() const;
  // The gradient summed over the dp replicas after ReduceGradients (padding: 0; the mean is this × 1/dp).
  // OrthoAdam's Step rotates it in place, so after Step it holds the last step's U instead.
  ConstTensorView grad_shard() const;
  // Whether the shard is the parameters' own gradients (dp = 1, AdamW; "In place" above).
  bool gradients_in_place() const { return gradients_in_place_; }

  // Checkpoints (checkpoints/checkpoint.h): the state of local unit u (an index into units() owned by
  // this rank), which = 0 master, 1 m, 2 v, shaped (rows, cols); set_step restores the step counter;
  // PublishMaster all-gathers every rank's master shard into every Parameter::value (step 5 above;
  // collective over dp) after the state was written.
  TensorView unit_state(int which, size_t u) const;
  void set_step(int64_t step) { step_ = step; }
  void PublishMaster();

  // Bytes of cached f32 rotations on this rank (0 for AdamW).
  size_t rotation_bytes() const { return rotations_.size(); }
  // Bytes of the flat gradient and parameter buffers, the reduced shard and the state (master, m, v) as
  // allocated on this rank: what "Memory per parameter element" below adds up to, rotations aside.
  size_t buffer_bytes() const { return flat_grad_.size() + grad_shard_.size() + flat_param_.size() + state_.size(); }
  // OrthoAdam with config().background_rotations: waits for the drawing thread and, on a GPU, copies the
  // rotations to it (copy_bytes: waits for the device). The first Step calls it; later calls, and calls
  // without a background draw (the constructor has done both), return at once.
  void AwaitRotations();
  // Until AwaitRotations: the draw may still run, or its rotations wait in host memory for the copy.
  bool rotations_pending() const { return draw_thread_.joinable() || rotation_staging_.size() > 0; }
  // Where the rotations' time went (0 for AdamW): drawing them (on rotation_threads() threads; in the
  // background or inside the constructor) and waiting for a background draw (AwaitRotations; the rest of
  // the draw ran beside other work). Valid after AwaitRotations.
  double rotation_draw_seconds() const { return rotation_draw_seconds_; }
  double rotation_wait_seconds() const { return rotation_wait_seconds_; }
  int rotation_threads() const { return rotation_threads_; }
  // SB of the weight all_gather in the values' dtypes (PublishLayout); 0 when it gathers f32 or dp = 1.
  int64_t publish_shard_bytes() const { return narrow_publish_ ? publish_.shard_bytes : 0; }

  // Bytes this rank sent over dp (Comm::bytes_sent model) during the last ReduceGradients + Step:
  // ring reduce_scatter of padded_numel f32, all_gather of padded_numel f32 (or of dp·publish_shard_bytes
  // when gathering in the values' dtypes), plus an 8-byte f64 all_reduce.
  uint64_t last_step_bytes_sent() const { return reduce_bytes_ + step_bytes_; }

 private:
  // Units [first, first + count) of one parameter whose rows follow each other and whose places in a
  // destination buffer follow each other too: one entry of a grouped copy, cast or Adam call covers the
  // run instead of one per unit (every such op is element-wise, so the bits are the same).
  struct Run {
    size_t first = 0, count = 0;
    int64_t numel = 0;
  };
  // Merges `units` (ascending) into runs, given each unit's offset and size in the destination.
  template <typename OffsetFn, typename SizeFn>
  std::vector<Run> MakeRuns(const std::vector<size_t>& units, OffsetFn offset, SizeFn size) const;
  TensorView RunValue(const Run& run) const;  // the run's elements in its parameter's value

  TensorView ShardView(int64_t which, int64_t offset, int64_t n, const char* name) const;  // master|m|v
  TensorView GradView(int64_t offset, int64_t n) const;  // within this rank's gradient shard
  void IssueBucket(size_t b);  // steps 1–2 for bucket b
  void PublishNarrow();  // PublishMaster with narrow_publish_ (step 5 in the values' dtypes)

  float inv_dp() const { return 1.0f / static_cast<float>(dp_->size()); }

  std::vector<Parameter> params_;
  OptimizerConfig config_;
  ExecContext ctx_;  // the parameters' device, default stream
  Comm* dp_;
  Comm* tp_ = nullptr;
  std::vector<bool> tp_replicated_;  // (params), with tp_

  std::vector<OptimizerUnit> units_;
  ShardPlan plan_;
  std::vector<size_t> local_;
  int64_t numel_ = 0;
  GradBuckets buckets_;                // one bucket without overlap
  std::vector<std::vector<Run>> bucket_runs_;  // (buckets) its units, contiguous in the flat gradient buffer
  std::vector<Run> gathered_runs_;     // every unit, contiguous in the (dp·S) all_gather of the shards
  std::vector<Run> local_runs_;        // this rank's units, contiguous in its shard
  std::vector<Run> publish_runs_;      // with narrow_publish_: every unit, contiguous in publish bytes
  std::vector<Run> local_publish_runs_;

  Buffer flat_grad_;    // (dp·S) f32; one bucket: this rank's chunk holds the reduced shard; none in place
  bool gradients_in_place_ = false;  // dp = 1 AdamW: grad_base_ is the parameters' own gradients
  Buffer grad_shard_;   // (S) f32, the reduced shard, with more than one bucket
  float* grad_base_ = nullptr;  // this rank's reduced shard: in flat_grad_, grad_shard_ or the gradients
  bool overlap_ = false;
  std::vector<bool> param_ready_;  // (params) GradientsReady since the last ReduceGradients
  size_t next_bucket_ = 0;         // the first bucket not issued yet this step
  int64_t buckets_overlapped_ = 0, buckets_after_ = 0;
  Buffer flat_param_;   // all_gather target: (dp·S) f32, (dp·SB) bytes with narrow_publish_, none at dp = 1
  bool narrow_publish_ = false;  // dp > 1 and some value is not f32 (Precision above)
  PublishLayout publish_;        // with narrow_publish_
  Buffer state_;        // 3·(S) f32: master | m | v, zeroed (m = v = 0, padding = 0)
  Buffer norm_sq_;      // (2) f64: the norm's sum of squares, CheckFinite's sum
  Buffer rotations_;    // OrthoAdam: every local unit's Q_r and Q_c blocks, f32
  std::vector<RotationUnit> rotation_units_;  // (local units) x = the unit's gradient shard slice
  // The draw (AwaitRotations): host f32 copies on a GPU until copied; with background_rotations the thread
  // that writes them (or rotations_ on the CPU) and rotation_draw_seconds_, and its stop flag.
  Buffer rotation_staging_;
  std::thread draw_thread_;
  std::atomic<bool> stop_draw_{false};
  int rotation_threads_ = 0;
  double rotation_draw_seconds_ = 0.0, rotation_wait_seconds_ = 0.0;

  int64_t step_ = 0;
  double grad_norm_ = 0.0;
  bool reduced_ = false;  // ReduceGradients since the last Step
  uint64_t reduce_bytes_ = 0, step_bytes_ = 0, issued_bytes_ = 0;  // issued_: by buckets issued this step
};

}  // namespace om
