// Normal draws with the same bits on the CPU and on a GPU, for weight initialisation on the device
// (kernels/normal_init.h). Header-only; host code and CUDA kernels include it.
//
// normal_portable(seed, stream, i) = sqrt(−2·log(u1))·cos(2π·u2) (Box–Muller) on Philox-4x32-10 block i
// of (seed, stream), u1 = 1 − u53(words 0, 1) ∈ (0, 1], u2 = u53(words 2, 3) ∈ [0, 1): the draw of
// Rng::NormalDouble (core/rng.h), with log and cos replaced by the fixed evaluations below. A libm's
// log and cos (glibc, CUDA's) differ by an ulp now and then, which after rounding to f32 would change
// a weight in every ~10⁸; these use only +, −, ·, ÷ and sqrt, each correctly rounded by IEEE 754 on
// both sides and written as __dadd_rn-style intrinsics in device code so that nvcc cannot fuse a
// multiply and an add. Host code: g++ contracts a·b + c into an FMA by default in C++ (even under
// -std=c++20) wherever FMA is available (-mfma, -march=native, a target clone), which changed these
// draws' bits; so each host product passes through `opaque` (an empty asm that holds it in a register),
// after which there is nothing to fuse. Same operations in the same order → the same bits on every
// device and every build.
//   log_unit(u), u ∈ (0, 1]: u = m·2^e with m ∈ [√½, √2) (frexp: exact), s = (m−1)/(m+1),
//     log m = 2·atanh(s) = 2s·Σ_{k≤11} s^{2k}/(2k+1) (|s| ≤ 0.172: the next term is < 2^-58 relative),
//     log u = e·ln2_hi + (e·ln2_lo + log m) with ln2 split (fdlibm) so e·ln2_hi is exact.
//   cos_2pi(u), u ∈ [0, 1) a multiple of 2^-53: t = 4u (exact), n = floor(t + ½), r = t − n ∈ [−½, ½]
//     (exact), a = r·π/2 ∈ [−π/4, π/4], cos(2πu) = cos(a), −sin(a), −cos(a), sin(a) for n mod 4 =
//     0..3, with sin and cos of a by Taylor polynomials to a^17 and a^16 (next terms < 2^-60).
// Accuracy: within a few ulp of the true value (checked against long double in
// tests/core/portable_normal_test.cc); what matters here is that the bits are fixed.
// These draws are NOT Rng::NormalDouble's bits (that one stays on libm: OrthoAdam's rotations, drawn
// again on every resume, must not change); Llama::Initialize draws the weights with these.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/opaque.h"  // also OM_HD

namespace om::portable {

using ::om::opaque;  // core/opaque.h; device code has the _rn intrinsics instead

// Correctly rounded double operations that the compiler may not fuse.
OM_HD inline double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
// In double here; in float also for normal_init's mean + stddev·N (kernels/normal_init.h).
template <typename T>
OM_HD inline T mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(double)) {
    return __dmul_rn(a, b);
  } else {
    return __fmul_rn(a, b);
  }
#else
  return opaque(a * b);
#endif
}
OM_HD inline double div(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
OM_HD inline double sqrt(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// Philox-4x32-10 (Salmon et al., Random123): counter c, key (k0, k1); the multipliers and the Weyl key
// increments are Random123's. core/rng.cc's philox4x32_10 is this function.
struct Words {
  uint32_t w[4];
};
OM_HD inline Words philox(Words c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c.w[0];
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c.w[2];
    c = Words{{static_cast<uint32_t>(p1 >> 32) ^ c.w[1] ^ k0, static_cast<uint32_t>(p1),
               static_cast<uint32_t>(p0 >> 32) ^ c.w[3] ^ k1, static_cast<uint32_t>(p0)}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// Block i of stream `stream` under `seed`, as Rng::Block.
OM_HD inline Words philox_block(uint64_t seed, uint64_t stream, uint64_t i) {
  return philox(Words{{static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(stream),
                       static_cast<uint32_t>(stream >> 32)}},
                static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// 53 random bits as a double in [0, 1): exact (an integer below 2^53 times a power of two).
OM_HD inline double u53(uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((static_cast<uint64_t>(hi) << 21) ^ (lo >> 11)) & ((1ull << 53) - 1);
  return mul(static_cast<double>(bits), 0x1.0p-53);
}

OM_HD inline double frexp(double x, int* e) {
#if defined(__CUDA_ARCH__)
  return ::frexp(x, e);
#else
  return std::frexp(x, e);
#endif
}
OM_HD inline double floor(double x) {
#if defined(__CUDA_ARCH__)
  return ::floor(x);
#else
  return std::floor(x);
#endif
}

// p_0·zⁿ + p_1·zⁿ⁻¹ + ... + p_n by Horner, highest power first: p = p·z + p_k for k = 1..n, each step one
// correctly rounded mul then add (the comma fold runs left to right), so the bits are fixed.
template <typename... P>
OM_HD inline double horner(double z, double p, P... rest) {
  ((p = add(mul(p, z), rest)), ...);
  return p;
}

OM_HD inline double log_unit(double u) {
  int e = 0;
  double m = frexp(u, &e);  // u = m·2^e, m ∈ [½, 1)
  if (m < 0x1.6a09e667f3bcdp-1) {  // √½: move m into [√½, √2)
    m = mul(m, 2.0);               // exact
    e -= 1;
  }
  const double s = div(add(m, -1.0), add(m, 1.0));  // m − 1 is exact (Sterbenz)
  const double z = mul(s, s);
  // 1/23, 1/21, ..., 1/3, 1: the series of atanh(s)/s in z = s²
  const double p = horner(z, 0x1.642c8590b2164p-5, 0x1.8618618618618p-5, 0x1.af286bca1af28p-5, 0x1.e1e1e1e1e1e1ep-5,
                          0x1.1111111111111p-4, 0x1.3b13b13b13b14p-4, 0x1.745d1745d1746p-4, 0x1.c71c71c71c71cp-4,
                          0x1.2492492492492p-3, 0x1.999999999999ap-3, 0x1.5555555555555p-2, 1.0);
  const double log_m = mul(mul(2.0, s), p);
  const double de = static_cast<double>(e);
  return add(mul(de, 0x1.62e42feep-1), add(mul(de, 0x1.a39ef35793c76p-33), log_m));
}

OM_HD inline double cos_2pi(double u) {
  const double t = mul(u, 4.0);           // exact
  const double n = floor(add(t, 0.5));    // rounds only above 4, where the floor is 4 either way
  const double r = add(t, -n);            // exact (a multiple of 2^-51 in [−½, ½])
  const double a = mul(r, 0x1.921fb54442d18p+0);  // r·π/2
  const double z = mul(a, a);
  // −1/18!, 1/16!, ..., −1/2!, 1: cos(a) in z = a²
  const double c = horner(z, -0x1.6827863b97d97p-53, 0x1.ae7f3e733b81fp-45, -0x1.93974a8c07c9dp-37,
                          0x1.1eed8eff8d898p-29, -0x1.27e4fb7789f5cp-22, 0x1.a01a01a01a01ap-16,
                          -0x1.6c16c16c16c17p-10, 0x1.5555555555555p-5, -0.5, 1.0);
  // 1/17!, −1/15!, ..., −1/3!, 1: sin(a)/a in z = a²
  const double s = mul(horner(z, 0x1.952c77030ad4ap-49, -0x1.ae7f3e733b81fp-41, 0x1.6124613a86d09p-33,
                              -0x1.ae64567f544e4p-26, 0x1.71de3a556c734p-19, -0x1.a01a01a01a01ap-13,
                              0x1.1111111111111p-7, -0x1.5555555555555p-3, 1.0),
                       a);
  switch (static_cast<int>(n) & 3) {
    case 0: return c;
    case 1: return -s;
    case 2: return -c;
    default: return s;
  }
}

// N(0, 1), draw i of (seed, stream).
OM_HD inline double normal_portable(uint64_t seed, uint64_t stream, uint64_t i) {
  const Words b = philox_block(seed, stream, i);
  const double u1 = add(1.0, -u53(b.w[0], b.w[1]));  // (0, 1]: exact, log is finite
  const double u2 = u53(b.w[2], b.w[3]);
  return mul(sqrt(mul(-2.0, log_unit(u1))), cos_2pi(u2));
}

}  // namespace om::portable
