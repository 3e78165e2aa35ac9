// f32 cross-entropy passes over the N·Vl logits (kernels/cross_entropy.h, namespace cpu, *_simd),
// tested against the f64 reference by kernels/check/cross_entropy_check.cc. The reference
// (kernels/cpu/cross_entropy.cc) calls std::exp in double, which GCC cannot vectorise, and its
// std::max loop does not vectorise either; here exp is an inline f32 polynomial, and every loop runs
// over kLanes fixed lanes (column j in lane j mod kLanes) that GCC vectorises, on any thread count.
// Measured at N=2048, V=8192 on one core: forward + backward 158 ms -> 15 ms, at memory speed
// (bench/results/2026-11-28_cpu-2core_cross_entropy.md).
//
// exp(x - m) for f32 x and row max m, in four steps:
//   1. d = x - m as s + err exactly (TwoSum): the subtraction adds no error, as in the reference
//      where x - m is exact in double.
//   2. Cody-Waite: n = round(s / ln 2) (a float add of 1.5·2^23 rounds to an integer held in the
//      low mantissa bits), r = (s - n·ln2_hi) - n·ln2_lo + err with ln2_hi short enough (15 bits)
//      that n·ln2_hi is exact for |n| <= 255 with or without FMA; |r| <= ln2/2 (+ a few ulp).
//   3. exp(r) = 1 + (q(r)·r² + r), q of degree 4: the degree-6 polynomial with c0 = c1 = 1 closest
//      to exp in relative error on [-0.3467, 0.3467] (Remez exchange in double, coefficients
//      rounded to f32; the approximation error is 1.9e-9 = 0.02 ulp). Adding the 1 last makes the
//      final rounding the dominant error (0.5 ulp) and keeps exp(0) = 1 exactly.
//   4. Scale by 2^n by writing n + 127 into the exponent bits.
// Measured against std::exp in double over every float in [-104, 88] (m = 0): max 1.13 ulp
// (SSE2), 1.16 ulp (AVX2 / AVX-512 with FMA contraction); with m in {-3.3, 1.75, 11.8, 37.1, 1e4}
// on every 13th float, also <= 1.16. kExpF32Ulps = 1.5 in kernels/check/tolerance.h bounds it, and
// tests/kernels/cross_entropy_test.cc asserts that on a dense grid.
// Below kExpMinArg ≈ ln(FLT_MIN) the result is 0 (the true value is < FLT_MIN ≈ 1.2e-38), so (for
// an exact x - m) no result is subnormal, which would cost a microcode assist each. Above kExpMaxArg = 88 (never in
// cross-entropy, where m is the row max and x - m <= 0) it is +inf or NaN, loudly wrong. NaN gives
// NaN, so a diverged model still reports a NaN loss.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#include "kernels/cross_entropy.h"

// The row loops are compiled three times (GCC's target_clones; the loader picks one by the CPU's
// features, once): x86-64-v4 (AVX-512, 16 lanes in one register), v3 (AVX2 + FMA) and the build's
// baseline (SSE2, 4 lanes). The baseline alone is compute-bound: sum_exp at N=2048, V=8192 took
// 16.8 ms on one core against 4.4 ms for the v4 clone, which runs at memory speed. FMA contraction
// (v3, v4) changes last bits, so results are bit-identical for any thread count on one machine, not
// across ISAs; every clone is within kExpF32Ulps, and the tests check the one their machine runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OM_CE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OM_CE_SIMD_CLONES
#endif

namespace om::cpu {
namespace {

constexpr float kExpMinArg = -0x1.5d589ep+6f;  // -87.33654: the float just above ln(2^-126)
constexpr float kExpMaxArg = 88.0f;          // e^88 < FLT_MAX: n <= 127
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kRoundMagic = 12582912.0f;   // 1.5·2^23: x + magic rounds x to an integer
constexpr float kLn2Hi = 0x1.62e4p-1f;       // ln 2 to 15 bits
constexpr float kLn2Lo = 0x1.7f7d1cf8p-20f;  // ln 2 - kLn2Hi
constexpr float kC2 = 4.999999106e-01f, kC3 = 1.666641831e-01f, kC4 = 4.166820645e-02f, kC5 = 8.374985307e-03f,
                kC6 = 1.383816940e-03f;

// Selects written as bitwise operations with a mask, which GCC vectorises. `keep ? v : 0.0f` and
// clamps written with ?: it turns back into branches around (specialised copies of) the
// computation of v, which it will not vectorise while float operations may trap (the default
// -ftrapping-math).
inline float keep_if(bool keep, float v) {  // v if keep, else +0
  return std::bit_cast<float>(std::bit_cast<uint32_t>(v) & (keep ? ~0u : 0u));
}
inline float overflow_if(bool overflow, float v) {  // v, or +inf / NaN if overflow
  return std::bit_cast<float>(std::bit_cast<uint32_t>(v) | (overflow ? 0x7f800000u : 0u));
}

// exp(x - m); written without calls or branches so that GCC vectorises loops over it.
inline float exp_shifted(float x, float m) {
  const float s = x - m;
  const float sb = s - x;
  const float err = (x - (s - sb)) + (-m - sb);  // x - m = s + err exactly (Knuth's TwoSum)
  // Not clamped: outside [kExpMinArg, kExpMaxArg] the lines below compute garbage (a wrapped
  // exponent, inf or NaN, never a subnormal operand), which the masks at the end replace.
  const float k = s * kLog2e + kRoundMagic;
  const float n = k - kRoundMagic;
  const float r = (s - n * kLn2Hi) - n * kLn2Lo + err;
  float q = kC6;
  q = q * r + kC5;
  q = q * r + kC4;
  q = q * r + kC3;
  q = q * r + kC2;
  const float p = 1.0f + (q * (r * r) + r);
  // k's bits minus the magic's are n (mod 2^32); n + 127 is the biased exponent of 2^n, in
  // [1, 254] inside the range. Unsigned so that negative n wraps instead of overflowing.
  const uint32_t scale_bits = (std::bit_cast<uint32_t>(k) - std::bit_cast<uint32_t>(kRoundMagic) + 127u) << 23;
  const float y = p * std::bit_cast<float>(scale_bits);
  return overflow_if(s > kExpMaxArg, keep_if(!(s < kExpMinArg), y));
}

// The sum runs in kLanes f32 partial sums, lane l taking columns j ≡ l (mod kLanes): one AVX-512
// vector, two AVX2 or four SSE ones. The lane of a column depends on j only, never on alignment or
// threads.
constexpr int64_t kLanes = kCrossEntropySimdLanes;

// Padding ids are exactly the tail of a contiguous shard: columns [valid_columns, Vl).
int64_t valid_columns(const VocabShard& s, int64_t Vl) { return std::clamp<int64_t>(s.vocab_size - s.vocab_start, 0, Vl); }

// The reference's target check (kernels/cpu/cross_entropy.cc), same message: a target outside
// [0, vocab_size) that is not kIgnoreTarget is a data bug.
void check_targets(const char* op, const ConstTensorView& targets, int64_t vocab_size) {
  const int32_t* t = targets.data_as<const int32_t>();
  for (int64_t n = 0; n < targets.numel(); ++n) {
    OM_CHECK(t[n] == kIgnoreTarget || (t[n] >= 0 && t[n] < vocab_size),
             "%s: '%s'[%ld] = %d is neither a token id in [0, %ld) nor kIgnoreTarget (%d)", op, targets.name,
             static_cast<long>(n), t[n], static_cast<long>(vocab_size), kIgnoreTarget);
  }
}

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
OM_CE_SIMD_CLONES float max_row(const float* x, int64_t len, int64_t ahead) {
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
OM_CE_SIMD_CLONES float sum_exp_row(const float* x, float m, int64_t len, int64_t ahead) {
  float acc[kLanes] = {};
  const int64_t full = len - len % kLanes;
  for (int64_t j = 0; j < full; j += kLanes) {
    __builtin_prefetch(x + prefetch_index(j, ahead));
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += exp_shifted(x[j + l], m);
  }
  const int64_t rest = len - full;
  float tail[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = l < rest ? x[full + l] : m;
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = exp_shifted(tail[l], m);
  for (int64_t l = 0; l < kLanes; ++l) acc[l] += keep_if(l < rest, tail[l]);
  double s = 0.0;
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  return static_cast<float>(s);
}

// y[j] = exp(x[j] - m) * c over j < len; same blocking as sum_exp_row, so every column sees the
// same instructions whatever the row length.
OM_CE_SIMD_CLONES void scaled_exp_row(const float* x, float m, float c, int64_t len, float* y, int64_t ahead) {
  const int64_t full = len - len % kLanes;
  for (int64_t j = 0; j < full; j += kLanes) {
    __builtin_prefetch(x + prefetch_index(j, ahead));
    __builtin_prefetch(y + prefetch_index(j, ahead), 1);
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) y[j + l] = exp_shifted(x[j + l], m) * c;
  }
  const int64_t rest = len - full;
  float tail[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = l < rest ? x[full + l] : m;
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) tail[l] = exp_shifted(tail[l], m) * c;
  std::copy(tail, tail + rest, y + full);
}

}  // namespace

void cross_entropy_exp_simd(const CrossEntropyExpArgs& a) {
  constexpr const char* op = "cross_entropy_exp_simd";
  check_f32(op, a.x);
  check_f32(op, a.out);
  OM_CHECK(a.out.numel() == a.x.numel(), "%s: '%s' has %ld elements but '%s' has %ld", op, a.out.name,
           static_cast<long>(a.out.numel()), a.x.name, static_cast<long>(a.x.numel()));
  const int64_t n = a.x.numel();
  const float* x = a.x.data_as<const float>();
  float* y = a.out.data_as<float>();
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += kChunk) scaled_exp_row(x + i, a.shift, 1.0f, std::min(kChunk, n - i), y + i, n - i);
}

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
