#include "optim/orthoadam.h"

#include <algorithm>

#include "core/check.h"
#include "core/orthogonal.h"

namespace om {

StatusOr<OptimizerKind> parse_optimizer_kind(std::string_view s) {
  if (s == "adamw") return OptimizerKind::kAdamW;
  if (s == "orthoadam") return OptimizerKind::kOrthoAdam;
  return Status::InvalidArgument("--optimizer '" + std::string(s) + "': expected adamw or orthoadam");
}

StatusOr<OrthoTransform> parse_ortho_transform(std::string_view s) {
  if (s == "haar") return OrthoTransform::kHaar;
  if (s == "identity") return OrthoTransform::kIdentity;
  if (s == "signed-permutation") return OrthoTransform::kSignedPermutation;
  return Status::InvalidArgument("--ortho-transform '" + std::string(s) +
                                 "': expected haar, identity or signed-permutation");
}

std::string_view optimizer_kind_name(OptimizerKind k) { return k == OptimizerKind::kAdamW ? "adamw" : "orthoadam"; }

std::string_view ortho_transform_name(OrthoTransform t) {
  switch (t) {
    case OrthoTransform::kHaar: return "haar";
    case OrthoTransform::kIdentity: return "identity";
    case OrthoTransform::kSignedPermutation: return "signed-permutation";
  }
  return "?";
}

std::string row_rotation_stream(const OptimizerUnit& u) {
  return "ortho/" + u.logical + "/rows/" + std::to_string(u.logical_row0) + "/" + std::to_string(u.rows);
}

std::string col_rotation_stream(const OptimizerUnit& u, int64_t logical_col, int64_t width) {
  return "ortho/" + u.logical + "/cols/" + std::to_string(u.logical_row0) + "/" + std::to_string(logical_col) + "/" +
         std::to_string(width);
}

namespace {

std::vector<double> draw(const OptimizerConfig& c, const std::string& stream, int64_t n) {
  const Rng rng(c.seed, stream);
  switch (c.transform) {
    case OrthoTransform::kHaar: return haar_orthogonal(rng, n);
    case OrthoTransform::kIdentity: return identity_matrix(n);
    case OrthoTransform::kSignedPermutation: return signed_permutation(rng, n);
  }
  return {};
}

}  // namespace

UnitRotation unit_rotation(const OptimizerConfig& config, const OptimizerUnit& unit) {
  UnitRotation r;
  r.q_r = draw(config, row_rotation_stream(unit), unit.rows);
  r.widths = column_blocks(unit, config.block);
  int64_t col = unit.logical_col0;
  for (int64_t w : r.widths) {
    r.q_c.push_back(draw(config, col_rotation_stream(unit, col, w), w));
    col += w;
  }
  return r;
}

int64_t rotation_numel(const OptimizerUnit& unit, int64_t block) {
  int64_t n = unit.rows * unit.rows;
  for (int64_t w : column_blocks(unit, block)) n += w * w;
  return n;
}

void rotation_views(const OptimizerUnit& unit, int64_t block, const float* q, Device device, RotationUnit* out) {
  const auto view = [&](int64_t n) {
    const ConstTensorView v = make_view(q, DType::kF32, Shape{n, n}, device, "orthoadam.q");
    q += n * n;
    return v;
  };
  out->q_r = view(unit.rows);
  for (int64_t w : column_blocks(unit, block)) out->q_c.push_back(view(w));
}

int64_t draw_rotations(const OptimizerConfig& config, const std::vector<const OptimizerUnit*>& units,
                       const std::vector<int64_t>& offsets, float* dst, int threads, const std::atomic<bool>* stop) {
  OM_CHECK(offsets.size() >= units.size(), "draw_rotations: %zu offsets for %zu units", offsets.size(), units.size());
  const int64_t n_units = static_cast<int64_t>(units.size());
  int64_t drawn = 0;
#pragma omp parallel for num_threads(std::max(1, threads)) schedule(dynamic, 1) reduction(+ : drawn)
  for (int64_t k = 0; k < n_units; ++k) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) continue;
    const UnitRotation rot = unit_rotation(config, *units[k]);
    float* at = dst + offsets[k];
    const auto store = [&](const std::vector<double>& q) {
      for (size_t i = 0; i < q.size(); ++i) at[i] = static_cast<float>(q[i]);
      at += q.size();
    };
    store(rot.q_r);
    for (const std::vector<double>& q : rot.q_c) store(q);
    ++drawn;
  }
  return drawn;
}

}  // namespace om
