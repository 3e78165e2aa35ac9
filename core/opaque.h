// opaque(x): x, unchanged, hidden from the host compiler's optimiser (an empty asm that holds it in a
// register), so a product passed through it cannot be fused into the add that follows. g++ contracts
// a·b + c into an FMA by default in C++ (even under -std=c++20) wherever FMA is available (-mfma,
// -march=native, a target clone); code that promises the bits of an unfused computation — the same
// bits on every build, or the same as another kernel's separate add — passes the product through it.
// It costs a register move at most, but an asm in a loop stops the auto-vectoriser: keep it off hot
// f32 loops that need no such promise. Device code: the _rn intrinsics (__fmul_rn, __dadd_rn) instead.
#pragma once

#if defined(__CUDACC__)
#define OM_HD __host__ __device__
#else
#define OM_HD
#endif

namespace om {

template <typename T>
OM_HD inline T opaque(T x) {
#if !defined(__CUDA_ARCH__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(x));
#elif !defined(__CUDA_ARCH__) && defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(x));
#endif
  return x;
}

}  // namespace om
