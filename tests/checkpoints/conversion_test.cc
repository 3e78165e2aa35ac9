// OrthoAdam moments across optimizer-unit grids (checkpoints/FORMAT.md "Loading under any layout"):
// saved with one --ortho-block (or optimizer) and loaded with another, m must be the same tensor in
// the parameter basis (the conversion is exact up to rounding), v must stay ≥ 0 and keep its total
// mass (every row and column of Q∘Q sums to 1), and an unchanged grid must load bit for bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "kernels/check/host_tensor.h"
#include "optim/distributed_optimizer.h"
#include "parallel/local_comm.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 11;

struct Model {
  HostTensor w{"w", DType::kF32, {12, 10}}, g{"g", DType::kF32, {6}};
  HostTensor dw{"dw", DType::kF32, {12, 10}}, dg{"dg", DType::kF32, {6}};
  Model() {
    w.FillNormal(Rng(kSeed, "w"), 0, 0.5);
    g.Fill(1.0);
  }
  std::vector<Parameter> params() {
    return {Parameter{"w", w.view(), dw.view(), true, {whole_tensor_block("w", w.shape())}},
            Parameter{"g", g.view(), dg.view(), false, {whole_tensor_block("g", g.shape())}}};
  }
};

OptimizerConfig config(OptimizerKind kind, int64_t block) {
  OptimizerConfig c;
  c.kind = kind;
  c.block = block;
  c.seed = kSeed;
  return c;
}

// Trains `c` for 3 steps on fixed gradients and saves it; returns the step directory. `moments`, when
// given, receives every unit's m then v as saved (unit order).
std::string train_and_save(const OptimizerConfig& c, const std::string& name, Model& m,
                           std::vector<std::vector<float>>* moments = nullptr) {
  LocalComm local("dp");
  const std::vector<Parameter> p = m.params();
  DistributedOptimizer opt(p, c, local);
  for (int k = 0; k < 3; ++k) {
    m.dw.FillNormal(Rng(kSeed, "dw" + std::to_string(k)), 0, 1.0);
    m.dg.FillNormal(Rng(kSeed, "dg" + std::to_string(k)), 0, 0.1);
    opt.ReduceGradients();
    opt.Step(1e-2f);
  }
  CheckpointState st;
  st.step = 3;
  st.optimizer = {{"kind", optimizer_kind_name(c.kind)}, {"transform", ortho_transform_name(c.transform)},
                  {"block", c.block}, {"seed", c.seed}};
  const std::string dir = ::testing::TempDir() + "/conversion_" + name;
  std::filesystem::remove_all(dir);
  StatusOr<std::string> path = save_checkpoint(dir, 0, st, opt, CheckpointLayout{}, nullptr);
  OM_CHECK(path.ok(), "%s", path.status().ToString().c_str());
  for (size_t u = 0; moments != nullptr && u < opt.units().size(); ++u)
    for (int which = 1; which <= 2; ++which) {
      const float* x = opt.unit_state(which, u).data_as<const float>();
      moments->emplace_back(x, x + opt.units()[u].numel());
    }
  return *path;
}

// The optimizer's m (which = 1) or v (which = 2, with Q∘Q) as full tensors in the parameter basis: per
// unit Q_rᵀ·x·Q_c (rotated units) or x itself, at the unit's rows. Index: parameter, element.
std::vector<std::vector<double>> parameter_basis(const DistributedOptimizer& opt, int which) {
  std::vector<std::vector<double>> out = {std::vector<double>(120, 0.0), std::vector<double>(6, 0.0)};
  const bool rotated = opt.config().kind == OptimizerKind::kOrthoAdam;
  const bool square = which == 2;
  for (size_t u : opt.local_units()) {
    const OptimizerUnit& unit = opt.units()[u];
    const int64_t R = unit.rows, K = unit.cols;
    const float* x = opt.unit_state(which, u).data_as<const float>();
    std::vector<double> y(static_cast<size_t>(R * K));
    if (!rotated) {
      for (int64_t i = 0; i < R * K; ++i) y[i] = x[i];
    } else {
      const UnitRotation r = unit_rotation(opt.config(), unit);
      std::vector<double> qc(static_cast<size_t>(K * K), 0.0);  // dense block-diagonal Q_c
      int64_t c0 = 0;
      for (size_t b = 0; b < r.widths.size(); ++b) {
        for (int64_t i = 0; i < r.widths[b]; ++i)
          for (int64_t j = 0; j < r.widths[b]; ++j) qc[(c0 + i) * K + c0 + j] = r.q_c[b][i * r.widths[b] + j];
        c0 += r.widths[b];
      }
      auto q = [&](double v) { return square ? v * v : v; };
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = 0; j < K; ++j) {
          double s = 0.0;
          for (int64_t a = 0; a < R; ++a)
            for (int64_t b = 0; b < K; ++b) s += q(r.q_r[a * R + i]) * x[a * K + b] * q(qc[b * K + j]);
          y[i * K + j] = s;
        }
    }
    for (int64_t i = 0; i < R * K; ++i) out[unit.param][unit.param_offset() + i] = y[i];
  }
  return out;
}

double total(const std::vector<std::vector<double>>& t) {
  double s = 0.0;
  for (const auto& v : t)
    for (double x : v) s += x;
  return s;
}

TEST(CheckpointConversion, SameGridLoadsBitForBit) {
  Model a, b;
  const OptimizerConfig c = config(OptimizerKind::kOrthoAdam, 4);
  std::vector<std::vector<float>> moments;
  const std::string dir = train_and_save(c, "same", a, &moments);
  LocalComm local("dp");
  const std::vector<Parameter> pb = b.params();
  DistributedOptimizer loaded(pb, c, local);
  StatusOr<LoadReport> r = load_checkpoint(dir, read_manifest(dir).value(), loaded, true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->converted_units, 0);
  EXPECT_EQ(loaded.step(), 3);
  EXPECT_EQ(std::memcmp(a.w.data<float>(), b.w.data<float>(), 120 * sizeof(float)), 0);  // the weights
  ASSERT_EQ(moments.size(), 2 * loaded.units().size());
  for (size_t u = 0; u < loaded.units().size(); ++u)
    for (int which = 1; which <= 2; ++which) {
      const std::vector<float>& want = moments[2 * u + (which - 1)];
      EXPECT_EQ(std::memcmp(loaded.unit_state(which, u).data, want.data(), want.size() * sizeof(float)), 0)
          << "unit " << u << (which == 1 ? " m" : " v");
    }
}

// Saved with `from`, loaded with `to` (grids or bases differ): m agrees in the parameter basis with
// the saved optimizer's m (loaded with `from` itself: the exact path), v keeps its mass and sign.
void expect_converted(const OptimizerConfig& from, const OptimizerConfig& to, const std::string& name) {
  Model a, b, c;
  const std::string dir = train_and_save(from, name, a);
  LocalComm local("dp");
  const std::vector<Parameter> pc = c.params(), pb = b.params();
  DistributedOptimizer saved(pc, from, local), loaded(pb, to, local);
  ASSERT_TRUE(load_checkpoint(dir, read_manifest(dir).value(), saved, true, nullptr).ok());
  StatusOr<LoadReport> r = load_checkpoint(dir, read_manifest(dir).value(), loaded, true, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->converted_units, 0) << name;
  const auto m_saved = parameter_basis(saved, 1), m_loaded = parameter_basis(loaded, 1);
  const auto v_saved = parameter_basis(saved, 2), v_loaded = parameter_basis(loaded, 2);
  // m: the loader rotates in double and rounds m̃' to f32 once; the reading here rotates back in double.
  // Each element of the f32 m̃' carries ≤ eps32/2 relative error, and the back-rotation sums ≤ R·K of
  // them weighted by |q| ≤ 1: ≤ (R·K)·eps32·max|m̃'|. Max |m̃'| ≤ ‖M‖_F ≤ sqrt(N)·max|M| (orthogonal
  // rotations keep the Frobenius norm); with R·K ≤ 120, N = 126: 120·sqrt(126)·eps32·max|M|.
  double m_scale = 0.0, worst = 0.0;
  for (size_t p = 0; p < 2; ++p)
    for (size_t i = 0; i < m_saved[p].size(); ++i) {
      m_scale = std::max(m_scale, std::fabs(m_saved[p][i]));
      worst = std::max(worst, std::fabs(m_loaded[p][i] - m_saved[p][i]));
    }
  EXPECT_LE(worst, 120.0 * std::sqrt(126.0) * 1.2e-7 * m_scale) << name << ": m differs in the parameter basis";
  EXPECT_GT(m_scale, 0.0);
  // v: Σ of (Q∘Q)-rotated values over a unit is preserved (rows and columns of Q∘Q sum to 1), so the total
  // over all units is too, up to f32 rounding (relative ≤ a few eps32 per element); every element ≥ 0.
  EXPECT_NEAR(total(v_loaded), total(v_saved), 1e-5 * std::fabs(total(v_saved))) << name;
  for (size_t u : loaded.local_units()) {
    const float* v = loaded.unit_state(2, u).data_as<const float>();
    for (int64_t i = 0; i < loaded.units()[u].numel(); ++i) EXPECT_GE(v[i], 0.0f);
  }
}

TEST(CheckpointConversion, OtherBlockSizeConvertsMExactlyAndVByTheDiagonalApproximation) {
  expect_converted(config(OptimizerKind::kOrthoAdam, 4), config(OptimizerKind::kOrthoAdam, 3), "block4to3");
}

TEST(CheckpointConversion, AdamWToOrthoAdamAndBack) {
  expect_converted(config(OptimizerKind::kAdamW, 4), config(OptimizerKind::kOrthoAdam, 5), "adamw_to_ortho");
  expect_converted(config(OptimizerKind::kOrthoAdam, 5), config(OptimizerKind::kAdamW, 4), "ortho_to_adamw");
}

}  // namespace
}  // namespace om
