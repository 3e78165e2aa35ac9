// RoPE's arithmetic (kernels/rope.h) as device functions, shared by kernels/cuda/rope.cu and the rotation
// fused into the tensor-core attention backward (kernels/cuda/attention_mma.cu), so that the two give the
// same bits. Internal to kernels/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/buffer.h"

namespace om::cuda {

// c = cos(t·freq_i), s = sin(t·freq_i) with freq_i = theta^(-2i/D), all in double (CUDA's pow and sincos,
// <= 2 ulp of double), as the CPU reference's RotationTable.
__device__ __forceinline__ void rope_cos_sin(int64_t t, int i, int D, double theta, double& c, double& s) {
  const double freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D));
  const double angle = static_cast<double>(t) * freq;
  sincos(angle, &s, &c);
}

// The pair (x0, x1) = (x[i], x[i + D/2]) rotated by the angle with cosine c and sine sn (sn = −sin for the
// backward's R(t)ᵀ): y0 = x0·c − x1·sn, y1 = x1·c + x0·sn, through __dmul_rn/__dadd_rn so that nvcc
// contracts nothing into FMAs (the CPU reference's roundings).
__device__ __forceinline__ void rope_rotate(double x0, double x1, double c, double sn, double& y0, double& y1) {
  y0 = __dadd_rn(__dmul_rn(x0, c), -__dmul_rn(x1, sn));
  y1 = __dadd_rn(__dmul_rn(x1, c), __dmul_rn(x0, sn));
}

// cos_sin[2·(t·D/2 + i)] = cos(t·freq_i) and [+ 1] = sin(t·freq_i) for t < T, i < D/2 (rope_cos_sin),
// written by one launch on `stream`; T·D doubles. For kernels that rotate inside their own loads or
// stores. REQUIRES: D even, T·D/2 < 2^31.
void rope_cos_sin_table(double* cos_sin, int64_t T, int D, double theta, cudaStream_t stream);

// The same table for (the current device, T, D, theta), made on first use and kept for the process: RoPE's
// forward and the attention backward read it every layer of every step. The first use writes it on `stream`
// and waits for it, so that any stream may read it afterwards. Never freed (the CUDA runtime may be gone when
// static destructors run; T·D doubles each: 128 KiB for T = 256, D = 64). While `stream` is being captured
// into a CUDA graph and the table is not made yet (a capture may not allocate or wait), the table is written
// into `*scratch` instead: stream-ordered scratch on `device`, which the caller keeps until its kernels are
// issued. Thread-safe.
const double* rope_cos_sin_table_cached(int64_t T, int D, double theta, Device device, Stream stream,
                                        Buffer* scratch);

}  // namespace om::cuda
