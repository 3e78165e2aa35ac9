// OrthoAdam (optim/orthoadam.h) through the single-process optimizer (DistributedOptimizer over a
// LocalComm): the algorithm's facts, each one a numerical comparison.
//   identity rotations      ⇒ AdamW bit for bit, 10 steps (products with I are exact; adam_direction +
//                             adam_apply round like adamw_update)
//   signed permutations     ⇒ AdamW bit for bit as well (Adam is equivariant to them, and a product with
//                             one ±1 per row and column is exact), which is "AdamW within rounding" with
//                             zero rounding
//   Haar rotations, 1 step  ⇒ the naive double reference Q_rᵀ · Adam(Q_r G Q_cᵀ) · Q_c within a bound
//                             derived per element from the f32 GEMMs
//   rotations are layout-invariant: a tp rank's unit gets the same matrices as the same logical piece
//                             at tp = 1 when B divides the shards
//   drawn in the background ⇒ the same bits as drawn in the constructor; a stopped draw writes nothing;
//                             the draw's threads block the preemption signals
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kernels/check/host_tensor.h"
#include "kernels/check/tolerance.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/distributed_optimizer.h"
#include "parallel/local_comm.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 77;
constexpr int64_t kBlock = 4;

// w (10, 12) decays: row units [0,4) [4,8) [8,10), column blocks {4, 4, 4}; b (7) does not: chunks
// {4, 3}; w2 (3, 5): one unit, column blocks {4, 1}. Units and blocks of several sizes, partial ones.
struct Model {
  HostTensor w{"w", DType::kF32, {10, 12}}, b{"b", DType::kF32, {7}}, w2{"w2", DType::kF32, {3, 5}};
  HostTensor dw{"dw", DType::kF32, {10, 12}}, db{"db", DType::kF32, {7}}, dw2{"dw2", DType::kF32, {3, 5}};
  Model() {
    w.FillNormal(Rng(kSeed, "init/w"), 0, 0.5);
    b.FillNormal(Rng(kSeed, "init/b"), 0, 0.5);
    w2.FillNormal(Rng(kSeed, "init/w2"), 0, 0.5);
  }
  std::vector<Parameter> params() {
    return {Parameter{"w", w.view(), dw.view(), true, {whole_tensor_block("w", w.shape())}},
            Parameter{"b", b.view(), db.view(), false, {whole_tensor_block("b", b.shape())}},
            Parameter{"w2", w2.view(), dw2.view(), true, {whole_tensor_block("w2", w2.shape())}}};
  }
  // Step k's gradient: normal draws times magnitudes spread over 1e-4 .. 10, so some coordinates have
  // sqrt(v) near eps and others far above it.
  void SetGrads(int k) {
    HostTensor* g[] = {&dw, &db, &dw2};
    for (int i = 0; i < 3; ++i) {
      const Rng noise(kSeed, "grad/" + g[i]->name()), mag(kSeed, "mag/" + g[i]->name());
      for (int64_t j = 0; j < g[i]->numel(); ++j) {
        const double scale = std::pow(10.0, -4.0 + 5.0 * mag.UniformDouble(static_cast<uint64_t>(j)));
        g[i]->set(j, scale * noise.NormalDouble(static_cast<uint64_t>(k * 1000 + j)));
      }
    }
  }
};

OptimizerConfig config(OptimizerKind kind, OrthoTransform transform = OrthoTransform::kHaar) {
  OptimizerConfig c;
  c.adam.beta1 = 0.9f;
  c.adam.beta2 = 0.99f;
  c.adam.eps = 1e-8f;
  c.adam.weight_decay = 0.1f;
  c.kind = kind;
  c.block = kBlock;
  c.transform = transform;
  c.seed = kSeed;
  return c;
}

float lr_at(int k) { return 1e-2f / static_cast<float>(k); }

int64_t bit_mismatches(const HostTensor& a, const HostTensor& b) {
  int64_t bad = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.data<float>()[i], y = b.data<float>()[i];
    if (std::memcmp(&x, &y, sizeof(float)) != 0) ++bad;
  }
  return bad;
}

// Ten steps of OrthoAdam with `transform` and of AdamW on identical gradients; every parameter must
// agree bit for bit after every step.
void expect_equals_adamw(OrthoTransform transform) {
  Model ortho, adam;
  LocalComm local("dp");
  const std::vector<Parameter> po = ortho.params(), pa = adam.params();
  DistributedOptimizer opt(po, config(OptimizerKind::kOrthoAdam, transform), local);
  AdamW ref(pa, config(OptimizerKind::kAdamW).adam);
  EXPECT_GT(opt.rotation_bytes(), 0u);
  for (int k = 1; k <= 10; ++k) {
    ortho.SetGrads(k);
    adam.SetGrads(k);
    opt.ReduceGradients();
    opt.Step(lr_at(k), 0.75f);
    ref.Step(lr_at(k), 0.75f);
    EXPECT_EQ(bit_mismatches(ortho.w, adam.w), 0) << "w, step " << k;
    EXPECT_EQ(bit_mismatches(ortho.b, adam.b), 0) << "b, step " << k;
    EXPECT_EQ(bit_mismatches(ortho.w2, adam.w2), 0) << "w2, step " << k;
  }
}

TEST(OrthoAdam, IdentityTransformIsAdamWBitwiseForTenSteps) { expect_equals_adamw(OrthoTransform::kIdentity); }

TEST(OrthoAdam, SignedPermutationIsAdamWBitwiseForTenSteps) {
  expect_equals_adamw(OrthoTransform::kSignedPermutation);
}

TEST(OrthoAdam, HaarDiffersFromAdamW) {
  // The control for the two tests above: with Haar rotations the same run moves the parameters
  // differently (a rotation that did nothing would pass them too).
  Model ortho, adam;
  LocalComm local("dp");
  const std::vector<Parameter> po = ortho.params(), pa = adam.params();
  DistributedOptimizer opt(po, config(OptimizerKind::kOrthoAdam), local);
  AdamW ref(pa, config(OptimizerKind::kAdamW).adam);
  ortho.SetGrads(1);
  adam.SetGrads(1);
  opt.ReduceGradients();
  opt.Step(lr_at(1));
  ref.Step(lr_at(1));
  EXPECT_GT(bit_mismatches(ortho.w, adam.w), ortho.w.numel() / 2);
}

// Row-major (n, m) double matrix helpers for the reference.
using Mat = std::vector<double>;
Mat matmul(const Mat& a, const Mat& b, int64_t n, int64_t k, int64_t m, bool ta = false, bool tb = false) {
  Mat c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double s = 0.0;
      for (int64_t l = 0; l < k; ++l) s += (ta ? a[l * n + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * m + j]);
      c[i * m + j] = s;
    }
  return c;
}
Mat abs_of(Mat a) {
  for (double& x : a) x = std::fabs(x);
  return a;
}
// Dense block-diagonal Q_c (K, K) of a unit's column blocks.
Mat block_diag(const UnitRotation& r) {
  int64_t K = 0;
  for (int64_t w : r.widths) K += w;
  Mat q(static_cast<size_t>(K * K), 0.0);
  int64_t c0 = 0;
  for (size_t b = 0; b < r.widths.size(); ++b) {
    const int64_t w = r.widths[b];
    for (int64_t i = 0; i < w; ++i)
      for (int64_t j = 0; j < w; ++j) q[(c0 + i) * K + c0 + j] = r.q_c[b][i * w + j];
    c0 += w;
  }
  return q;
}

TEST(OrthoAdam, OneHaarStepEqualsTheNaiveDoubleReference) {
  // Reference per unit, in double with the double Q's of unit_rotation (the optimizer uses them
  // rounded to f32): G̃ = Q_r G Q_cᵀ; at step 1, m̂ = G̃ and v̂ = G̃², so Ũ = G̃ / (|G̃| + ε);
  // U = Q_rᵀ Ũ Q_c; θ' = θ − lr (U + λ θ).
  // Error bound of the f32 path, per element, with u = 2⁻²⁴ and A = |Q_r| |G| |Q_c|ᵀ:
  //   G̃: the Q's are rounded (relative u each) and each of the two GEMMs adds at most (n + 1)·u of its
  //      terms' absolute sum (n = R, then K_b ≤ B), so |δG̃| ≤ e·A with e = (R + B + 4)·u.
  //   Ũ: |∂Ũ/∂G̃| = ε / (|G̃| + ε)², so |δŨ| ≤ ε·|δG̃| / ((|G̃| − |δG̃|)₊ + ε)² (capped at 2: |Ũ| ≤ 1), plus
  //      the direction's own few roundings, ≤ 8u·|Ũ| (adam_direction rounds once to f32 after ~6
  //      double operations).
  //   U: the same two GEMMs on Ũ: |δU| ≤ |Q_r|ᵀ |δŨ| |Q_c| + e·|Q_r|ᵀ |Ũ| |Q_c|.
  //   θ': |δθ'| ≤ lr·|δU| + 2u·(|θ| + lr·(|U| + λ|θ|)) (adam_apply rounds once; θ and lr are f32).
  const OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  Model m;
  LocalComm local("dp");
  const std::vector<Parameter> params = m.params();
  std::vector<HostTensor> before;
  for (const HostTensor* t : {&m.w, &m.b, &m.w2}) before.push_back(t->Clone());
  DistributedOptimizer opt(params, c, local);
  m.SetGrads(1);
  const float lr = 0.05f;
  opt.ReduceGradients();
  opt.Step(lr);

  const HostTensor* grads[] = {&m.dw, &m.db, &m.dw2};
  const HostTensor* after[] = {&m.w, &m.b, &m.w2};
  const double u = std::ldexp(1.0, -24), eps = c.adam.eps, wd = c.adam.weight_decay;
  double worst_ratio = 0.0, worst_bound = 0.0;
  int64_t checked = 0, bad = 0;
  for (const OptimizerUnit& unit : opt.units()) {
    const int64_t R = unit.rows, K = unit.cols, off = unit.param_offset();
    const UnitRotation rot = unit_rotation(c, unit);
    const Mat qr = rot.q_r, qc = block_diag(rot);
    Mat g(static_cast<size_t>(R * K));
    for (int64_t i = 0; i < R * K; ++i) g[i] = grads[unit.param]->get(off + i);
    const Mat gt = matmul(matmul(qr, g, R, R, K), qc, R, K, K, false, true);
    const Mat a = matmul(matmul(abs_of(qr), abs_of(g), R, R, K), abs_of(qc), R, K, K, false, true);
    const double e = static_cast<double>(R + c.block + 4) * u;
    Mat ut(gt.size()), dut(gt.size());
    for (size_t i = 0; i < gt.size(); ++i) {
      ut[i] = gt[i] / (std::fabs(gt[i]) + eps);
      const double dg = e * a[i], lo = std::max(0.0, std::fabs(gt[i]) - dg);
      dut[i] = std::min(2.0, eps * dg / ((lo + eps) * (lo + eps))) + 8.0 * u * std::fabs(ut[i]);
    }
    const Mat U = matmul(matmul(qr, ut, R, R, K, true), qc, R, K, K);
    const Mat dU1 = matmul(matmul(abs_of(qr), dut, R, R, K, true), abs_of(qc), R, K, K);
    const Mat dU2 = matmul(matmul(abs_of(qr), abs_of(ut), R, R, K, true), abs_of(qc), R, K, K);
    const bool decay = params[unit.param].weight_decay;
    for (int64_t i = 0; i < R * K; ++i) {
      const double theta = before[unit.param].get(off + i);
      const double want = theta - lr * (U[i] + (decay ? wd : 0.0) * theta);
      const double bound = lr * (dU1[i] + e * dU2[i]) + 2.0 * u * (std::fabs(theta) + lr * (std::fabs(U[i]) + wd * std::fabs(theta)));
      const double err = std::fabs(after[unit.param]->get(off + i) - want);
      worst_ratio = std::max(worst_ratio, err / bound);
      worst_bound = std::max(worst_bound, bound);
      if (err > bound) ++bad;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 10 * 12 + 7 + 3 * 5);
  EXPECT_EQ(bad, 0) << "worst error / bound " << worst_ratio;
  // The bound resolves the step: far below lr, the size of every coordinate's move.
  EXPECT_LT(worst_bound, 1e-3 * lr);
  std::printf("one Haar step vs double reference: worst error / bound %.3f, worst bound %.2e (lr %.2e)\n",
              worst_ratio, worst_bound, static_cast<double>(lr));
}

// A Comm that only carries a rank and a size: enough to build one tp rank's Llama (the constructor
// reads rank and size; no collective runs here).
class ShapeOnlyComm final : public Comm {
 public:
  ShapeOnlyComm(int rank, int size) : Comm("tp", rank, size) {}

 private:
  [[noreturn]] static void fail() { OM_CHECK(false, "ShapeOnlyComm carries no collectives"); std::abort(); }
  void do_all_reduce(TensorView, ReduceOp) override { fail(); }
  void do_reduce_scatter(ConstTensorView, TensorView) override { fail(); }
  void do_all_gather(ConstTensorView, TensorView) override { fail(); }
  void do_broadcast(TensorView, int) override { fail(); }
  void do_barrier() override { fail(); }
};

// The unit of `units` that starts at the same logical row of the same logical tensor.
const OptimizerUnit* find_unit(const std::vector<OptimizerUnit>& units, const OptimizerUnit& like) {
  for (const OptimizerUnit& u : units)
    if (u.logical == like.logical && u.logical_row0 == like.logical_row0) return &u;
  return nullptr;
}

TEST(OrthoAdam, RotationsOfALogicalPieceAreTheSameOnEveryTpRank) {
  // tiny at vocabulary 64: tp2 shards are Cl = 128 rows of q/k/v and columns of o, Fl = 344 rows of
  // gate/up and columns of down, Vl = 128 vocabulary rows. B = 8 divides all of them, so every tp2 unit
  // is a logical piece of a tp1 unit: the same rows (column-parallel, vocabulary) or the same rows with
  // a column range (row-parallel o, down), and then Q_r is the same matrix and the Q_c blocks are the
  // tp1 unit's blocks over those columns.
  LlamaConfig cfg = LlamaConfig::Preset("tiny").value();
  cfg.vocab_size = 64;
  OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  c.block = 8;
  const Llama full(cfg, 1);
  const std::vector<OptimizerUnit> tp1 = make_units(full.parameters(), c.block);
  int64_t compared = 0, padding_free = 0;
  for (int r = 0; r < 2; ++r) {
    ShapeOnlyComm tp(r, 2);
    const Llama part(cfg, 1, Device::Cpu(), DType::kF32, &tp);
    for (const OptimizerUnit& unit : make_units(part.parameters(), c.block)) {
      const OptimizerUnit* whole = find_unit(tp1, unit);
      ASSERT_NE(whole, nullptr) << unit.logical << " row " << unit.logical_row0 << " on tp rank " << r;
      ASSERT_EQ(whole->rows, unit.rows) << unit.logical;
      ASSERT_GE(unit.logical_col0, whole->logical_col0);
      ASSERT_LE(unit.logical_col0 + unit.cols, whole->logical_col0 + whole->cols);
      const UnitRotation a = unit_rotation(c, unit), b = unit_rotation(c, *whole);
      EXPECT_EQ(a.q_r, b.q_r) << unit.logical << " row " << unit.logical_row0;
      // Blocks of the tp1 unit that lie in this unit's columns, in order.
      std::vector<std::vector<double>> want;
      int64_t col = whole->logical_col0;
      for (size_t k = 0; k < b.widths.size(); ++k) {
        if (col >= unit.logical_col0 && col < unit.logical_col0 + unit.cols) want.push_back(b.q_c[k]);
        col += b.widths[k];
      }
      EXPECT_EQ(a.q_c, want) << unit.logical << " row " << unit.logical_row0;
      ++compared;
    }
    // Vocabulary padding: tp rank 1 holds rows 128..255 of a 64-row vocabulary, i.e. only padding,
    // and so no unit of embed.weight or lm_head.weight at all.
    for (const OptimizerUnit& unit : make_units(part.parameters(), c.block))
      if (r == 1 && (unit.logical == "embed.weight" || unit.logical == "lm_head.weight")) ++padding_free;
  }
  EXPECT_GT(compared, 100);
  EXPECT_EQ(padding_free, 0);
}

TEST(OrthoAdam, RotationsDependOnTheUnitGridWhenBDoesNotDivideTheShards) {
  // The converse: with B = 1024 the tp1 q unit has 256 rows and the tp2 one 128, so the same logical
  // rows get different rotations (the documented reason for "exact when the unit grids coincide").
  LlamaConfig cfg = LlamaConfig::Preset("tiny").value();
  cfg.vocab_size = 64;
  const OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  OptimizerConfig big = c;
  big.block = 1024;
  const Llama full(cfg, 1);
  ShapeOnlyComm tp(0, 2);
  const Llama part(cfg, 1, Device::Cpu(), DType::kF32, &tp);
  const std::vector<OptimizerUnit> a = make_units(full.parameters(), big.block), b = make_units(part.parameters(), big.block);
  const OptimizerUnit* qa = find_unit(a, {0, 0, 0, 0, "layers.0.attn.q.weight", {}, 0, 0});
  const OptimizerUnit* qb = find_unit(b, {0, 0, 0, 0, "layers.0.attn.q.weight", {}, 0, 0});
  ASSERT_NE(qa, nullptr);
  ASSERT_NE(qb, nullptr);
  EXPECT_EQ(qa->rows, 256);
  EXPECT_EQ(qb->rows, 128);
}

// config.background_rotations (what the trainer sets on a GPU): the draw runs on a thread of its own and
// the first Step waits for it, so the steps have the bits of a draw inside the constructor. The units are
// large enough (4 matrices of 512: ~0.1 s on one thread) that a Step that did not wait would rotate with
// rotations not yet drawn.
TEST(OrthoAdam, ABackgroundDrawGivesTheConstructorsBits) {
  struct Big {
    HostTensor w{"w", DType::kF32, {1024, 512}}, dw{"dw", DType::kF32, {1024, 512}};
    Big() { w.FillNormal(Rng(kSeed, "init/w"), 0, 0.5); }
    std::vector<Parameter> params() {
      return {Parameter{"w", w.view(), dw.view(), true, {whole_tensor_block("w", w.shape())}}};
    }
  } fore, back;
  LocalComm local("dp");
  OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  c.block = 512;
  // Two steps of one optimizer; the background one steps as soon as it is built, its gradients set before.
  const auto run = [&](Big& m, bool background) {
    c.background_rotations = background;
    const std::vector<Parameter> p = m.params();
    const auto set_grads = [&](int k) {
      const Rng g(kSeed, "grad/" + std::to_string(k));
      for (int64_t j = 0; j < m.dw.numel(); ++j) m.dw.set(j, 1e-3 * g.NormalDouble(static_cast<uint64_t>(j)));
    };
    set_grads(1);
    DistributedOptimizer opt(p, c, local);
    for (int k = 1; k <= 2; ++k) {
      if (k > 1) set_grads(k);
      opt.ReduceGradients();
      opt.Step(lr_at(k));
    }
    EXPECT_GT(opt.rotation_draw_seconds(), 0.0);
    EXPECT_GE(opt.rotation_threads(), 1);
  };
  run(fore, false);
  run(back, true);
  EXPECT_EQ(bit_mismatches(fore.w, back.w), 0);
  EXPECT_GT(bit_mismatches(fore.w, Big().w), fore.w.numel() / 2);  // the steps moved the weights
}

// The draw's threads ("om-rotations": the thread and its OpenMP team) block SIGTERM and SIGUSR1, so a
// preemption signal reaches the thread whose handler has its own stack (launch/preemption.cc); and an
// optimizer destroyed while it draws stops them (the units not begun are skipped).
TEST(OrthoAdam, TheDrawThreadsBlockThePreemptionSignals) {
  HostTensor w("w", DType::kF32, {2048, 1024}), dw("dw", DType::kF32, {2048, 1024});  // 4 draws of 1024: ~1 s
  const std::vector<Parameter> p{Parameter{"w", w.view(), dw.view(), true, {whole_tensor_block("w", w.shape())}}};
  LocalComm local("dp");
  OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  c.block = 1024;
  c.background_rotations = true;
  int drawing = 0;
  const auto own_name = [] {
    std::ifstream comm("/proc/thread-self/comm");
    std::string name;
    std::getline(comm, name);
    return name;
  };
  const std::string name_before = own_name();
  {
    DistributedOptimizer opt(p, c, local);
    EXPECT_EQ(own_name(), name_before) << "the constructor named its own thread, not only the draw's";
    // A new thread starts with every signal blocked (glibc's pthread_create) and takes its creator's
    // mask as it starts running, so each thread is read once it has run for 5 ms (the draw, ~1 s).
    for (const std::filesystem::directory_entry& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name, line;
      std::getline(comm, name);
      if (name != "om-rotations") continue;
      ++drawing;
      for (int tries = 0; tries < 1000; ++tries) {
        std::ifstream schedstat(task.path() / "schedstat");
        uint64_t ran_ns = 0;
        if (!(schedstat >> ran_ns) || ran_ns > 5'000'000) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::ifstream status(task.path() / "status");
      while (std::getline(status, line) && line.rfind("SigBlk:", 0) != 0) {
      }
      ASSERT_FALSE(line.empty()) << task.path();
      const unsigned long long blocked = std::stoull(line.substr(7), nullptr, 16);
      EXPECT_TRUE(blocked >> (SIGTERM - 1) & 1) << task.path() << " " << line;
      EXPECT_TRUE(blocked >> (SIGUSR1 - 1) & 1) << task.path() << " " << line;
      EXPECT_FALSE(blocked >> (SIGKILL - 1) & 1) << line;  // never blockable: the line was read right
    }
  }
  EXPECT_GE(drawing, 1) << "no thread named om-rotations while the draw ran";
}

// draw_rotations: unit k's Q_r then its Q_c blocks at offsets[k], each unit_rotation rounded to f32;
// with the stop flag set before it starts, nothing is drawn and nothing written.
TEST(OrthoAdam, DrawRotationsWritesEachUnitAtItsOffsetAndStops) {
  Model m;
  const std::vector<Parameter> p = m.params();
  const OptimizerConfig c = config(OptimizerKind::kOrthoAdam);
  const std::vector<OptimizerUnit> units = make_units(p, c.block);
  std::vector<const OptimizerUnit*> ptrs;
  std::vector<int64_t> offsets{0};
  for (const OptimizerUnit& u : units) {
    ptrs.push_back(&u);
    offsets.push_back(offsets.back() + rotation_numel(u, c.block));
  }
  const float kUnset = -7.0f;  // no entry of an orthogonal matrix
  std::vector<float> out(static_cast<size_t>(offsets.back()), kUnset);
  std::atomic<bool> stop{true};
  EXPECT_EQ(draw_rotations(c, ptrs, offsets, out.data(), 2, &stop), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), kUnset), static_cast<long>(out.size()));
  stop = false;
  ASSERT_EQ(draw_rotations(c, ptrs, offsets, out.data(), 2, &stop), static_cast<int64_t>(units.size()));
  for (size_t k = 0; k < units.size(); ++k) {
    const UnitRotation r = unit_rotation(c, units[k]);
    std::vector<double> expected = r.q_r;
    for (const std::vector<double>& q : r.q_c) expected.insert(expected.end(), q.begin(), q.end());
    ASSERT_EQ(static_cast<int64_t>(expected.size()), offsets[k + 1] - offsets[k]);
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_EQ(out[offsets[k] + i], static_cast<float>(expected[i])) << "unit " << k << " element " << i;
    }
  }
}

}  // namespace
}  // namespace om
