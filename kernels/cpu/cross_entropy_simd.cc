// f32 cross-entropy passes over the N·Vl logits (kernels/cross_entropy.h, namespace cpu, *_simd),
// tested against the f64 reference by kernels/check/cross_entropy_check.cc. The reference
// (kernels/cpu/cross_entropy.cc) calls std::exp in double, which GCC cannot vectorise, and its
// std::max loop does not vectorise either; here exp is an inline f32 polynomial, and every loop runs
// over kLanes fixed lanes (column j in lane j mod kLanes) that GCC vectorises, on any thread count.
// Measured at N=2048, V=8192 on one core: forward + backward 158 ms -> 15 ms, at memory speed
// (bench/results/2026-11-28_cpu-2core_cross_entropy.md).
//
// exp(x - m) is exp_shifted_f32 (kernels/cpu/exp_f32.h): x - m formed exactly by TwoSum, as in the
// reference where x - m is exact in double, so each term is within kExpF32Ulps = 1.5 ulp (measured
// 1.16) of exp(x - m), the per-term bound rule 4 (kernels/check/tolerance.h) assumes; exp_f32(x - m)
// would add the rounding of x - m, up to tens of ulp for x - m ~ -80. Below ln(FLT_MIN) the result
// is 0, so no term is subnormal (each would cost a microcode assist); above 88 (never here: m is the
// row max and x - m <= 0) it is +inf. NaN gives NaN, so a diverged model still reports a NaN loss.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "kernels/cpu/cross_entropy_common.h"
#include "kernels/cpu/exp_f32.h"
#include "kernels/cross_entropy.h"

// The row loops are multi-versioned with OM_ROW_LOOP_CLONES (kernels/cpu/exp_f32.h): x86-64-v4
// (AVX-512, 16 lanes in one register), v3 (AVX2 + FMA) and the build's baseline (SSE2, 4 lanes), one
// picked at load time. The baseline alone is compute-bound: sum_exp at N=2048, V=8192 took 16.8 ms
// on one core against 4.4 ms for the v4 clone, which runs at memory speed. FMA contraction (v3, v4)
// changes last bits, so results are bit-identical for any thread count on one machine, not across
// ISAs; every clone is within kExpF32Ulps, and the tests check the one their machine runs.

namespace om::cpu {
namespace {

// The sum runs in kLanes f32 partial sums, lane l taking columns j ≡ l (mod kLanes): one AVX-512
// vector, two AVX2 or four SSE ones. The lane of a column depends on j only, never on alignment or
// threads.
constexpr int64_t kLanes = kCrossEntropySimdLanes;

void check_f32(const char* op, const ConstTensorView& t) {
  OM_CHECK(t.dtype == DType::kF32, "%s: the simd variant is f32 only; '%s' is %s", op, t.name,
           std::string(dtype_name(t.dtype)).c_str());
}

// Software prefetch this many floats (32 cache lines) ahead of the loops below. The exp loop body
// is long (~30 vector instructions per block), so out-of-order execution keeps only a few cache
// misses in flight: without the prefetch, sum_exp at N=2048, V=8192 took 9.1 ms on one core (v4
// clone) against 4.4 ms with it, and the SSE2 loop streamed at 2.5 ns per element against 1.0 ns
// in cache (distances 512-1024 were best of 64..2048). `ahead` is how many floats from the row
// start may be touched (to the end of the tensor): the prefetch runs on into the next row, which
// the same thread takes next under schedule(static), but never past the buffer.
constexpr int64_t kPrefetchFloats = 512;
inline int64_t prefetch_index(int64_t j, int64_t ahead) { return std::min(j + kPrefetchFloats, ahead - 1); }

// max_j x[j] over j < len (-inf if len is 0) in kLanes lanes, each a running `x > m ? x : m`: the
// reference's std::max(m, x) predicate, so NaNs are skipped alike and the max is the same value
// (a max is exact; only the sign of a zero max may differ).
OM_ROW_LOOP_CLONES float max_row(const float* x, int64_t len, int64_t ahead) {
  float acc[kLanes];
  std::fill(acc, acc + kLanes, -std::numeric_limits<float>::infinity());
  const int64_t full = len - len % kLanes;
  for (int64_t j = 0; j < full; j += kLanes) {
    __builtin_prefetch(x + prefetch_index(j, ahead));
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  }
  for (int64_t j = full; j < len; ++j) acc[j - full] = x[j] > acc[j - full] ? x[j] : acc[j - full];
  float m = acc[0];
  for (int64_t l = 1; l < kLanes; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

// sum_j exp(x[j] - m) over j < len: kLanes f32 partial sums, then the lanes added in double in lane
// order. The last partial block goes through the same vector code, padded with m (exp = 1) and
// masked out of the sum.
OM_ROW_LOOP_CLONES float sum_exp_row(const float* x, float m, int64_t len, int64_t ahead) {
  float acc[kLanes] = {};
  const int64_t full = len - len % kLanes;
  for (int64_t j = 0; j < full; j += kLanes) {
    __builtin_prefetch(x + prefetch_index(j, ahead));
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += exp_shifted_f32(x[j + l], m);
  }
  const int64_t rest = len - full;
  float tail[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = l < rest ? x[full + l] : m;
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = exp_shifted_f32(tail[l], m);
  for (int64_t l = 0; l < kLanes; ++l) acc[l] += keep_if(l < rest, tail[l]);
  double s = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  return static_cast<float>(s);
}

// y[j] = exp(x[j] - m) * c over j < len; same blocking as sum_exp_row, so every column sees the
// same instructions whatever the row length.
OM_ROW_LOOP_CLONES void scaled_exp_row(const float* x, float m, float c, int64_t len, float* y, int64_t ahead) {
  const int64_t full = len - len % kLanes;
  for (int64_t j = 0; j < full; j += kLanes) {
    __builtin_prefetch(x + prefetch_index(j, ahead));
    __builtin_prefetch(y + prefetch_index(j, ahead), 1);
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) y[j + l] = exp_shifted_f32(x[j + l], m) * c;
  }
  const int64_t rest = len - full;
  float tail[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = l < rest ? x[full + l] : m;
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = exp_shifted_f32(tail[l], m) * c;
  std::copy(tail, tail + rest, y + full);
}

}  // namespace

void cross_entropy_row_max_simd(const CrossEntropyRowMaxArgs& a) {
  check_f32("cross_entropy_row_max_simd", a.logits);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const float* x = a.logits.data_as<const float>();
  float* mx = a.row_max.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) mx[n] = max_row(x + n * Vl, valid, (N - n) * Vl);
}

void cross_entropy_sum_exp_simd(const CrossEntropySumExpArgs& a) {
  check_f32("cross_entropy_sum_exp_simd", a.logits);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const float* x = a.logits.data_as<const float>();
  const float* mx = a.row_max.data_as<const float>();
  float* se = a.sum_exp.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) se[n] = sum_exp_row(x + n * Vl, mx[n], valid, (N - n) * Vl);
}

void cross_entropy_backward_simd(const CrossEntropyBackwardArgs& a) {
  constexpr const char* op = "cross_entropy_backward_simd";
  check_f32(op, a.logits);
  check_targets(op, a.targets, a.shard.vocab_size);
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const float* x = a.logits.data_as<const float>();
  const int32_t* tg = a.targets.data_as<const int32_t>();
  const float* mx = a.row_max.data_as<const float>();
  const float* se = a.sum_exp.data_as<const float>();
  float* dx = a.dlogits.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* dxr = dx + n * Vl;
    if (tg[n] == kIgnoreTarget) {
      std::fill(dxr, dxr + Vl, 0.0f);
      continue;
    }
    // p·dloss = exp(x - m) · (dloss / sum_exp): one rounding for the factor, one for the product.
    const float c = static_cast<float>(static_cast<double>(a.dloss) / static_cast<double>(se[n]));
    scaled_exp_row(x + n * Vl, mx[n], c, valid, dxr, (N - n) * Vl);
    // The one-hot term, on the shard that owns the target only.
    const int64_t local = static_cast<int64_t>(tg[n]) - a.shard.vocab_start;
    if (local >= 0 && local < valid) dxr[local] -= a.dloss;
    std::fill(dxr + valid, dxr + Vl, 0.0f);
  }
}

}  // namespace om::cpu
