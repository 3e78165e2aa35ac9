// Checks for kernels/block_rotate.h, on one batch of units of different shapes (odd, 1-row, 1-column,
// several column blocks), both directions:
//   a. the f32 kernel (dnnl) against the f64 kernel (loops) on the same f32-representable inputs:
//      x normal, Haar Q's rounded to f32 (rule 2, the bound of two chained GEMMs);
//   b. f64 round trip: kInverse(kForward(x)) against x with the Haar Q's of core/orthogonal.h
//      (rule 2, rounding of both directions plus the measured orthogonality error of the Q's);
//   c. identity and signed-permutation Q's, f32 and f64, against the definition evaluated in double
//      (rule 1: one ±1 per row and column of every Q, so every output is ±one input, exactly).
// The expected values of (c) and the abs_sum bounds of (a) and (b) come from reference_rotate below,
// which evaluates the definition in the header directly rather than by the kernel's two passes, so
// (c) also pins the orientation (Q_r·x·Q_cᵀ, not Q_rᵀ·x·Q_c) of both kernels.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/orthogonal.h"
#include "kernels/block_rotate.h"
#include "kernels/check/checks.h"
#include "kernels/check/rotation_unit.h"

namespace om {
namespace {

// Unit shapes: R rows and the column block sizes K_b (K = Σ K_b).
struct UnitShape {
  int64_t R;
  std::vector<int64_t> blocks;
};
const std::vector<UnitShape>& unit_shapes() {
  static const std::vector<UnitShape> kShapes = {
      {5, {3, 4}},     // odd, two unequal blocks
      {16, {16, 16}},  // square blocks, R = K_b
      {1, {9}},        // a single row: Q_r = (±1)
      {64, {32, 16}},  // the largest, unequal blocks
      {6, {1}},        // a 1-D parameter stored as (R, 1): Q_c = (±1)
  };
  return kShapes;
}

enum class QKind : uint8_t { kHaar, kSignedPermutation, kIdentity };

using UnitData = HostRotationUnit;  // kernels/check/rotation_unit.h

HostTensor make_q(QKind kind, int64_t n, const std::string& stream, DType dt, const char* name) {
  const Rng rng(11, stream);
  const std::vector<double> q = kind == QKind::kHaar                ? haar_orthogonal(rng, n)
                                : kind == QKind::kSignedPermutation ? signed_permutation(rng, n)
                                                                    : identity_matrix(n);
  HostTensor t(name, dt, {n, n});
  for (int64_t i = 0; i < n * n; ++i) t.set(i, q[static_cast<size_t>(i)]);  // rounded to dt once
  return t;
}

// The batch: one unit per shape, x ~ N(0, 1) rounded to dt, Q's of `kind` rounded to dt.
std::vector<UnitData> make_units(QKind kind, DType dt) {
  std::vector<UnitData> units;
  for (size_t i = 0; i < unit_shapes().size(); ++i) {
    const UnitShape& s = unit_shapes()[i];
    const std::string id = "block_rotate/" + std::to_string(i);
    int64_t K = 0;
    for (int64_t kb : s.blocks) K += kb;
    UnitData u{HostTensor("x", dt, {s.R, K}), make_q(kind, s.R, id + "/q_r", dt, "q_r"), {}};
    u.x.FillNormal(Rng(11, id + "/x"), 0, 1.0);
    for (size_t b = 0; b < s.blocks.size(); ++b)
      u.q_c.push_back(make_q(kind, s.blocks[b], id + "/q_c/" + std::to_string(b), dt, "q_c"));
    units.push_back(std::move(u));
  }
  return units;
}

void rotate_all(std::vector<UnitData>& units, RotateDirection dir) {
  std::vector<RotationUnit> batch;
  for (UnitData& u : units) batch.push_back(u.view());
  block_rotate(ExecContext{}, batch, dir);
}

enum class Abs : uint8_t { kNo, kYes };

// y (R, K) = Q_r·x·Q_cᵀ (forward) or Q_rᵀ·x·Q_c (inverse) in double, straight from the definition:
//   forward  y[i, c0 + j] = Σ_k Σ_l Q_r[i, k] · x[k, c0 + l] · q_b[j, l]
//   inverse  y[i, c0 + j] = Σ_k Σ_l Q_r[k, i] · x[k, c0 + l] · q_b[l, j]
// over the column block b at offset c0. With Abs::kYes every factor is |·|, which gives the abs_sum
// |Q_r|·|x|·|Q_c|ᵀ (or |Q_r|ᵀ·|x|·|Q_c|) of the error bounds. `x` stands in for u.x (its shape).
HostTensor reference_rotate(const UnitData& u, const HostTensor& x, RotateDirection dir, Abs abs) {
  const int64_t R = u.R(), K = u.K();
  const bool fwd = dir == RotateDirection::kForward;
  auto f = [abs](double v) { return abs == Abs::kYes ? std::fabs(v) : v; };
  HostTensor y("reference", DType::kF64, {R, K});
  int64_t c0 = 0;
  for (const HostTensor& q : u.q_c) {
    const int64_t kb = q.shape()[0];
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < kb; ++j) {
        double acc = 0.0;
        for (int64_t k = 0; k < R; ++k) {
          const double a = f(u.q_r.get(fwd ? i * R + k : k * R + i));
          for (int64_t l = 0; l < kb; ++l) acc += a * f(x.get(k * K + c0 + l)) * f(q.get(fwd ? j * kb + l : l * kb + j));
        }
        y.set(i * K + c0 + j, acc);
      }
    c0 += kb;
  }
  return y;
}

const char* dir_name(RotateDirection d) { return d == RotateDirection::kForward ? "fwd" : "inv"; }

std::string tag(DType dt, const UnitData& u, const char* dir) {
  std::string blocks;
  for (const HostTensor& q : u.q_c) {
    if (!blocks.empty()) blocks += ',';
    blocks += std::to_string(q.shape()[0]);
  }
  return format_message("block_rotate %s R=%ld K=%ld {%s} %s", std::string(dtype_name(dt)).c_str(),
                        static_cast<long>(u.R()), static_cast<long>(u.K()), blocks.c_str(), dir);
}

// Check a: f32 kernel against f64 kernel, both directions.
void check_f32_vs_f64(CheckList& out) {
  for (RotateDirection dir : {RotateDirection::kForward, RotateDirection::kInverse}) {
    std::vector<UnitData> u32 = make_units(QKind::kHaar, DType::kF32);
    std::vector<UnitData> u64;
    for (const UnitData& u : u32) u64.push_back(u.Converted(DType::kF64));
    // abs_sum from the inputs, before the rotation overwrites them.
    std::vector<double> abs_max;
    for (const UnitData& u : u64) abs_max.push_back(reference_rotate(u, u.x, dir, Abs::kYes).max_abs());
    rotate_all(u32, dir);
    rotate_all(u64, dir);
    for (size_t i = 0; i < u32.size(); ++i) {
      // Forward (inverse alike, with Q_rᵀ and Q_c): t̂ = fl(Q_r·x) and ŷ = fl(t̂·q_bᵀ) per block, two
      // GEMMs with inner lengths R and K_b. Recursive summation in any order (dnnl blocks and FMAs
      // only tighten it) gives |t̂ − t| ≤ γ_R·|Q_r|·|x| and |ŷ − t̂·q_bᵀ| ≤ γ_{K_b}·|t̂|·|q_b|ᵀ, so
      //   |ŷ − y| ≤ (γ_R + γ_{K_b} + γ_R·γ_{K_b}) · S,   S = |Q_r|·|x|·|Q_c|ᵀ,   γ_n = n·u/(1 − n·u),
      // with u = eps/2: below (R + K_b)·eps·S. The f64 kernel is off by 2^-29 of that, inside the
      // factor 2 between u and eps. So n_terms = R + max K_b and abs_sum = max_ij S_ij over the unit:
      // compare_tensors takes one atol, and within a unit S_ij ~ R·K_b·E|q_r|·E|x|·E|q_b| ∝ sqrt(R·K_b)
      // varies little but for sqrt(max K_b / min K_b) between blocks, so using the max costs at most
      // that factor (sqrt 2 here); comparing unit by unit keeps the largest unit's S from setting the
      // smaller units' budgets.
      const Tolerance tol = for_reduction(DType::kF32, u32[i].R() + u32[i].max_block(), abs_max[i]);
      out.push_back(compare_tensors(tag(DType::kF32, u32[i], dir_name(dir)), "f32 kernel vs f64 kernel", u32[i].x,
                                    u64[i].x, tol));
    }
  }
}

// Check b: f64 kInverse(kForward(x)) against x with Haar Q's straight from haar_orthogonal.
void check_f64_round_trip(CheckList& out) {
  std::vector<UnitData> units = make_units(QKind::kHaar, DType::kF64);
  std::vector<HostTensor> x0, y;
  for (const UnitData& u : units) x0.push_back(u.x.Clone("x"));
  rotate_all(units, RotateDirection::kForward);
  for (const UnitData& u : units) y.push_back(u.x.Clone("forward"));
  rotate_all(units, RotateDirection::kInverse);
  const double eps = dtype_eps(DType::kF64);
  for (size_t i = 0; i < units.size(); ++i) {
    const UnitData& u = units[i];
    const int64_t R = u.R();
    // Orthogonality: E_r = Q_rᵀQ_r − I, E_b = q_bᵀq_b − I, measured as max-abs entries δ_r, δ_b. The
    // measurement's own dot products are off by <= γ_n·Σ_k |q_ki·q_kj| <= γ_n·‖q_i‖·‖q_j‖ < n·eps,
    // so the bound uses δ + n·eps.
    const double measured_r = orthogonality_error(u.q_r);
    const double d_r = measured_r + static_cast<double>(R) * eps;
    double kd_c = 0.0, measured_c = 0.0;  // max_b K_b·δ_b, and max_b of the measured δ_b
    for (const HostTensor& q : u.q_c) {
      const int64_t kb = q.shape()[0];
      const double measured = orthogonality_error(q);
      kd_c = std::max(kd_c, static_cast<double>(kb) * (measured + static_cast<double>(kb) * eps));
      measured_c = std::max(measured_c, measured);
    }
    // ẑ = inv(fwd(x)) − x splits into three parts (per element, n = R + K_b, S's entry-wise):
    //   forward rounding e1, |e1| <= n·eps·S1 with S1 = |Q_r|·|x|·|Q_c|ᵀ (check a's bound), carried
    //     through the exact inverse: |Q_rᵀ·e1·Q_c| <= n·eps·S1_back, S1_back = |Q_r|ᵀ·S1·|Q_c|;
    //   inverse rounding e2, |e2| <= n·eps·S2 with S2 = |Q_r|ᵀ·|ŷ|·|Q_c| of the computed ŷ;
    //   orthogonality: Q_rᵀ·Q_r·x·Q_cᵀ·Q_c = (I + E_r)·x·(I + E_c) is off x by
    //     |E_r·x + x·E_c + E_r·x·E_c| <= (R·δ_r + K_b·δ_b + R·K_b·δ_r·δ_b)·max|x|.
    // S1_back is where the bound is loose (|Q|ᵀ·|Q| is not I): it assumes the forward errors add up
    // with one sign, where they mostly cancel. Each S is bounded by its max over the unit (check a).
    const double x_max = x0[i].max_abs();
    const HostTensor s1 = reference_rotate(u, x0[i], RotateDirection::kForward, Abs::kYes);
    const double s1_back = reference_rotate(u, s1, RotateDirection::kInverse, Abs::kYes).max_abs();
    const double s2 = reference_rotate(u, y[i], RotateDirection::kInverse, Abs::kYes).max_abs();
    const double n_terms = static_cast<double>(R + u.max_block());
    const double orth = (static_cast<double>(R) * d_r + kd_c + static_cast<double>(R) * kd_c * d_r) * x_max;
    // atol = n·eps·(S1_back + S2) + orth, written as rule 2 with the orthogonality term expressed in
    // units of n·eps.
    const double abs_sum = s1_back + s2 + orth / (n_terms * eps);
    out.push_back(compare_tensors(tag(DType::kF64, u, "inv(fwd)"),
                                  format_message("vs x; |QᵀQ−I| r %.1e c %.1e", measured_r, measured_c), u.x, x0[i],
                                  for_reduction(DType::kF64, R + u.max_block(), abs_sum)));
  }
}

// Check c: identity and signed permutations, exact. All units of a batch are compared at once: each
// output is ±one input (one nonzero per row and column of each Q), in any summation order.
void check_exact_permutations(CheckList& out) {
  for (QKind kind : {QKind::kIdentity, QKind::kSignedPermutation})
    for (DType dt : {DType::kF32, DType::kF64})
      for (RotateDirection dir : {RotateDirection::kForward, RotateDirection::kInverse}) {
        std::vector<UnitData> units = make_units(kind, dt);
        std::vector<HostTensor> want;
        int64_t total = 0;
        for (const UnitData& u : units) {
          want.push_back(reference_rotate(u, u.x, dir, Abs::kNo));
          total += u.x.numel();
        }
        rotate_all(units, dir);
        HostTensor got_all("got", DType::kF64, {total}), want_all("want", DType::kF64, {total});
        int64_t at = 0;
        for (size_t i = 0; i < units.size(); ++i)
          for (int64_t e = 0; e < units[i].x.numel(); ++e, ++at) {
            got_all.set(at, units[i].x.get(e));
            want_all.set(at, want[i].get(e));
          }
        const std::string op = format_message("block_rotate %s all 5 units %s", std::string(dtype_name(dt)).c_str(),
                                              dir_name(dir));
        out.push_back(compare_tensors(
            op, kind == QKind::kIdentity ? "identity Q's: exact" : "signed-permutation Q's: exact", got_all,
            want_all, exact()));
      }
}

}  // namespace

CheckList check_block_rotate() {
  CheckList results;
  check_f32_vs_f64(results);
  check_f64_round_trip(results);
  check_exact_permutations(results);
  return results;
}

}  // namespace om
