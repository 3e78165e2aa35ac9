// Benchmark harness (STYLE.md §10): validate first, then time, then report against a limit.
//   BenchStats s = measure([&] { op(); }, {.warmup = 3, .iters = 20});
// returns the median and p10/p90 of per-iteration wall time (CPU; CUDA events arrive with the CUDA
// backend). Every bench binary links the production kernels and refuses to time a kernel whose
// check failed (require_ok).
#pragma once

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

// The machine's fp32 FMA peak in GFLOP/s: OM_FP32_PEAK_GFLOPS if set, else 445, measured on the
// development machine (2 cores, AVX-512) by bench/kernels/fma_peak_bench: 12 independent register-only
// FMA chains per core (bench/results/2026-11-28_cpu-2core_matmul.md). Set the variable elsewhere.
inline double fp32_peak_gflops() {
  if (const char* s = std::getenv("OM_FP32_PEAK_GFLOPS")) return std::atof(s);
  return 445.0;
}

}  // namespace om::bench
