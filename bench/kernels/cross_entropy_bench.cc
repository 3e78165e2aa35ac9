// Cross-entropy on the CPU, f32: the reference passes (std::exp in double) against the *_simd
// variants (f32 polynomial exp) that the f32 dispatch uses, at the tiny Llama's training shape.
//   cross_entropy_bench [N V]        (default 2048 8192; V is also Vl, no padding)
//   cross_entropy_bench --exp-ulp    (the shared f32 exp, kernels/cpu/exp_f32.h, against std::exp
//                                     over every float in [-104, 88])
// Validates with check_cross_entropy() first and refuses to time if a check fails. Reports median /
// p10 / p90 ms and GB/s of logits traffic, against the read and copy bandwidth measured here:
//   row_max, sum_exp read N·V floats each; backward reads N·V and writes N·V
//   (forward = row_max + sum_exp + target_logit + loss: 2·N·V·4 bytes; backward 2·N·V·4 bytes).
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "bench/bench.h"
#include "kernels/check/checks.h"
#include "kernels/check/tolerance.h"
#include "kernels/cpu/exp_f32.h"
#include "kernels/cross_entropy.h"

namespace om {
namespace {

// One timed configuration: `read` bytes only read, `copied` bytes read and written once each (the
// backward: logits in, dlogits out). At memory speed it would take
//   t_mem = read / read_bandwidth + copied / copy_bandwidth,
// both bandwidths measured below on buffers of the same size.
struct Config {
  const char* path;
  const char* pass;
  std::function<void()> fn;
  double read = 0, copied = 0;
  std::vector<double> samples;  // seconds, from every round
};

// Both loops are OpenMP over fixed chunks, like the kernels; the read loop sums into 16 f32 lanes per
// thread so that GCC vectorises it without reassociating a float sum.
struct Bandwidth {
  double read_gbs = 0, copy_gbs = 0;  // bytes read (+ written) per second / 1e9, at the median time
};

Bandwidth measure_bandwidth(int64_t floats) {
  HostTensor src("bandwidth.src", DType::kF32, {floats}), dst("bandwidth.dst", DType::kF32, {floats});
  src.Fill(1.0);
  const float* s = src.data<float>();
  float* d = dst.data<float>();
  volatile float sink = 0.0f;
  const bench::BenchStats read = bench::measure(
      [&] {
        float total = 0.0f;
#pragma omp parallel reduction(+ : total)
        {
          float acc[16] = {};
#pragma omp for schedule(static)
          for (int64_t b = 0; b < floats / 16; ++b) {
#pragma omp simd
            for (int l = 0; l < 16; ++l) acc[l] += s[16 * b + l];
          }
          for (int l = 0; l < 16; ++l) total += acc[l];
        }
        sink = total;
      },
      {.warmup = 2, .iters = 15});
  const bench::BenchStats copy = bench::measure(
      [&] {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < floats; ++i) d[i] = s[i];
      },
      {.warmup = 2, .iters = 15});
  const double bytes = 4.0 * static_cast<double>(floats);
  const Bandwidth bw{bytes / read.median_s / 1e9, 2.0 * bytes / copy.median_s / 1e9};
  std::printf("memory: read loop %.1f GB/s (p10 time %.1f), copy loop %.1f GB/s read + written (p10 time %.1f), "
              "%.0f MB buffers\n",
              bw.read_gbs, bytes / read.p10_s / 1e9, bw.copy_gbs, 2.0 * bytes / copy.p10_s / 1e9, bytes / 1e6);
  return bw;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

int run(int64_t N, int64_t V) {
  bench::require_ok(check_cross_entropy());
  const VocabShard shard{0, V};
  HostTensor logits("logits", DType::kF32, {N, V}), targets("targets", DType::kI32, {N}),
      losses("losses", DType::kF32, {N}), row_max("row_max", DType::kF32, {N}), sum_exp("sum_exp", DType::kF32, {N}),
      target_logit("target_logit", DType::kF32, {N}), dlogits("dlogits", DType::kF32, {N, V});
  logits.FillNormal(Rng(1, "cross_entropy_bench/logits"), 0, 3.0);
  const Rng rng(1, "cross_entropy_bench/targets");
  for (int64_t n = 0; n < N; ++n) targets.set(n, std::floor(rng.UniformDouble(n) * static_cast<double>(V)));
  const float dloss = 1.0f / static_cast<float>(N);

  std::printf("cross-entropy CPU, f32, N=%ld V=%ld (%.0f MB of logits), %d OpenMP threads\n", static_cast<long>(N),
              static_cast<long>(V), 4.0 * static_cast<double>(N * V) / 1e6, omp_get_max_threads());
  const Bandwidth bw = measure_bandwidth(N * V);
  const double pass = 4.0 * static_cast<double>(N * V);  // bytes of one read (or write) of the logits

  const CrossEntropyRowMaxArgs rm{row_max.view(), logits.view(), shard};
  const CrossEntropySumExpArgs se{sum_exp.view(), logits.view(), row_max.view(), shard};
  const CrossEntropyTargetLogitArgs tl{target_logit.view(), logits.view(), targets.view(), shard};
  const CrossEntropyLossArgs ls{losses.view(), row_max.view(), sum_exp.view(), target_logit.view(), targets.view()};
  const CrossEntropyForwardArgs fwd{losses.view(), row_max.view(),  sum_exp.view(), target_logit.view(),
                                    logits.view(), targets.view(), shard};
  const CrossEntropyBackwardArgs bwd{dlogits.view(), logits.view(), targets.view(), row_max.view(), sum_exp.view(),
                                     shard, dloss};
  // The reference path: every piece from kernels/cpu/cross_entropy.cc. The simd path: the f32
  // dispatch (cross_entropy_forward / _backward), i.e. the cpu::*_simd variants.
  auto ref_forward = [&] {
    cpu::cross_entropy_row_max(rm);
    cpu::cross_entropy_sum_exp(se);
    cpu::cross_entropy_target_logit(tl);
    cpu::cross_entropy_loss(ls);
  };
  std::vector<Config> configs = {
      {"reference", "row_max", [&] { cpu::cross_entropy_row_max(rm); }, pass, 0},
      {"reference", "sum_exp", [&] { cpu::cross_entropy_sum_exp(se); }, pass, 0},
      {"reference", "backward", [&] { cpu::cross_entropy_backward(bwd); }, 0, 2 * pass},
      {"reference", "forward", ref_forward, 2 * pass, 0},
      {"reference", "forward+backward",
       [&] {
         ref_forward();
         cpu::cross_entropy_backward(bwd);
       },
       2 * pass, 2 * pass},
      {"simd", "row_max", [&] { cpu::cross_entropy_row_max_simd(rm); }, pass, 0},
      {"simd", "sum_exp", [&] { cpu::cross_entropy_sum_exp_simd(se); }, pass, 0},
      {"simd", "backward", [&] { cpu::cross_entropy_backward_simd(bwd); }, 0, 2 * pass},
      {"simd", "forward", [&] { cross_entropy_forward({}, fwd); }, 2 * pass, 0},
      {"simd", "forward+backward",
       [&] {
         cross_entropy_forward({}, fwd);
         cross_entropy_backward({}, bwd);
       },
       2 * pass, 2 * pass},
  };
  // Rounds over all configurations, so that a slow phase of a shared machine hits them all alike.
  constexpr int kRounds = 5, kItersPerRound = 4;
  for (int round = 0; round < kRounds; ++round) {
    for (Config& c : configs) {
      c.fn();  // warm-up
      for (int i = 0; i < kItersPerRound; ++i) c.samples.push_back(bench::measure(c.fn, {.warmup = 0, .iters = 1}).median_s);
    }
  }
  std::printf("%d rounds x %d iterations; GB/s = logits bytes read + written / median time; \"%% mem\" = time at\n"
              "the measured read / copy bandwidth over the median time\n",
              kRounds, kItersPerRound);
  std::printf("%-10s %-16s %9s %8s %8s %8s %6s %8s\n", "path", "pass", "median ms", "p10 ms", "p90 ms", "GB/s", "% mem",
              "speedup");
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    const double med = quantile(c.samples, 0.5);
    const double t_mem = c.read / (bw.read_gbs * 1e9) + c.copied / (bw.copy_gbs * 1e9);
    // simd rows follow the reference rows of the same pass; passes match by name.
    double speedup = 0.0;
    for (const Config& r : configs)
      if (std::strcmp(c.path, "simd") == 0 && std::strcmp(r.path, "reference") == 0 && std::strcmp(r.pass, c.pass) == 0)
        speedup = quantile(r.samples, 0.5) / med;
    std::printf("%-10s %-16s %9.2f %8.2f %8.2f %8.1f %5.0f%%", c.path, c.pass, 1e3 * med, 1e3 * quantile(c.samples, 0.1),
                1e3 * quantile(c.samples, 0.9), (c.read + c.copied) / med / 1e9, 100.0 * t_mem / med);
    if (speedup > 0) std::printf(" %7.1fx", speedup);
    std::printf("\n");
  }
  return 0;
}

// Every float x in [-104, 88] through cpu::exp_f32 (the shared exp of the simd variants and of the
// attention rows; exp_shifted_f32 at m = 0 computes the same values) against std::exp in double: the
// max error in units of the last place of the true value (of FLT_MIN's subnormal grid, 2^-149,
// below FLT_MIN), the max distance in floats from the correctly rounded value, and that every
// x < ln(FLT_MIN) gives exactly 0. About 2.2e9 values.
int exp_ulp() {
  constexpr int64_t kChunk = int64_t{1} << 22;
  HostTensor x("x", DType::kF32, {kChunk}), y("exp(x)", DType::kF32, {kChunk});
  double worst = 0.0, worst_x = 0.0;
  int64_t count = 0, nonzero_below_min = 0, worst_apart = 0;
  const double ln_flt_min = std::log(static_cast<double>(FLT_MIN));
  // Bit patterns: [+0, 88] and (-0, -104]; both ranges are contiguous in the sign-magnitude order.
  const uint32_t ranges[2][2] = {{0u, std::bit_cast<uint32_t>(88.0f)},
                                 {std::bit_cast<uint32_t>(-0.0f) + 1, std::bit_cast<uint32_t>(-104.0f)}};
  for (const auto& range : ranges) {
    for (uint64_t base = range[0]; base <= range[1]; base += kChunk) {
      const int64_t len = static_cast<int64_t>(std::min<uint64_t>(kChunk, uint64_t{range[1]} - base + 1));
      float* xs = x.data<float>();
      for (int64_t i = 0; i < len; ++i) xs[i] = std::bit_cast<float>(static_cast<uint32_t>(base + i));
      cpu::exp_f32_array({y.data<float>(), xs, len, 0.0f, cpu::ExpShift::kRounded});
      const float* ys = y.data<float>();
      double chunk_worst = 0.0, chunk_worst_x = 0.0;
      int64_t chunk_bad = 0, chunk_apart = 0;
#pragma omp parallel
      {
        double w = 0.0, wx = 0.0;
        int64_t bad = 0, apart = 0;
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < len; ++i) {
          const double e = std::exp(static_cast<double>(xs[i]));
          if (xs[i] < ln_flt_min) {
            bad += ys[i] != 0.0f ? 1 : 0;
            continue;
          }
          int e2 = 0;
          std::frexp(e, &e2);
          const double ulp = e >= FLT_MIN ? std::ldexp(1.0, e2 - 24) : std::ldexp(1.0, -149);
          const double err = std::fabs(static_cast<double>(ys[i]) - e) / ulp;
          if (err > w) w = err, wx = xs[i];
          // Floats between the result and the correctly rounded value (both non-negative).
          const int64_t a = std::bit_cast<int32_t>(ys[i]) - std::bit_cast<int32_t>(static_cast<float>(e));
          apart = std::max(apart, a < 0 ? -a : a);
        }
#pragma omp critical
        {
          chunk_bad += bad;
          chunk_apart = std::max(chunk_apart, apart);
          if (w > chunk_worst || (w == chunk_worst && wx < chunk_worst_x)) chunk_worst = w, chunk_worst_x = wx;
        }
      }
      nonzero_below_min += chunk_bad;
      worst_apart = std::max(worst_apart, chunk_apart);
      if (chunk_worst > worst) worst = chunk_worst, worst_x = chunk_worst_x;
      count += len;
    }
  }
  std::printf("cpu::exp_f32 vs std::exp (double), every float in [-104, 88]: %ld values\n",
              static_cast<long>(count));
  std::printf("  max error %.4f ulp at x = %a (%.9g); bound kExpF32Ulps = %.2f\n", worst, worst_x, worst_x,
              kExpF32Ulps);
  std::printf("  at most %ld float(s) from the correctly rounded exp\n", static_cast<long>(worst_apart));
  std::printf("  x < ln(FLT_MIN): %ld results not exactly 0\n", static_cast<long>(nonzero_below_min));
  return worst <= kExpF32Ulps && worst_apart <= 1 && nonzero_below_min == 0 ? 0 : 1;
}

}  // namespace
}  // namespace om

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--exp-ulp") == 0) return om::exp_ulp();
  int64_t N = 2048, V = 8192;
  if (argc == 3) {
    N = std::atoll(argv[1]);
    V = std::atoll(argv[2]);
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [N V]   (default 2048 8192)\n       %s --exp-ulp\n", argv[0], argv[0]);
    return 2;
  }
  if (N <= 0 || V <= 0) {
    std::fprintf(stderr, "N and V must be positive\n");
    return 2;
  }
  return om::run(N, V);
}
