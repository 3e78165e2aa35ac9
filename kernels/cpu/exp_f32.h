// The f32 exponential of the fast CPU row loops (kernels/cpu/attention_gemm.cc: the softmax rows;
// kernels/cpu/cross_entropy_simd.cc: sum_exp and dlogits). Inline, branch-free and call-free, so
// that a loop over it vectorises; no table, no division.
//
//   exp_f32(x)             exp(x)
//   exp_shifted_f32(x, m)  exp(x - m) with x - m formed exactly (TwoSum), as a double reference does
//
// Contract, for f32 x and m (s = x - m rounded to f32; s = x for exp_f32):
//   s in [kExpF32MinArg, kExpF32MaxArg] = [ln(FLT_MIN) rounded up, 88]: within kExpF32Ulps
//       (kernels/check/tolerance.h) of the exact exp(x - m), and within one float of the correctly
//       rounded result; exp(0) = 1 exactly.
//   s < kExpF32MinArg (the true value is below FLT_MIN, or within a few ulp of it for m != 0): +0.
//       No result is subnormal, so none costs a microcode assist here or in the products that
//       read it; the absolute error is < FLT_MIN ≈ 1.2e-38. -inf gives +0.
//   s > kExpF32MaxArg: +inf (an overflow for s > 88.72; in (88, 88.72] the finite value is given up,
//       which keeps 2^n to one exponent field). Neither caller gets there: both shift by a row max.
//   NaN gives NaN (a diverged model still reports a NaN loss).
//
// Method: n = round(s log2 e) (adding 1.5·2^23 rounds to an integer held in the low mantissa
// bits); r = (s - n·ln2_hi) - n·ln2_lo (+ the TwoSum error of x - m), |r| <= ln2/2 plus a few ulp,
// with ln2_hi of 15 significant bits so that n·ln2_hi is exact for |n| <= 255 with or without FMA;
// exp(r) = 1 + (q(r)·r² + r), q of degree 4: the degree-6 polynomial with c0 = c1 = 1 closest to
// exp in relative error on [-0.3467, 0.3467] (Remez exchange in double, coefficients rounded to
// f32; approximation error 1.9e-9 = 0.02 ulp). Adding the 1 last makes the final rounding the
// dominant error (0.5 ulp) and keeps exp(0) = 1. Then times 2^n, written into the exponent bits.
// The range masks come last: outside the range the lines before them compute garbage (a wrapped
// exponent, inf or NaN), never a subnormal operand, and the masks replace it.
//
// Measured against std::exp in double, error in units of the last place of the true value, over
// every float in [-104, 88] (2.24e9 values; bench/kernels/cross_entropy_bench --exp-ulp):
// max 1.162 ulp for the x86-64-v4 and v3 clones (GCC contracts multiply-adds into FMAs), 1.131 ulp
// for the SSE2 baseline; never more than one float from the correctly rounded value. The same for
// exp_shifted_f32 with m in {-3.3, 1.75, 11.827, 37.1, 1e4} on every 13th float of x - m. The
// worst cases sit at |r| ≈ ln2/2, where exp(r) ≈ √2 is rounded last after the reduction's and the
// polynomial's roundings. tests/kernels/exp_f32_test.cc asserts kExpF32Ulps = 1.5 on a dense grid.
// Clones differ in last bits (FMA contraction): results are reproducible on one machine for any
// thread count, not across instruction sets.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

// Put on the loops that call exp_f32 / exp_shifted_f32: GCC compiles them three times and the
// loader picks one by the CPU's features, once (function multi-versioning). The build targets
// baseline x86-64, where the vectorised exp is 4 floats wide and compute-bound; the x86-64-v4
// clone (AVX-512, 16 lanes) runs the cross-entropy passes at memory speed (sum_exp at N=2048,
// V=8192, one core: 16.8 ms baseline, 4.4 ms v4; bench/results/2026-11-28_cpu-2core_cross_entropy.md).
// exp_f32 over a 2^14-float array, per element: 0.19 ns v4, 0.26 ns v3 (AVX2 + FMA), 0.74 ns
// baseline, against 1.6 ns for std::exp (2-core Xeon development machine, g++ 12).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OM_ROW_LOOP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OM_ROW_LOOP_CLONES
#endif

namespace om::cpu {

inline constexpr float kExpF32MinArg = -0x1.5d589ep+6f;  // -87.33654: the float just above ln(2^-126)
inline constexpr float kExpF32MaxArg = 88.0f;            // e^88 < FLT_MAX, and n <= 127

// c ? a : b, and keep ? v : +0, as bitwise operations on an all-ones / all-zeros mask. Written
// with ?: on floats, GCC (under the default -ftrapping-math) turns them back into branches around
// copies of the computation of a or v, and then leaves the loop scalar.
[[gnu::always_inline]] inline float select_f32(bool c, float a, float b) {
  const uint32_t mask = c ? ~0u : 0u;
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & mask) | (std::bit_cast<uint32_t>(b) & ~mask));
}
[[gnu::always_inline]] inline float keep_if(bool keep, float v) {
  return std::bit_cast<float>(std::bit_cast<uint32_t>(v) & (keep ? ~0u : 0u));
}

namespace exp_f32_detail {

inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kRound = 12582912.0f;       // 1.5·2^23: s + kRound rounds s to an integer
inline constexpr float kLn2Hi = 0x1.62e4p-1f;       // ln 2 to 15 significant bits
inline constexpr float kLn2Lo = 0x1.7f7d1cf8p-20f;  // ln 2 - kLn2Hi
inline constexpr float kC2 = 4.999999106e-01f, kC3 = 1.666641831e-01f, kC4 = 4.166820645e-02f,
                       kC5 = 8.374985307e-03f, kC6 = 1.383816940e-03f;

// k = s log2 e + kRound, whose bits minus kRound's are n = round(s log2 e).
[[gnu::always_inline]] inline float round_k(float s) { return s * kLog2e + kRound; }

// The reduced argument r = s - n ln2 (Cody-Waite, two steps).
[[gnu::always_inline]] inline float reduce(float s, float k) {
  const float n = k - kRound;
  return (s - n * kLn2Hi) - n * kLn2Lo;
}

// exp(r) 2^n, then the range masks on s.
[[gnu::always_inline]] inline float finish(float s, float k, float r) {
  float q = kC6;
  q = q * r + kC5;
  q = q * r + kC4;
  q = q * r + kC3;
  q = q * r + kC2;
  const float p = 1.0f + (q * (r * r) + r);
  // n + 127 is the biased exponent of 2^n, in [1, 254] inside the range. Unsigned so that negative
  // n wraps instead of overflowing.
  const uint32_t scale_bits = (std::bit_cast<uint32_t>(k) - std::bit_cast<uint32_t>(kRound) + 127u) << 23;
  const float y = p * std::bit_cast<float>(scale_bits);
  return select_f32(s > kExpF32MaxArg, std::numeric_limits<float>::infinity(), keep_if(!(s < kExpF32MinArg), y));
}

}  // namespace exp_f32_detail

// exp(x); the contract and accuracy above.
[[gnu::always_inline]] inline float exp_f32(float x) {
  using namespace exp_f32_detail;
  const float k = round_k(x);
  return finish(x, k, reduce(x, k));
}

// exp(x - m), with x - m = s + err exactly (Knuth's TwoSum) and err added to the reduced argument:
// the shift adds no error, however far apart x and m are. exp_f32(x - m) would carry the rounding
// of x - m, a relative error of up to |x - m|·2^-24 (~40 ulp at x - m = -80).
[[gnu::always_inline]] inline float exp_shifted_f32(float x, float m) {
  using namespace exp_f32_detail;
  const float s = x - m;
  const float sb = s - x;
  const float err = (x - (s - sb)) + (-m - sb);
  const float k = round_k(s);
  return finish(s, k, reduce(s, k) + err);
}

// The exp on its own, for its accuracy test and the bench's full sweep: compiled with
// OM_ROW_LOOP_CLONES like the kernels' loops (kernels/cpu/exp_f32.cc), so that they measure the
// code the kernels run.
enum class ExpShift : uint8_t {
  kRounded,  // y = exp_f32(x - shift), the f32 difference rounded (the attention rows); exp_f32(x) at shift 0
  kExact,    // y = exp_shifted_f32(x, shift) (the cross-entropy rows)
};
struct ExpF32ArrayArgs {
  float* y = nullptr;        // (n)  written (=)
  const float* x = nullptr;  // (n)
  int64_t n = 0;
  float shift = 0.0f;
  ExpShift form = ExpShift::kRounded;
};
void exp_f32_array(const ExpF32ArrayArgs& args);

}  // namespace om::cpu
