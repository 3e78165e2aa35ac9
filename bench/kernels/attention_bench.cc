// Causal attention on CPU, f32: the reference (cpu::attention_*) and the per-head GEMM variant
// (cpu::attention_*_gemm, what attention_forward / attention_backward run for f32), softmax vs
// softmax-1, forward, backward and both.
//   attention_bench [B T H D]          (default 8 256 8 64)
// Validates both paths with check_attention() first (each against the f64 reference, which is itself
// checked against finite differences) and refuses to time them if a check fails.
// Reports median / p10 / p90 ms per call, tokens/s (B*T per call) and GFLOP/s as a % of
// bench::fp32_peak_gflops() (OM_FP32_PEAK_GFLOPS overrides it).
#include <omp.h>

#include <cstdio>
#include <cstdlib>

#include "bench/bench.h"
#include "kernels/attention.h"
#include "kernels/check/checks.h"

namespace om {
namespace {

struct Sizes {
  int64_t B = 8, T = 256, H = 8, D = 64;
};

// FLOPs counted: the matrix products only (one multiply-add = 2 FLOPs), over the causal
// (query, key) pairs j <= i, of which there are B*H*T(T+1)/2. Each pair costs a length-D dot or axpy:
//   forward:  s = q·k (QK^T) and out += p v (PV)                              -> 2 * 2D per pair
//   backward: recomputed q·k, dp = dout·v, dq += ds k, dk += ds q, dv += p dout -> 5 * 2D per pair
// i.e. backward = 2.5x forward. exp, max, the row sums and dout·out (O(B*H*T*(T+D))) are not counted.
// The same count for both paths, although the GEMM variant also multiplies the zeros above the
// diagonal inside its 64-query diagonal blocks: the rate is useful work per second.
double causal_pairs(const Sizes& s) {
  return static_cast<double>(s.B * s.H) * static_cast<double>(s.T) * static_cast<double>(s.T + 1) / 2.0;
}
double forward_flops(const Sizes& s) { return 2.0 * 2.0 * static_cast<double>(s.D) * causal_pairs(s); }
double backward_flops(const Sizes& s) { return 5.0 * 2.0 * static_cast<double>(s.D) * causal_pairs(s); }

void report(const char* path, const char* kind, const char* pass, const bench::BenchStats& st, const Sizes& s,
            double flops) {
  const double gflops = flops / st.median_s / 1e9;
  std::printf("%-10s %-10s %-9s %9.2f %8.2f %8.2f %11.0f %9.2f %7.2f%%\n", path, kind, pass, 1e3 * st.median_s,
              1e3 * st.p10_s, 1e3 * st.p90_s, static_cast<double>(s.B * s.T) / st.median_s, gflops,
              100.0 * gflops / bench::fp32_peak_gflops());
}

// One CPU path: its forward and backward entry points.
struct Path {
  const char* name;
  void (*forward)(const AttentionForwardArgs&);
  void (*backward)(const AttentionBackwardArgs&);
};

int run(const Sizes& s) {
  bench::require_ok(check_attention());
  HostTensor qkv("qkv", DType::kF32, {s.B, s.T, 3 * s.H * s.D}), out("out", DType::kF32, {s.B, s.T, s.H * s.D}),
      lse("lse", DType::kF32, {s.B, s.H, s.T}), dout("dout", DType::kF32, {s.B, s.T, s.H * s.D}),
      dqkv("dqkv", DType::kF32, qkv.shape());
  qkv.FillNormal(Rng(1, "attention_bench/qkv"), 0, 1.0);
  dout.FillNormal(Rng(1, "attention_bench/dout"), 0, 1.0);
  std::printf("attention CPU paths, f32, B=%ld T=%ld H=%ld D=%ld, %d OpenMP threads, fp32 peak %.0f GFLOP/s\n",
              static_cast<long>(s.B), static_cast<long>(s.T), static_cast<long>(s.H), static_cast<long>(s.D),
              omp_get_max_threads(), bench::fp32_peak_gflops());
  std::printf("FLOPs: forward 4*D*B*H*T(T+1)/2 = %.3g, backward 2.5x = %.3g (matrix products only)\n", forward_flops(s),
              backward_flops(s));
  std::printf("%-10s %-10s %-9s %9s %8s %8s %11s %9s %8s\n", "path", "kind", "pass", "median ms", "p10 ms", "p90 ms",
              "tokens/s", "GFLOP/s", "% peak");
  const bench::MeasureOptions opt{.warmup = 2, .iters = 10};
  const Path paths[] = {{"reference", cpu::attention_forward, cpu::attention_backward},
                        {"gemm", cpu::attention_forward_gemm, cpu::attention_backward_gemm}};
  for (const Path& path : paths)
    for (AttentionKind kind : {AttentionKind::kSoftmax, AttentionKind::kSoftmax1}) {
      const char* name = kind == AttentionKind::kSoftmax1 ? "softmax-1" : "softmax";
      const AttentionForwardArgs fwd{out.view(), lse.view(), TensorView{}, qkv.cview(), s.H, kind};
      const AttentionBackwardArgs bwd{dqkv.view(), dout.cview(), qkv.cview(), out.cview(), lse.cview(), s.H, kind};
      report(path.name, name, "forward", bench::measure([&] { path.forward(fwd); }, opt), s, forward_flops(s));
      report(path.name, name, "backward", bench::measure([&] { path.backward(bwd); }, opt), s, backward_flops(s));
      report(path.name, name, "fwd+bwd",
             bench::measure(
                 [&] {
                   path.forward(fwd);
                   path.backward(bwd);
                 },
                 opt),
             s, forward_flops(s) + backward_flops(s));
    }
  return 0;
}

}  // namespace
}  // namespace om

int main(int argc, char** argv) {
  om::Sizes s;
  if (argc == 5) {
    s = {std::atoll(argv[1]), std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4])};
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [B T H D]   (default 8 256 8 64)\n", argv[0]);
    return 2;
  }
  if (s.B <= 0 || s.T <= 0 || s.H <= 0 || s.D <= 0) {
    std::fprintf(stderr, "B, T, H and D must be positive\n");
    return 2;
  }
  return om::run(s);
}
