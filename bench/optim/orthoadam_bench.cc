// OrthoAdam's optimizer step on the CPU against AdamW's and against the whole training step, the
// rotation FLOP model against the "≈ 8·B FLOPs per parameter" rule (DESIGN.md "OrthoAdam"), and cached
// against regenerated rotations. One process: the ZeRO-1 DistributedOptimizer at dp = 1 (LocalComm).
//   orthoadam_bench                          tiny (B 1024, 7 rounds), small (B 1024, 5 rounds),
//                                            llama-60m (B 1024 and 256, 3 rounds); micro-batch 8
//   orthoadam_bench PRESET B[,B...] [MICRO_BATCH] [REPS]     (defaults 8, 5)
// Per preset (the preset's vocabulary, sequence length and attention; micro-batch 8 unless given) and
// per block size B, sampled in REPS interleaved rounds after one warm-up each (a slow phase of the
// shared machine then hits every quantity alike), medians:
//   train step                          ZeroGrad + Forward + Backward on random tokens (no optimizer);
//                                       model FLOPs = LlamaConfig::flops_per_token() · micro-batch · T
//   AdamW step, OrthoAdam (haar) step   ReduceGradients() + Step(lr) on gradients of N(0, 1e-3) values
//                                       (the same values each time: refilled, untimed, after every
//                                       train step, whose backward overwrites them)
//   block_rotate                        forward + inverse on the bench's own copy of the optimizer's
//                                       rotations over a copy of the units' gradients: the GEMMs alone
//   rotation FLOPs (model)              Σ_units 2·(2·R²·K + 2·R·Σ_b K_b²)   (kernels/block_rotate.h,
//                                       forward + inverse) against the rule 8·B·N; GFLOP/s of the
//                                       measured block_rotate and of (OrthoAdam − AdamW) step time
//                                       against bench::fp32_peak_gflops()
//   generation                          unit_rotation on every unit, rounded to f32, OpenMP over units
//                                       as the constructor does = the per-step cost of regenerating
//                                       instead of caching; cross-checked by the constructor times
//                                       (OrthoAdam − AdamW). Model: (8/3)·n³ FLOPs per Haar matrix
//                                       (core/orthogonal.h).
//   memory                              DistributedOptimizer::rotation_bytes() against the parameters'
//                                       4·N bytes and the rest of the training state
// Validation before timing (the bench refuses to time otherwise): OrthoAdam with the identity
// transform equals AdamW bit for bit after one step; a Haar step moves some coordinate by more than a
// diagonal Adam step can; the f32 block_rotate with the bench's rotations matches the f64 reference
// kernel with unit_rotation's double Q's on one unit of every distinct shape, within the bound below.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench.h"
#include "core/buffer.h"
#include "kernels/block_rotate.h"
#include "kernels/check/tolerance.h"
#include "model/llama.h"
#include "optim/distributed_optimizer.h"
#include "optim/orthoadam.h"
#include "optim/optimizer_units.h"
#include "parallel/local_comm.h"

namespace om {
namespace {

const ExecContext kCpu{Device::Cpu(), Stream{}};
constexpr float kLr = 1e-3f;
constexpr uint64_t kSeed = 1234;

struct Case {
  std::string preset;
  std::vector<int64_t> blocks;
  int64_t micro_batch = 8;
  int reps = 5;  // interleaved rounds: samples per timed quantity
};

// Forward + inverse FLOPs of one unit (kernels/block_rotate.h: 2·R²·K + 2·R·Σ K_b² per direction).
double rotation_flops(const OptimizerUnit& u, int64_t block) {
  const double R = static_cast<double>(u.rows), K = static_cast<double>(u.cols);
  double sq = 0.0;
  for (int64_t w : column_blocks(u, block)) sq += static_cast<double>(w) * static_cast<double>(w);
  return 2.0 * (2.0 * R * R * K + 2.0 * R * sq);
}

// Householder QR + accumulation of Q for every Haar matrix of the unit: (8/3)·n³ each (core/orthogonal.h).
double generation_flops(const OptimizerUnit& u, int64_t block) {
  auto qr = [](int64_t n) { return 8.0 / 3.0 * std::pow(static_cast<double>(n), 3.0); };
  double f = qr(u.rows);
  for (int64_t w : column_blocks(u, block)) f += qr(w);
  return f;
}

// The bench's own copy of what the OrthoAdam constructor caches: every unit's Q_r and Q_c blocks in
// f32, and RotationUnits over a copy of the units' gradients (back to back in unit order). Both live in
// Buffers, as the optimizer's do (256-byte aligned, huge pages advised): in std::vectors (16 bytes past
// a page) the same block_rotate took 1.34 s per step for llama-60m at B = 1024 instead of 0.97 s
// (2 cores, 2026-11-30), and no longer measured the optimizer's rotations.
struct Rotations {
  Buffer q;                          // f32 Σ_units (R² + Σ K_b²)
  Buffer x;                          // f32 (N) the units' gradients
  std::vector<RotationUnit> units;   // x (R, K) into `x`, Q's into `q`
  double draw_seconds = 0.0;         // unit_rotation on every unit + rounding to f32
};

Rotations cache_rotations(const OptimizerConfig& config, const std::vector<OptimizerUnit>& units,
                          std::span<const Parameter> params) {
  Rotations r;
  std::vector<int64_t> q_at(units.size() + 1, 0), x_at(units.size() + 1, 0);
  std::vector<const OptimizerUnit*> all(units.size());
  for (size_t k = 0; k < units.size(); ++k) {
    all[k] = &units[k];
    q_at[k + 1] = q_at[k] + rotation_numel(units[k], config.block);
    x_at[k + 1] = x_at[k] + units[k].numel();
  }
  r.q = Buffer::Allocate(Device::Cpu(), static_cast<size_t>(q_at.back()) * sizeof(float), "bench.rotations");
  r.x = Buffer::Allocate(Device::Cpu(), static_cast<size_t>(x_at.back()) * sizeof(float), "bench.units");
  float* const q = static_cast<float*>(r.q.data());
  float* const x = static_cast<float*>(r.x.data());
  r.units.resize(units.size());
  for (size_t k = 0; k < units.size(); ++k) {
    const OptimizerUnit& u = units[k];
    std::memcpy(x + x_at[k], static_cast<const float*>(params[u.param].grad.data) + u.param_offset(),
                static_cast<size_t>(u.numel()) * sizeof(float));
    RotationUnit& ru = r.units[k];
    ru.x = make_view(x + x_at[k], DType::kF32, Shape{u.rows, u.cols}, Device::Cpu(), "bench.unit");
    rotation_views(u, config.block, q + q_at[k], Device::Cpu(), &ru);
  }
  // Timed as the optimizer's constructor draws on the CPU (optim/orthoadam.h draw_rotations): in double,
  // rounded into the cache, one unit per OpenMP thread.
  const Timer timer;
  draw_rotations(config, all, q_at, q, omp_get_max_threads());
  r.draw_seconds = timer.Seconds();
  return r;
}

// f32 block_rotate with the cached (f32-rounded) Q's against the f64 reference kernel with
// unit_rotation's double Q's, on the first unit of every distinct (R, K) shape, both directions.
// Bound per element (the derivation of tests/optim/orthoadam_test.cc OneHaarStepEqualsTheNaiveDouble-
// Reference, u = 2⁻²⁴): rounding the Q's to f32 (relative u each) and the two GEMMs (inner lengths R,
// then K_b ≤ Kmax, each ≤ (n + 1)·u of its terms' absolute sum) give |got − want| ≤ (R + Kmax + 4)·u·A,
// A = |Q_r|·|x|·|Q_c|ᵀ (forward) or |Q_r|ᵀ·|x|·|Q_c| (inverse), computed by the f64 kernel on the
// absolute values. for_reduction(kF32, R + Kmax + 4, A) allows reduce_len·eps·A with eps = 2u: twice
// that bound, plus its rtol for the final rounding.
CheckList check_rotations(const OptimizerConfig& config, const std::vector<OptimizerUnit>& units, const Rotations& rot) {
  std::map<std::pair<int64_t, int64_t>, size_t> first;
  for (size_t k = 0; k < units.size(); ++k) first.emplace(std::make_pair(units[k].rows, units[k].cols), k);
  struct Sample {
    size_t k;
    UnitRotation q64;
    std::vector<double> absq;        // |Q_r| then |Q_c[b]| back to back
    std::vector<double> want, abs;   // (R, K) f64 reference and A
    std::vector<float> got;          // (R, K) f32 result
  };
  CheckList out;
  for (RotateDirection dir : {RotateDirection::kForward, RotateDirection::kInverse}) {
    std::vector<Sample> samples;
    for (const auto& [shape, k] : first) samples.push_back({k, unit_rotation(config, units[k]), {}, {}, {}, {}});
    std::vector<RotationUnit> ref, absu, f32u;
    for (Sample& s : samples) {
      const OptimizerUnit& u = units[s.k];
      const RotationUnit& cached = rot.units[s.k];
      const int64_t R = u.rows, K = u.cols;
      const float* x = cached.x.data_as<const float>();
      s.want.resize(static_cast<size_t>(R * K));
      s.abs.resize(s.want.size());
      s.got.assign(x, x + R * K);
      for (int64_t i = 0; i < R * K; ++i) s.want[i] = x[i], s.abs[i] = std::fabs(static_cast<double>(x[i]));
      size_t total = s.q64.q_r.size();
      for (const auto& q : s.q64.q_c) total += q.size();
      s.absq.reserve(total);
      auto view64 = [](const double* p, int64_t n) {
        return make_view(p, DType::kF64, Shape{n, n}, Device::Cpu(), "bench.q64");
      };
      auto absview = [&](const std::vector<double>& q, int64_t n) {
        const size_t at = s.absq.size();
        for (double v : q) s.absq.push_back(std::fabs(v));
        return view64(s.absq.data() + at, n);
      };
      RotationUnit r{make_view(s.want.data(), DType::kF64, Shape{R, K}, Device::Cpu(), "bench.want"),
                     view64(s.q64.q_r.data(), R), {}};
      RotationUnit a{make_view(s.abs.data(), DType::kF64, Shape{R, K}, Device::Cpu(), "bench.abs"), absview(s.q64.q_r, R),
                     {}};
      for (size_t b = 0; b < s.q64.widths.size(); ++b) {
        r.q_c.push_back(view64(s.q64.q_c[b].data(), s.q64.widths[b]));
        a.q_c.push_back(absview(s.q64.q_c[b], s.q64.widths[b]));
      }
      ref.push_back(std::move(r));
      absu.push_back(std::move(a));
      f32u.push_back({make_view(s.got.data(), DType::kF32, Shape{R, K}, Device::Cpu(), "bench.got"), cached.q_r,
                      cached.q_c});
    }
    block_rotate(kCpu, ref, dir);
    block_rotate(kCpu, absu, dir);
    block_rotate(kCpu, f32u, dir);
    for (const Sample& s : samples) {
      const OptimizerUnit& u = units[s.k];
      const int64_t kmax = *std::max_element(s.q64.widths.begin(), s.q64.widths.end());
      CheckResult c;
      c.op = "block_rotate " + u.logical + " rows " + std::to_string(u.logical_row0) + " (" + std::to_string(u.rows) +
             ", " + std::to_string(u.cols) + ")";
      c.what = dir == RotateDirection::kForward ? "forward f32 vs f64 reference" : "inverse f32 vs f64 reference";
      for (size_t i = 0; i < s.want.size(); ++i) {
        const Tolerance t = for_reduction(DType::kF32, u.rows + kmax + 4, s.abs[i]);
        const double err = std::fabs(static_cast<double>(s.got[i]) - s.want[i]);
        // A = 0 only where x's row or column block is all zero: then both results are exactly 0.
        const double used = err == 0.0 ? 0.0 : err / (t.atol + t.rtol * std::fabs(s.want[i]));
        c.max_err = std::max(c.max_err, err);
        if (c.worst_index < 0 || used > c.budget_used) {
          c.budget_used = used, c.worst_index = static_cast<int64_t>(i);
          c.got = s.got[i], c.want = s.want[i], c.rule = t.rule;
        }
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

// OrthoAdam(identity) equals AdamW bit for bit after one step from the same parameters and gradients.
// `adamw` must be fresh and built from the parameters the identity optimizer is built from here.
CheckResult check_identity_is_adamw(std::span<const Parameter> params, const OptimizerConfig& adamw_config,
                                    DistributedOptimizer& adamw, Comm& comm) {
  OptimizerConfig c = adamw_config;
  c.kind = OptimizerKind::kOrthoAdam;
  c.transform = OrthoTransform::kIdentity;
  DistributedOptimizer identity(params, c, comm);
  identity.ReduceGradients();
  identity.Step(kLr);  // writes the parameters; adamw keeps its own master copy of the old ones
  adamw.ReduceGradients();
  adamw.Step(kLr);
  const bool same = std::memcmp(identity.master_shard().data, adamw.master_shard().data,
                                identity.master_shard().nbytes()) == 0;
  return check_fact("orthoadam(identity) B=" + std::to_string(adamw_config.block), "equals adamw bit for bit, 1 step",
                    same);
}

// A fresh Haar OrthoAdam's first step moves some coordinate by more than any diagonal Adam step can.
// At step 1 with λ = 0 a diagonal step is θ' = θ − lr·Ũ with |Ũ| = |g|/(|g| + ε) ≤ 1 (+ the direction's
// ≤ 8u rounding), and θ' is rounded once (≤ u·|θ'|): |θ' − θ| ≤ lr·(1 + 8u) + u·|θ'|. The Haar step is
// U = Q_rᵀ·Ũ·Q_c, whose entries are O(1) sums of ±1/√n terms, so a good share exceed 1.
CheckResult check_haar_moves(DistributedOptimizer& ortho) {
  const int64_t S = ortho.shard_size();
  const float* m = ortho.master_shard().data_as<const float>();
  const std::vector<float> before(m, m + S);
  ortho.ReduceGradients();
  ortho.Step(kLr);
  const double u = std::ldexp(1.0, -24), lr = kLr;
  int64_t beyond = 0;
  for (int64_t i = 0; i < S; ++i) {
    const double moved = std::fabs(static_cast<double>(m[i]) - before[i]);
    beyond += moved > lr * (1.0 + 8.0 * u) + u * std::fabs(static_cast<double>(m[i])) ? 1 : 0;
  }
  char detail[96];
  std::snprintf(detail, sizeof(detail), "%.1f%% of coordinates moved by more than lr",
                100.0 * static_cast<double>(beyond) / static_cast<double>(ortho.numel()));
  std::printf("  check: haar step 1: %s\n", detail);
  return check_fact("orthoadam(haar) B=" + std::to_string(ortho.config().block),
                    "first step moves a coordinate beyond a diagonal Adam step", beyond > 0, detail);
}

// One timed quantity, sampled in interleaved rounds; `after` (optional) runs untimed after each call.
struct Timed {
  std::function<void()> fn;
  std::function<void()> after;
  std::vector<double> samples;
};

void run_rounds(std::vector<Timed*> timed, int rounds) {
  for (int r = -1; r < rounds; ++r) {  // round -1: warm-up
    for (Timed* t : timed) {
      const Timer timer;
      t->fn();
      const double s = timer.Seconds();
      if (r >= 0) t->samples.push_back(s);
      if (t->after) t->after();
    }
  }
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

// The model's training step without the optimizer, and the random gradients the optimizers step on.
struct TrainStep {
  Llama* model;
  HostTensor tokens, targets;  // (micro-batch, T) i32
  double loss = 0.0;

  void Run() {
    model->ZeroGrad();
    loss = model->Forward(tokens.cview(), targets.cview());
    model->Backward(1.0f);
  }
  // Every parameter gradient (padding rows included) ← N(0, 1e-3), the same values on every call.
  void FillRandomGradients() const {
    const Rng rng(kSeed, "orthoadam_bench/grad");
    uint64_t offset = 0;
    for (const Parameter& p : model->parameters()) {
      rng.FillNormal(static_cast<float*>(p.grad.data), p.grad.numel(), offset, 0.0f, 1e-3f);
      offset += static_cast<uint64_t>(p.grad.numel());
    }
  }
};

// Everything the table prints for one block size.
struct BlockResult {
  int64_t block = 0;
  double train_s = 0, train_p10 = 0, train_p90 = 0;
  size_t units = 0;
  int64_t numel = 0;
  double adamw_s = 0, ortho_s = 0, rotate_s = 0;
  double rot_gflop = 0, rule_gflop = 0, gen_gflop = 0;
  double draw_s = 0, ctor_adamw_s = 0, ctor_ortho_s = 0;
  double rotation_mb = 0, optimizer_mb = 0;
  double adamw_p10 = 0, adamw_p90 = 0, ortho_p10 = 0, ortho_p90 = 0;
};

BlockResult run_block(TrainStep& train, int64_t block, int rounds) {
  BlockResult res;
  res.block = block;
  LocalComm comm("dp");
  OptimizerConfig ca;
  ca.block = block;
  ca.seed = kSeed;
  OptimizerConfig co = ca;
  co.kind = OptimizerKind::kOrthoAdam;
  co.transform = OrthoTransform::kHaar;
  const std::span<const Parameter> params = train.model->parameters();
  train.FillRandomGradients();

  const Timer setup;
  Timer t;
  DistributedOptimizer adamw(params, ca, comm);
  res.ctor_adamw_s = t.Seconds();
  CheckList checks{check_identity_is_adamw(params, ca, adamw, comm)};
  res.units = adamw.units().size();
  res.numel = adamw.numel();
  for (const OptimizerUnit& u : adamw.units()) {
    res.rot_gflop += rotation_flops(u, block) / 1e9;
    res.gen_gflop += generation_flops(u, block) / 1e9;
  }
  res.rule_gflop = 8.0 * static_cast<double>(block) * static_cast<double>(res.numel) / 1e9;

  Rotations rot = cache_rotations(co, adamw.units(), params);
  res.draw_s = rot.draw_seconds;
  t.Reset();
  DistributedOptimizer ortho(params, co, comm);
  res.ctor_ortho_s = t.Seconds();
  res.rotation_mb = static_cast<double>(ortho.rotation_bytes()) / 1e6;
  // flat gradient + master, m, v as allocated (distributed_optimizer.h "Memory"; dp = 1: no flat parameters)
  res.optimizer_mb = static_cast<double>(ortho.buffer_bytes()) / 1e6;
  checks.push_back(check_haar_moves(ortho));
  const CheckList rotate_checks = check_rotations(co, adamw.units(), rot);
  double worst = 0.0;
  for (const CheckResult& c : rotate_checks) worst = std::max(worst, c.budget_used), checks.push_back(c);
  std::printf("  check: block_rotate f32 vs f64 on %zu unit shapes x 2 directions: worst %.2e of the error budget\n",
              rotate_checks.size() / 2, worst);
  bench::require_ok(checks);
  std::printf("  all %zu checks passed (orthoadam(identity) == adamw bit for bit, haar moves, block_rotate)\n",
              checks.size());
  std::printf("  optimizers, rotations and checks took %.1f s\n", setup.Seconds());

  Timed tt{[&] { train.Run(); }, [&] { train.FillRandomGradients(); }, {}};
  Timed ta{[&] { adamw.ReduceGradients(), adamw.Step(kLr); }, {}, {}};
  Timed to{[&] { ortho.ReduceGradients(), ortho.Step(kLr); }, {}, {}};
  Timed tr{[&] {
             block_rotate(kCpu, rot.units, RotateDirection::kForward);
             block_rotate(kCpu, rot.units, RotateDirection::kInverse);
           },
           {},
           {}};
  run_rounds({&tt, &ta, &to, &tr}, rounds);
  std::printf("  train step loss %.3f (ln V = %.3f)\n", train.loss,
              std::log(static_cast<double>(train.model->config().vocab_size)));
  res.train_s = bench::median(tt.samples);
  res.train_p10 = quantile(tt.samples, 0.1), res.train_p90 = quantile(tt.samples, 0.9);
  res.adamw_s = bench::median(ta.samples);
  res.ortho_s = bench::median(to.samples);
  res.rotate_s = bench::median(tr.samples);
  res.adamw_p10 = quantile(ta.samples, 0.1), res.adamw_p90 = quantile(ta.samples, 0.9);
  res.ortho_p10 = quantile(to.samples, 0.1), res.ortho_p90 = quantile(to.samples, 0.9);
  return res;
}

void print_table(const LlamaConfig& config, const Case& c, size_t model_bytes, const std::vector<BlockResult>& rs) {
  const double tokens = static_cast<double>(c.micro_batch * config.seq_length);
  const double train_gflop = config.flops_per_token() * tokens / 1e9;
  const double peak = bench::fp32_peak_gflops();
  std::printf("\n%s, micro-batch %ld x T %ld = %.0f tokens, %d threads, fp32 peak %.0f GFLOP/s\n",
              config.ToString().c_str(), static_cast<long>(c.micro_batch), static_cast<long>(config.seq_length), tokens,
              omp_get_max_threads(), peak);
  std::printf("medians of %d interleaved rounds; train step = ZeroGrad + Forward + Backward, %.1f GFLOP (model)\n", c.reps,
              train_gflop);
  std::printf("%-46s", "quantity");
  for (const BlockResult& r : rs) std::printf(" %14s", ("B = " + std::to_string(r.block)).c_str());
  std::printf("\n");
  auto row = [&](const char* name, const char* fmt, const std::function<double(const BlockResult&)>& f) {
    std::printf("%-46s", name);
    for (const BlockResult& r : rs) {
      char cell[32];
      std::snprintf(cell, sizeof(cell), fmt, f(r));
      std::printf(" %14s", cell);
    }
    std::printf("\n");
  };
  row("optimizer units", "%.0f", [](const BlockResult& r) { return static_cast<double>(r.units); });
  row("parameters in units N (M)", "%.2f", [](const BlockResult& r) { return static_cast<double>(r.numel) / 1e6; });
  row("train step (s)", "%.4f", [](const BlockResult& r) { return r.train_s; });
  row("  p10 (s)", "%.4f", [](const BlockResult& r) { return r.train_p10; });
  row("  p90 (s)", "%.4f", [](const BlockResult& r) { return r.train_p90; });
  row("  GFLOP/s (model FLOPs)", "%.0f", [&](const BlockResult& r) { return train_gflop / r.train_s; });
  row("  % of fp32 peak", "%.0f%%", [&](const BlockResult& r) { return 100 * train_gflop / r.train_s / peak; });
  row("AdamW step (s)", "%.4f", [](const BlockResult& r) { return r.adamw_s; });
  row("  p10 (s)", "%.4f", [](const BlockResult& r) { return r.adamw_p10; });
  row("  p90 (s)", "%.4f", [](const BlockResult& r) { return r.adamw_p90; });
  row("OrthoAdam step (s)", "%.4f", [](const BlockResult& r) { return r.ortho_s; });
  row("  p10 (s)", "%.4f", [](const BlockResult& r) { return r.ortho_p10; });
  row("  p90 (s)", "%.4f", [](const BlockResult& r) { return r.ortho_p90; });
  row("OrthoAdam / AdamW step", "%.1fx", [](const BlockResult& r) { return r.ortho_s / r.adamw_s; });
  row("AdamW share of train+AdamW step", "%.1f%%", [&](const BlockResult& r) { return 100 * r.adamw_s / (r.train_s + r.adamw_s); });
  row("OrthoAdam share of train+OrthoAdam step", "%.1f%%",
      [&](const BlockResult& r) { return 100 * r.ortho_s / (r.train_s + r.ortho_s); });
  row("time OrthoAdam adds, % of train+AdamW step", "%.1f%%",
      [&](const BlockResult& r) { return 100 * (r.ortho_s - r.adamw_s) / (r.train_s + r.adamw_s); });
  row("batch (seqs) where added time = 2% (extrap.)", "%.0f", [&](const BlockResult& r) {
    return (r.ortho_s - r.adamw_s) / 0.02 / (r.train_s / static_cast<double>(c.micro_batch));
  });
  row("rotation GFLOP/step, model (fwd+inv)", "%.1f", [](const BlockResult& r) { return r.rot_gflop; });
  row("rule 8*B*N GFLOP/step", "%.1f", [](const BlockResult& r) { return r.rule_gflop; });
  row("model / rule", "%.2f", [](const BlockResult& r) { return r.rot_gflop / r.rule_gflop; });
  row("rotation FLOPs / training-step FLOPs", "%.2f", [&](const BlockResult& r) { return r.rot_gflop / train_gflop; });
  row("block_rotate fwd+inv, measured (s)", "%.4f", [](const BlockResult& r) { return r.rotate_s; });
  row("  GFLOP/s", "%.0f", [](const BlockResult& r) { return r.rot_gflop / r.rotate_s; });
  row("  % of fp32 peak", "%.0f%%", [&](const BlockResult& r) { return 100 * r.rot_gflop / r.rotate_s / peak; });
  row("OrthoAdam - AdamW step (s)", "%.4f", [](const BlockResult& r) { return r.ortho_s - r.adamw_s; });
  row("  rotation GFLOP / that (GFLOP/s)", "%.0f", [](const BlockResult& r) { return r.rot_gflop / (r.ortho_s - r.adamw_s); });
  row("generate all rotations (s) = regen/step", "%.3f", [](const BlockResult& r) { return r.draw_s; });
  row("  ctor OrthoAdam - ctor AdamW (s)", "%.3f", [](const BlockResult& r) { return r.ctor_ortho_s - r.ctor_adamw_s; });
  row("  generation GFLOP ((8/3)*n^3 per Q)", "%.0f", [](const BlockResult& r) { return r.gen_gflop; });
  row("  generation GFLOP/s", "%.1f", [](const BlockResult& r) { return r.gen_gflop / r.draw_s; });
  row("  regen / OrthoAdam step", "%.1fx", [](const BlockResult& r) { return r.draw_s / r.ortho_s; });
  row("  regen / train step", "%.2fx", [&](const BlockResult& r) { return r.draw_s / r.train_s; });
  row("rotation cache (MB)", "%.1f", [](const BlockResult& r) { return r.rotation_mb; });
  row("  / parameter bytes 4*N", "%.2fx", [](const BlockResult& r) { return r.rotation_mb / (4e-6 * static_cast<double>(r.numel)); });
  row("  bytes per parameter", "%.2f", [](const BlockResult& r) { return r.rotation_mb * 1e6 / static_cast<double>(r.numel); });
  row("  / (model arenas + optimizer buffers)", "%.1f%%", [&](const BlockResult& r) {
    return 100 * r.rotation_mb / (static_cast<double>(model_bytes) / 1e6 + r.optimizer_mb);
  });
}

int run_case(const Case& c) {
  StatusOr<LlamaConfig> preset = LlamaConfig::Preset(c.preset);
  if (!preset.ok()) {
    std::fprintf(stderr, "%s\n", preset.status().ToString().c_str());
    return 2;
  }
  const LlamaConfig config = preset.value();
  std::printf("== %s\n", config.ToString().c_str());
  Llama model(config, c.micro_batch);
  model.Initialize(kSeed);
  const int64_t T = config.seq_length, V = config.vocab_size;
  TrainStep train{&model, HostTensor("tokens", DType::kI32, {c.micro_batch, T}),
                  HostTensor("targets", DType::kI32, {c.micro_batch, T})};
  const Rng rng(kSeed, "orthoadam_bench/tokens");
  for (int64_t i = 0; i < c.micro_batch * T; ++i) {
    train.tokens.set(i, std::floor(rng.UniformDouble(2 * i) * static_cast<double>(V)));
    train.targets.set(i, std::floor(rng.UniformDouble(2 * i + 1) * static_cast<double>(V)));
  }
  std::vector<BlockResult> rs;
  for (int64_t b : c.blocks) {
    std::printf("  B = %ld\n", static_cast<long>(b));
    rs.push_back(run_block(train, b, c.reps));
  }
  print_table(config, c, model.memory_bytes(), rs);
  std::printf("\n");
  return 0;
}

}  // namespace
}  // namespace om

int main(int argc, char** argv) {
  std::vector<om::Case> cases;
  if (argc == 1) {
    cases = {{"tiny", {1024}, 8, 7}, {"small", {1024}, 8, 5}, {"llama-60m", {1024, 256}, 8, 3}};
  } else if (argc >= 3 && argc <= 5) {
    om::Case c{argv[1], {}, argc > 3 ? std::atol(argv[3]) : 8, argc > 4 ? std::atoi(argv[4]) : 5};
    for (const char* s = argv[2]; *s != '\0';) {  // "1024,256"
      char* end = nullptr;
      const long b = std::strtol(s, &end, 10);
      const bool bad = end == s || (*end != ',' && *end != '\0');
      c.blocks.push_back(bad ? 0 : b);  // 0: rejected below
      if (bad) break;
      s = *end == ',' ? end + 1 : end;
    }
    cases.push_back(c);
  } else {
    std::fprintf(stderr, "usage: %s                 (tiny, small: B 1024; llama-60m: B 1024, 256; micro-batch 8)\n"
                         "       %s PRESET B[,B...] [MICRO_BATCH] [REPS]\n",
                 argv[0], argv[0]);
    return 2;
  }
  for (const om::Case& c : cases) {
    bool ok = c.micro_batch >= 1 && c.reps >= 1 && !c.blocks.empty();
    for (int64_t b : c.blocks) ok = ok && b >= 1;
    if (!ok) {
      std::fprintf(stderr, "MICRO_BATCH, REPS and every B must be positive\n");
      return 2;
    }
  }
  for (const om::Case& c : cases)
    if (const int rc = om::run_case(c); rc != 0) return rc;
  return 0;
}
