// CPU matmul (kernels/matmul.h): f32 through oneDNN's dnnl_sgemm, f64 through plain loops.
//
// Determinism. dnnl_sgemm on its own is NOT bit-identical across OpenMP thread counts. Measured with
// oneDNN 2.6 (Debian libdnnl2) against a 1-thread run: a row vector times a matrix (M = 1, K >= 256,
// e.g. 1×1024×256) splits its K reduction between threads already at 2 threads; small M·N with long
// K (8×4096×256, 64×1e5×64, 100×1000×100 NT) does so at 8 threads. So we cut c into a fixed grid of
// tiles that depends only on (M, N) and run ONE single-threaded dnnl_sgemm per tile, over the whole
// K, inside our own OpenMP loop: each output element is reduced by one call whose shape never
// depends on the thread count. The cost against a bare multi-threaded dnnl_sgemm is measured in
// bench/results/2026-11-28_cpu-2core_matmul.md.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include <algorithm>
#include <vector>

#include "kernels/matmul.h"

namespace om::cpu {
namespace {

// At most kMaxTiles tiles: a power of two, so 1, 2, 4, 8 or 16 threads share them evenly. Fewer
// tiles cost less on 2 cores but cap the threads used (against one bare dnnl_sgemm on the Llama
// shapes of bench/kernels/matmul_bench.cc: 4 tiles ~0 %, 8 ~1 %, 16 ~2-5 % slower). A tile is
// kept at least kMinTileDim on a side where the matrix allows: each tile re-packs its panels of a
// and b, which costs about (1/tile_rows + 1/tile_cols) of its flops in memory traffic, so the longer
// side is halved first (square-ish tiles). Column starts are multiples of kTileAlign floats (64 B).
constexpr int64_t kMaxTiles = 16;
constexpr int64_t kMinTileDim = 128;
constexpr int64_t kTileAlign = 16;

int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

struct TileGrid {
  int64_t rows = 0, cols = 0;    // tile extent (the last row / column of tiles may be smaller)
  int64_t nrows = 0, ncols = 0;  // number of tiles along M and along N
};

TileGrid tile_grid(int64_t M, int64_t N) {
  int64_t gm = 1, gn = 1;
  while (gm * gn < kMaxTiles) {
    const bool split_m = M / (2 * gm) >= kMinTileDim, split_n = N / (2 * gn) >= kMinTileDim;
    if (!split_m && !split_n) break;
    if (split_m && (!split_n || M / gm >= N / gn)) {
      gm *= 2;
    } else {
      gn *= 2;
    }
  }
  TileGrid g;
  g.rows = ceil_div(M, gm);
  g.cols = ceil_div(ceil_div(N, gn), kTileAlign) * kTileAlign;
  g.nrows = ceil_div(M, g.rows);
  g.ncols = ceil_div(N, g.cols);
  return g;
}

void matmul_f32(const MatmulArgs& args) {
  const bool ta = args.trans_a == Transpose::kYes, tb = args.trans_b == Transpose::kYes;
  const int64_t M = args.c.dim(0), N = args.c.dim(1), K = ta ? args.a.dim(0) : args.a.dim(1);
  float* c = args.c.data_as<float>();
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: c = 0, or c unchanged when accumulating
    if (args.mode == WriteMode::kOverwrite) std::fill(c, c + M * N, 0.0f);
    return;
  }
  const float* a = args.a.data_as<const float>();
  const float* b = args.b.data_as<const float>();
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  const float beta = args.mode == WriteMode::kAccumulate ? 1.0f : 0.0f;
  const TileGrid g = tile_grid(M, N);
  // Always through this parallel region, even for one tile: inside an active region oneDNN runs
  // single-threaded (omp_in_parallel). omp_set_num_threads(1) also covers a team of one thread; it
  // changes only this region's implicit task, not the caller's setting. Which thread computes a
  // tile does not change its result, so tiles are handed out dynamically (robust to a busy core).
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < g.nrows * g.ncols; ++t) {
    omp_set_num_threads(1);
    const int64_t i0 = (t / g.ncols) * g.rows, j0 = (t % g.ncols) * g.cols;
    const int64_t m = std::min(g.rows, M - i0), n = std::min(g.cols, N - j0);
    const float* at = ta ? a + i0 : a + i0 * lda;  // rows i0.. of op(a)
    const float* bt = tb ? b + j0 * ldb : b + j0;  // columns j0.. of op(b)
    const dnnl_status_t st =
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, K, 1.0f, at, lda, bt, ldb, beta, c + i0 * N + j0, N);
    OM_CHECK(st == dnnl_success, "matmul: dnnl_sgemm failed (%s) on the (%ld, %ld) tile at (%ld, %ld) of c '%s' %s",
             dnnl_status2str(st), static_cast<long>(m), static_cast<long>(n), static_cast<long>(i0),
             static_cast<long>(j0), args.c.name, args.c.shape.ToString().c_str());
  }
}

// The gradient-check path: c[i, j] (=|+=) sum over k = 0, 1, ..., K-1 of op(a)[i, k] · op(b)[k, j],
// summed in that order for every element, so the result depends on no blocking or thread count.
// op(b) is first copied to a (K, N) row-major scratch so the inner loop runs along contiguous j
// (and vectorises); rows of c are independent and split over threads; columns are processed in
// blocks of kColBlock so the row accumulator stays in L1.
constexpr int64_t kColBlock = 512;

void matmul_f64(const MatmulArgs& args) {
  const bool ta = args.trans_a == Transpose::kYes, tb = args.trans_b == Transpose::kYes;
  const int64_t M = args.c.dim(0), N = args.c.dim(1), K = ta ? args.a.dim(0) : args.a.dim(1);
  const double* a = args.a.data_as<const double>();
  const double* b = args.b.data_as<const double>();
  double* c = args.c.data_as<double>();
  std::vector<double> b_kn;  // op(b) as (K, N) when b is stored (N, K)
  if (tb) {
    b_kn.resize(static_cast<size_t>(K * N));
    for (int64_t j = 0; j < N; ++j)
      for (int64_t k = 0; k < K; ++k) b_kn[k * N + j] = b[j * K + k];
    b = b_kn.data();
  }
  const bool accumulate = args.mode == WriteMode::kAccumulate;
#pragma omp parallel
  {
    std::vector<double> a_row(static_cast<size_t>(K)), acc(static_cast<size_t>(kColBlock));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t k = 0; k < K; ++k) a_row[k] = ta ? a[k * M + i] : a[i * K + k];
      double* ci = c + i * N;
      for (int64_t j0 = 0; j0 < N; j0 += kColBlock) {
        const int64_t nj = std::min(kColBlock, N - j0);
        std::fill(acc.begin(), acc.begin() + nj, 0.0);
        for (int64_t k = 0; k < K; ++k) {
          const double aik = a_row[k];
          const double* bk = b + k * N + j0;
          for (int64_t j = 0; j < nj; ++j) acc[j] += aik * bk[j];
        }
        for (int64_t j = 0; j < nj; ++j) ci[j0 + j] = accumulate ? ci[j0 + j] + acc[j] : acc[j];
      }
    }
  }
}

}  // namespace

// c = c + residual in c's dtype, element-wise: the arithmetic of residual_forward (kernels/residual.h).
template <typename T>
void add_residual(const MatmulArgs& args) {
  T* c = args.c.data_as<T>();
  const T* r = args.residual.data_as<const T>();
  const int64_t n = args.c.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) c[i] = c[i] + r[i];
}

void matmul(const MatmulArgs& args) {
  if (args.a.dtype == DType::kF64) {
    matmul_f64(args);
    if (args.residual.data != nullptr) add_residual<double>(args);
    return;
  }
  matmul_f32(args);
  if (args.residual.data != nullptr) add_residual<float>(args);
}

}  // namespace om::cpu
