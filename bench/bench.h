// Benchmark harness (STYLE.md §10): validate first, then time, then report against a limit.
//   BenchStats s = measure([&] { op(); }, {.warmup = 3, .iters = 20});
// returns the median and p10/p90 of per-iteration wall time (CPU; CUDA events arrive with the CUDA
// backend). Every bench binary links the production kernels and refuses to time a kernel whose
// check failed (require_ok).
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/timer.h"
#include "kernels/check/gradcheck.h"

namespace om::bench {

struct MeasureOptions {
  int warmup = 3;
  int iters = 20;
};

// The median of samples taken elsewhere (interleaved rounds, per-rank times).
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct BenchStats {
  double median_s = 0, p10_s = 0, p90_s = 0;
};

inline BenchStats measure(const std::function<void()>& fn, MeasureOptions opt = {}) {
  for (int i = 0; i < opt.warmup; ++i) fn();
  std::vector<double> t(static_cast<size_t>(std::max(1, opt.iters)));
  for (double& x : t) {
    Timer timer;
    fn();
    x = timer.Seconds();
  }
  std::sort(t.begin(), t.end());
  auto at = [&](double q) { return t[static_cast<size_t>(q * static_cast<double>(t.size() - 1) + 0.5)]; };
  return BenchStats{at(0.5), at(0.1), at(0.9)};
}

// Exits non-zero, naming the failed check, if any result is not ok: a wrong kernel is never timed.
inline void require_ok(const CheckList& results) {
  for (const CheckResult& r : results) {
    if (!r.ok()) {
      std::fprintf(stderr, "validation failed, not timing:\n%s\n", r.ToString().c_str());
      std::exit(1);
    }
  }
}

// ---- The fp32 FMA peak: the denominator of every "% of peak" the CPU benches print ------------------
// A register-only loop: kFmaChains independent vector FMA chains per thread, no loads or stores, so the
// only limits are the FMA ports and their latency (4 cycles x 2 ports needs >= 8 chains in flight; 12
// leaves slack). flops per loop iteration = kFmaChains * lanes * 2 (an FMA is a multiply and an add).
// The chains converge to b / (1 - a) without overflow or denormals; the sum is returned so the compiler
// must keep every FMA.
inline constexpr int kFmaChains = 12;

__attribute__((target("avx512f"))) inline float fma_loop_avx512(long iters) {
  __m512 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kFmaChains; ++i) s = _mm512_add_ps(s, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}

__attribute__((target("avx2,fma"))) inline float fma_loop_avx2(long iters) {
  __m256 acc[kFmaChains];
  for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kFmaChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kFmaChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}

struct FmaIsa {
  const char* name;
  bool supported;  // by this CPU
  float (*loop)(long);
  int lanes;  // fp32 lanes per vector
};

inline std::vector<FmaIsa> fma_isas() {
  return {{"avx512", __builtin_cpu_supports("avx512f") != 0, fma_loop_avx512, 16},
          {"avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), fma_loop_avx2, 8}};
}

struct FmaPeak {
  double median_gflops = 0, fast_gflops = 0;  // at the median and at the p10 time
};

inline volatile float g_fma_sink;  // keeps the loops' results observable

// `loop` on `threads` threads at once, `iters` iterations each, 7 timed runs: GFLOP/s of all threads
// together. On a shared machine other work only ever slows a register-only loop, so the fast end (p10
// of time) is the estimate of the peak.
inline FmaPeak measure_fma_peak(float (*loop)(long), int lanes, int threads, long iters) {
  const double flops = static_cast<double>(iters) * kFmaChains * lanes * 2.0 * threads;
  const BenchStats s = measure(
      [&] {
        float sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        sum += loop(iters);
        g_fma_sink = sum;
      },
      {.warmup = 1, .iters = 7});
  return FmaPeak{flops / s.median_s * 1e-9, flops / s.p10_s * 1e-9};
}

// The machine's fp32 FMA peak in GFLOP/s: OM_FP32_PEAK_GFLOPS if set, else measured once per process:
// the best supported ISA's fast end on every OpenMP thread at once (10M iterations, about 0.1-0.2 s;
// bench/kernels/fma_peak_bench prints the whole table). Measured rather than fixed because the machines
// differ: 445 on the 2-core AVX-512 machine of 2026-11-28 (bench/results/2026-11-28_cpu-2core_matmul.md),
// AVX2 only on the AMD EPYC of 2026-12-01.
inline double fp32_peak_gflops() {
  if (const char* s = std::getenv("OM_FP32_PEAK_GFLOPS")) return std::atof(s);
  static const double measured = [] {
    double best = 0;
    for (const FmaIsa& isa : fma_isas()) {
      if (isa.supported) best = std::max(best, measure_fma_peak(isa.loop, isa.lanes, omp_get_max_threads(),
                                                                10'000'000).fast_gflops);
    }
    return best;
  }();
  return measured;
}

}  // namespace om::bench
