// CPU GEMM candidates side by side, at training-like shapes (bench/results/*_cpu-2core_matmul.md):
//   om::matmul  the shipped path: dnnl_sgemm on a fixed tile grid, one thread per tile, so results
//               are bit-identical for any thread count (kernels/cpu/matmul.cc)
//   dnnl_sgemm  one call on the whole matrix with oneDNN's own threading (not deterministic)
//   OpenBLAS    cblas_sgemm; the library reads OPENBLAS_CORETYPE once at load time, so run the
//               binary twice: as is (autodetected core) and with OPENBLAS_CORETYPE=SKYLAKEX
// Validates first: check_matmul(), then every candidate against om::matmul at every shape.
//   GFLOP/s = 2·M·N·K / median time;   % of peak = GFLOP/s / bench::fp32_peak_gflops()
//   om/dnnl = om::matmul's speed over dnnl_sgemm's: what the determinism costs (< 1) or gains
// Then prints, per shape, how many outputs change bitwise with the OpenMP thread count.
// Usage: matmul_bench [--iters N] [--no-determinism] [MxKxN[:ab|:abT|:aTb|:aTbT]]...
//        (default: the shapes in default_shapes())
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "kernels/check/checks.h"
#include "kernels/matmul.h"

namespace om::bench {
namespace {

struct GemmShape {
  std::string name;
  int64_t M, K, N;
  Transpose ta = Transpose::kNo, tb = Transpose::kNo;
  std::string group;  // shapes of one group are also summed
};

// A tiny Llama (h = 256, FFN 688 with gate and up fused to 1376, vocabulary 8192) at B·T = 2048
// tokens. Linear y = x·Wᵀ, W (out, in): forward a·bT, dx = dy·W (a·b), dW += dyᵀ·x (aT·b).
std::vector<GemmShape> default_shapes() {
  constexpr Transpose kNo = Transpose::kNo, kYes = Transpose::kYes;
  std::vector<GemmShape> s = {{"square", 2048, 2048, 2048},
                              {"env 2048x768x256", 2048, 768, 256},
                              {"env 2048x8192x256", 2048, 8192, 256}};
  struct Linear {
    const char* name;
    int64_t in, out;
    const char* group;
  };
  const int64_t T = 2048;
  for (const Linear& l : {Linear{"qkv", 256, 768, "layer"}, Linear{"o", 256, 256, "layer"},
                          Linear{"gate_up", 256, 1376, "layer"}, Linear{"down", 688, 256, "layer"},
                          Linear{"lm_head", 256, 8192, "lm_head"}}) {
    s.push_back({std::string(l.name) + " fwd", T, l.in, l.out, kNo, kYes, l.group});
    s.push_back({std::string(l.name) + " dx", T, l.out, l.in, kNo, kNo, l.group});
    s.push_back({std::string(l.name) + " dW", l.out, T, l.in, kYes, kNo, l.group});
  }
  return s;
}

const char* op_name(Transpose ta, Transpose tb) {
  static const char* const kNames[2][2] = {{"ab", "abT"}, {"aTb", "aTbT"}};
  return kNames[ta == Transpose::kYes][tb == Transpose::kYes];
}

// "2048x768x256:abT" -> shape; exits on a malformed argument.
GemmShape parse_shape(const std::string& arg) {
  GemmShape s{arg};
  long M = 0, K = 0, N = 0;
  char op[8] = "ab";
  if (std::sscanf(arg.c_str(), "%ldx%ldx%ld:%7s", &M, &K, &N, op) < 3 || M <= 0 || K <= 0 || N <= 0) {
    std::fprintf(stderr, "bad shape '%s': expected MxKxN[:ab|:abT|:aTb|:aTbT]\n", arg.c_str());
    std::exit(2);
  }
  s.M = M, s.K = K, s.N = N;
  const std::string o = op;
  s.ta = o.rfind("aT", 0) == 0 ? Transpose::kYes : Transpose::kNo;
  s.tb = o.size() >= 2 && o.substr(o.size() - 2) == "bT" ? Transpose::kYes : Transpose::kNo;
  return s;
}

struct Candidate {
  const char* name;
  std::function<void(const GemmShape&, const HostTensor&, const HostTensor&, HostTensor&)> run;
};

std::vector<Candidate> candidates() {
  auto lds = [](const GemmShape& s, int64_t* lda, int64_t* ldb) {
    *lda = s.ta == Transpose::kYes ? s.M : s.K;
    *ldb = s.tb == Transpose::kYes ? s.K : s.N;
  };
  return {
      {"om::matmul",
       [](const GemmShape& s, const HostTensor& a, const HostTensor& b, HostTensor& c) {
         matmul({}, {c.view(), a.view(), b.view(), s.ta, s.tb});
       }},
      {"dnnl_sgemm",
       [lds](const GemmShape& s, const HostTensor& a, const HostTensor& b, HostTensor& c) {
         int64_t lda, ldb;
         lds(s, &lda, &ldb);
         const dnnl_status_t st = dnnl_sgemm(s.ta == Transpose::kYes ? 'T' : 'N', s.tb == Transpose::kYes ? 'T' : 'N',
                                             s.M, s.N, s.K, 1.0f, a.data<float>(), lda, b.data<float>(), ldb, 0.0f,
                                             c.data<float>(), s.N);
         OM_CHECK(st == dnnl_success, "dnnl_sgemm failed on %s", s.name.c_str());
       }},
      {"OpenBLAS",
       [lds](const GemmShape& s, const HostTensor& a, const HostTensor& b, HostTensor& c) {
         int64_t lda, ldb;
         lds(s, &lda, &ldb);
         cblas_sgemm(CblasRowMajor, s.ta == Transpose::kYes ? CblasTrans : CblasNoTrans,
                     s.tb == Transpose::kYes ? CblasTrans : CblasNoTrans, static_cast<blasint>(s.M),
                     static_cast<blasint>(s.N), static_cast<blasint>(s.K), 1.0f, a.data<float>(),
                     static_cast<blasint>(lda), b.data<float>(), static_cast<blasint>(ldb), 0.0f, c.data<float>(),
                     static_cast<blasint>(s.N));
       }},
  };
}

HostTensor random_operand(const char* name, int64_t rows, int64_t cols, Transpose t, uint64_t seed) {
  HostTensor x(name, DType::kF32, t == Transpose::kYes ? Shape{cols, rows} : Shape{rows, cols});
  Rng(seed, name).FillNormal(x.data<float>(), x.numel(), 0, 0.0f, 1.0f);
  return x;
}

// For each shape: how many elements of c differ bitwise from the 1-thread result, at 2..16 OpenMP
// threads, for a bare dnnl_sgemm and for om::matmul (must be 0). Oversubscribing the cores is fine
// here: only the bits are compared.
void print_determinism(const std::vector<Candidate>& cands) {
  constexpr Transpose kNo = Transpose::kNo, kYes = Transpose::kYes;
  const std::vector<GemmShape> shapes = {
      {"", 1, 1024, 256},      {"", 1, 256, 1000},   {"", 8, 4096, 256},    {"", 64, 100000, 64},
      {"", 100, 1000, 100, kNo, kYes}, {"", 64, 64, 64}, {"", 256, 768, 2048}, {"", 2048, 256, 768, kNo, kYes},
      {"", 768, 2048, 256, kYes, kNo}};
  const int thread_counts[] = {2, 3, 4, 8, 16};
  const int saved = omp_get_max_threads();
  std::printf("\nbit-identity across OpenMP thread counts: elements differing from the 1-thread result\n");
  std::printf("%-24s %-10s", "M x K x N op", "candidate");
  for (int t : thread_counts) std::printf(" %7dt", t);
  std::printf("\n");
  for (const GemmShape& s : shapes) {
    const HostTensor a = random_operand("a", s.M, s.K, s.ta, 3), b = random_operand("b", s.K, s.N, s.tb, 4);
    for (size_t ci = 0; ci < 2; ++ci) {  // om::matmul and dnnl_sgemm
      HostTensor ref("ref", DType::kF32, {s.M, s.N}), c("c", DType::kF32, {s.M, s.N});
      omp_set_num_threads(1);
      cands[ci].run(s, a, b, ref);
      const std::string shape = format_message("%ldx%ldx%ld %s", static_cast<long>(s.M), static_cast<long>(s.K),
                                               static_cast<long>(s.N), op_name(s.ta, s.tb));
      std::printf("%-24s %-10s", shape.c_str(), cands[ci].name);
      for (int t : thread_counts) {
        omp_set_num_threads(t);
        cands[ci].run(s, a, b, c);
        int64_t differ = 0;
        for (int64_t i = 0; i < c.numel(); ++i)
          differ += std::memcmp(c.data<float>() + i, ref.data<float>() + i, sizeof(float)) != 0;
        std::printf(" %8ld", static_cast<long>(differ));
      }
      std::printf("   of %ld\n", static_cast<long>(c.numel()));
    }
  }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace om::bench

int main(int argc, char** argv) {
  using namespace om;
  using namespace om::bench;
  int iters = 10;
  bool determinism = true;
  std::vector<GemmShape> shapes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--no-determinism") == 0) {
      determinism = false;
    } else {
      shapes.push_back(parse_shape(argv[i]));
    }
  }
  if (shapes.empty()) shapes = default_shapes();

  require_ok(check_matmul());
  const std::vector<Candidate> cands = candidates();
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  std::printf("OMP threads %d | oneDNN %d.%d.%d | OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %d threads | "
              "peak %.1f GFLOP/s | median of %d\n",
              omp_get_max_threads(), dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch,
              openblas_get_corename(), coretype ? coretype : "unset", openblas_get_num_threads(), fp32_peak_gflops(),
              iters);
  std::printf("%-18s %5s %5s %5s %-4s", "shape", "M", "K", "N", "op");
  for (const Candidate& c : cands) std::printf(" %17s", c.name);
  std::printf(" %8s\n", "om/dnnl");

  struct GroupSum {
    std::string group;
    std::vector<double> seconds;
  };
  std::vector<GroupSum> sums;
  for (const GemmShape& s : shapes) {
    const HostTensor a = random_operand("a", s.M, s.K, s.ta, 1), b = random_operand("b", s.K, s.N, s.tb, 2);
    // Every candidate agrees with om::matmul: each is within rule 2 of the exact product (K terms,
    // sum |a·b| bounded by the largest entry of |a|·|b|), so their difference is within twice it.
    HostTensor want("om::matmul", DType::kF32, {s.M, s.N});
    cands[0].run(s, a, b, want);
    HostTensor abs_a = a.Clone("|a|"), abs_b = b.Clone("|b|"), abs_ab("|a|·|b|", DType::kF32, {s.M, s.N});
    for (HostTensor* t : {&abs_a, &abs_b})
      for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = std::fabs(t->data<float>()[i]);
    cands[0].run(s, abs_a, abs_b, abs_ab);
    const Tolerance tol = for_reduction(DType::kF32, s.K, 2.0 * abs_ab.max_abs());
    const double gflop = 2.0 * static_cast<double>(s.M) * static_cast<double>(s.N) * static_cast<double>(s.K) * 1e-9;
    std::printf("%-18s %5ld %5ld %5ld %-4s", s.name.c_str(), static_cast<long>(s.M), static_cast<long>(s.K),
                static_cast<long>(s.N), op_name(s.ta, s.tb));
    std::vector<double> seconds;
    for (const Candidate& cand : cands) {
      HostTensor c(cand.name, DType::kF32, {s.M, s.N});
      cand.run(s, a, b, c);
      require_ok({compare_tensors(std::string(cand.name) + " " + s.name, "vs om::matmul", c, want, tol)});
      // OpenBLAS's pthreads (and OpenMP's) keep spinning for up to ~0.1 s after their last call; on
      // 2 cores that halves the next candidate's threads. Let them go to sleep first.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const BenchStats st = measure([&] { cand.run(s, a, b, c); }, {.warmup = 2, .iters = iters});
      seconds.push_back(st.median_s);
      const double gflops = gflop / st.median_s;
      std::printf(" %7.1f (%5.1f%%)", gflops, 100.0 * gflops / fp32_peak_gflops());
    }
    std::printf(" %7.2fx\n", seconds[1] / seconds[0]);
    std::fflush(stdout);
    if (s.group.empty()) continue;
    GroupSum* g = nullptr;
    for (GroupSum& x : sums)
      if (x.group == s.group) g = &x;
    if (!g) g = &sums.emplace_back(GroupSum{s.group, std::vector<double>(cands.size(), 0.0)});
    for (size_t i = 0; i < cands.size(); ++i) g->seconds[i] += seconds[i];
  }
  for (const GroupSum& g : sums) {
    std::printf("sum of '%s' GEMMs, ms:%*s", g.group.c_str(), static_cast<int>(18 - g.group.size()), "");
    for (double t : g.seconds) std::printf(" %17.2f", 1e3 * t);
    std::printf(" %7.2fx\n", g.seconds[1] / g.seconds[0]);
  }
  if (determinism) print_determinism(cands);
  return 0;
}
