// OrthoAdam (PAPER.md "OrthoAdam", DESIGN.md "OrthoAdam"): Adam whose moments live in a fixed random
// orthogonal basis per optimizer unit (optim/optimizer_units.h). For a unit with gradient G (R, K):
//   G̃ = Q_r · G · Q_cᵀ                            Q_r (R, R); Q_c = blockdiag of (K_b, K_b), K_b ≤ B
//   m = β1 m + (1 − β1) G̃,  v = β2 v + (1 − β2) G̃²   (moments in the rotated basis)
//   Ũ = m̂ / (sqrt(v̂) + ε)                          (bias-corrected, element-wise)
//   U = Q_rᵀ · Ũ · Q_c                              (the step back in the parameter basis)
//   θ ← θ − lr · (U + λ θ)                          (decoupled weight decay in the parameter basis)
// The ZeRO-1 DistributedOptimizer runs it on the units of its dp shard (kernels/block_rotate.h for the
// rotations, kernels/adamw.h adam_direction / adam_apply for the rest).
//
// The rotations of a unit are pure functions of (seed, logical tensor, logical offsets, size):
//   Q_r      of stream "ortho/<logical>/rows/<logical_row0>/<R>"
//   Q_c[b]   of stream "ortho/<logical>/cols/<logical_row0>/<logical column of block b>/<K_b>"
// drawn by core/orthogonal.h (Haar: Gaussian → Householder QR → sign fix, in double), then rounded
// to f32. Q_r deliberately ignores the column offset: a row-parallel weight (attn.o, mlp.down) split
// over tp then uses the same Q_r on both column halves, which with the block-diagonal Q_c makes the
// tp-split rotation equal the unsplit one whenever B divides the column shards.
//
// Transforms: haar (the algorithm); identity (Q = I: OrthoAdam then equals AdamW bit for bit, since
// a product with I is exact and adam_direction + adam_apply round like adamw_update);
// signed-permutation (Adam is equivariant to it, so also AdamW up to rounding: a test and an ablation).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/block_rotate.h"
#include "optim/adamw.h"
#include "optim/optimizer_units.h"

namespace om {

enum class OptimizerKind : uint8_t { kAdamW, kOrthoAdam };
enum class OrthoTransform : uint8_t { kHaar, kIdentity, kSignedPermutation };

StatusOr<OptimizerKind> parse_optimizer_kind(std::string_view s);      // "adamw" | "orthoadam"
StatusOr<OrthoTransform> parse_ortho_transform(std::string_view s);    // "haar" | "identity" | "signed-permutation"
std::string_view optimizer_kind_name(OptimizerKind k);
std::string_view ortho_transform_name(OrthoTransform t);

constexpr int64_t kDefaultOrthoBlock = 1024;

struct OptimizerConfig {
  AdamWConfig adam;
  OptimizerKind kind = OptimizerKind::kAdamW;
  int64_t block = kDefaultOrthoBlock;  // B (--ortho-block): unit rows, Q_c block width; AdamW shards by it too
  OrthoTransform transform = OrthoTransform::kHaar;
  uint64_t seed = 1234;                 // the rotations' seed (the trainer passes --seed)
  // The rotation GEMMs' arithmetic (--ortho-precision; kernels/block_rotate.h): kTF32 on CUDA only.
  RotatePrecision rotate_precision = RotatePrecision::kF32;
  // Draw the rotations on a thread of their own, overlapped with what follows the optimizer's constructor
  // (a checkpoint's load, the first forward and backward); the first Step waits for them. Layout only: the
  // same bits. The trainer sets it on GPU ranks, whose host cores are otherwise idle (DistributedOptimizer).
  bool background_rotations = false;
  // Elements per dp gradient bucket (--overlap-grad-reduce --ddp-bucket-size; optim/optimizer_units.h
  // GradBuckets): > 0 reduces each bucket as soon as the backward has finished it, overlapped with the rest
  // of the backward; 0, the default, reduces all gradients at once after it. Layout only: the same update.
  int64_t grad_bucket = 0;
};

// The rotations of one unit, in double (row-major), Q_c blocks in column order.
struct UnitRotation {
  std::vector<double> q_r;                // (R, R)
  std::vector<int64_t> widths;            // K_b, Σ = K
  std::vector<std::vector<double>> q_c;   // (K_b, K_b) each
};

std::string row_rotation_stream(const OptimizerUnit& unit);
std::string col_rotation_stream(const OptimizerUnit& unit, int64_t logical_col, int64_t width);
UnitRotation unit_rotation(const OptimizerConfig& config, const OptimizerUnit& unit);

// Elements of f32 rotation matrices a unit needs: R² + Σ K_b².
int64_t rotation_numel(const OptimizerUnit& unit, int64_t block);

// Views of a unit's rotations as draw_rotations lays them out from q (f32 on `device`): out->q_r (R, R),
// then each Q_c block (K_b, K_b) appended to out->q_c in column order. out->x is left alone.
void rotation_views(const OptimizerUnit& unit, int64_t block, const float* q, Device device, RotationUnit* out);

// Draws the rotations of units[k] for k in [0, units.size()), rounded to f32, into dst + offsets[k]: Q_r
// (R, R) then each Q_c block (K_b, K_b), row-major (offsets[k + 1] − offsets[k] ≥ rotation_numel). One unit
// per iteration of an OpenMP loop over `threads` threads; a unit's bits do not depend on the thread. Once
// *stop (optional) is true, the units not yet begun are skipped. Returns how many units were drawn.
int64_t draw_rotations(const OptimizerConfig& config, const std::vector<const OptimizerUnit*>& units,
                       const std::vector<int64_t>& offsets, float* dst, int threads,
                       const std::atomic<bool>* stop = nullptr);

}  // namespace om
