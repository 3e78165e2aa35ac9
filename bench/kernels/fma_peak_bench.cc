// fp32 FMA peak of this machine, the denominator of every "% of peak" the CPU benches print
// (bench::fp32_peak_gflops, which measures the same loops more briefly; bench/bench.h describes them).
// Each supported ISA on 1 thread (per-core figure) and on every OpenMP thread at once (total; AVX-512
// frequency drops show up here), the median and the fast end (p10 of time) of 7 runs.
#include <omp.h>

#include <cstdio>

#include "bench/bench.h"

int main() {
  using namespace om::bench;
  constexpr long kIterations = 20'000'000;  // about 0.1-0.2 s per thread at ~100 GFLOP/s
  const int all = omp_get_max_threads();
  std::printf("fp32 FMA peak: %d independent FMA chains per thread, %ld iterations, median / p10-time of 7 runs\n",
              kFmaChains, kIterations);
  std::printf("%-8s %8s %22s %22s %16s\n", "isa", "threads", "GFLOP/s total (median)", "GFLOP/s total (p10)",
              "per core (p10)");
  double peak_total = 0;
  for (const FmaIsa& isa : fma_isas()) {
    if (!isa.supported) {
      std::printf("%-8s not supported by this CPU\n", isa.name);
      continue;
    }
    for (int threads : {1, all}) {
      const FmaPeak p = measure_fma_peak(isa.loop, isa.lanes, threads, kIterations);
      std::printf("%-8s %8d %22.1f %22.1f %16.1f\n", isa.name, threads, p.median_gflops, p.fast_gflops,
                  p.fast_gflops / threads);
      if (threads == all && p.fast_gflops > peak_total) peak_total = p.fast_gflops;
      if (threads == all) break;
    }
  }
  std::printf("\nmeasured peak (best ISA, all %d threads): %.1f GFLOP/s; bench::fp32_peak_gflops() = %.1f "
              "(OM_FP32_PEAK_GFLOPS, else its own shorter measurement)\n",
              all, peak_total, fp32_peak_gflops());
  return 0;
}
