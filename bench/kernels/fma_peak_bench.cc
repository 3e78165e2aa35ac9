// fp32 FMA peak of this machine, the denominator of every "% of peak" the GEMM benches print
// (bench::fp32_peak_gflops). A register-only loop: kAccumulators independent vector FMA chains per
// thread, no loads or stores, so the only limits are the FMA ports and their latency (4 cycles x 2
// ports needs >= 8 chains in flight; 12 leaves slack). Run on 1 thread (per-core figure) and on
// every OpenMP thread at once (total; AVX-512 frequency drops show up here).
//   flops per loop iteration = kAccumulators * lanes * 2     (an FMA is a multiply and an add)
// Reports the median and the fast end (p10 of time) of the repetitions: on a shared machine other
// work only ever slows a register-only loop, so the fast end is the estimate of the peak.
#include <immintrin.h>
#include <omp.h>

#include <cstdio>

#include "bench/bench.h"

namespace om::bench {
namespace {

constexpr int kAccumulators = 12;
constexpr long kIterations = 20'000'000;  // about 0.1-0.2 s per thread at ~100 GFLOP/s

// The chains converge to b / (1 - a) without overflow or denormals; the sum is returned so the
// compiler must keep every FMA.
__attribute__((target("avx512f"))) float fma_loop_avx512(long iters) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kAccumulators; ++i) s = _mm512_add_ps(s, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  __m256 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kAccumulators; ++i) s = _mm256_add_ps(s, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float t = 0;
  for (float v : lanes) t += v;
  return t;
}

volatile float g_sink;  // keeps the results observable

struct Peak {
  double median_gflops, fast_gflops;  // at the median and the p10 time
};

// Runs `loop` on `threads` threads at once; GFLOP/s of all threads together.
Peak measure_peak(float (*loop)(long), int lanes, int threads) {
  const double flops = static_cast<double>(kIterations) * kAccumulators * lanes * 2.0 * threads;
  const BenchStats s = measure(
      [&] {
        float sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        sum += loop(kIterations);
        g_sink = sum;
      },
      {.warmup = 1, .iters = 7});
  return Peak{flops / s.median_s * 1e-9, flops / s.p10_s * 1e-9};
}

}  // namespace
}  // namespace om::bench

int main() {
  using namespace om::bench;
  const int all = omp_get_max_threads();
  std::printf("fp32 FMA peak: %d independent FMA chains per thread, %ld iterations, median / p10-time of 7 runs\n",
              kAccumulators, kIterations);
  std::printf("%-8s %8s %22s %22s %16s\n", "isa", "threads", "GFLOP/s total (median)", "GFLOP/s total (p10)",
              "per core (p10)");
  struct Isa {
    const char* name;
    bool supported;
    float (*loop)(long);
    int lanes;
  };
  const Isa isas[] = {
      {"avx512", __builtin_cpu_supports("avx512f") != 0, fma_loop_avx512, 16},
      {"avx2", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), fma_loop_avx2, 8}};
  double peak_total = 0;
  for (const Isa& isa : isas) {
    if (!isa.supported) {
      std::printf("%-8s not supported by this CPU\n", isa.name);
      continue;
    }
    for (int threads : {1, all}) {
      const Peak p = measure_peak(isa.loop, isa.lanes, threads);
      std::printf("%-8s %8d %22.1f %22.1f %16.1f\n", isa.name, threads, p.median_gflops, p.fast_gflops,
                  p.fast_gflops / threads);
      if (threads == all && p.fast_gflops > peak_total) peak_total = p.fast_gflops;
      if (threads == all) break;
    }
  }
  std::printf("\nmeasured peak (best ISA, all %d threads): %.1f GFLOP/s; bench::fp32_peak_gflops() = %.1f\n", all,
              peak_total, fp32_peak_gflops());
  return 0;
}
