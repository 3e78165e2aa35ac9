// Weight initialisation on the tensor's own device: rows of Gaussian draws from a counter-based
// stream, so a GPU fills its weights without a host loop and a copy (issue 11: time to first step),
// with the CPU's bits (core/portable_normal.h).
//   out[r, c] = mean + stddev · N(first + r·row_stride + c),  N = portable::normal_portable(seed, stream, ·)
// computed as: f64: in double; f32: float(N), then mean + float(stddev)·that in f32 (no fused multiply-add);
// bf16: the f32 value rounded to nearest even (core/dtype.h float_to_bf16_bits). Element-wise, so the
// bits do not depend on the thread count, the launch shape or the device: the CPU reference and the CUDA
// kernel agree exactly (tests/kernels/normal_init_test.cc, tests/cuda/normal_init_test.cc).
// Llama::Initialize calls it once per logical block of a parameter (model/llama.cc): `first` is the
// block's logical row offset · logical columns + its column offset, `row_stride` the logical columns,
// so a rank draws exactly the indices it holds (layout invariance, DESIGN.md invariant 3).
// REQUIRES: out contiguous (R, C), f64, f32 or bf16 on the CPU, f32 or bf16 on CUDA; row_stride >= C.
// Stream-ordered on CUDA (ExecContext::stream), synchronous on the CPU.
#pragma once

#include <cstdint>

#include "kernels/common.h"

namespace om {

struct NormalInitArgs {
  TensorView out;           // (R, C) contiguous; written (=)
  uint64_t seed = 0;        // Rng::seed()
  uint64_t stream = 0;      // Rng::stream() (rng_stream_id of the stream's name)
  uint64_t first = 0;       // draw index of out[0, 0]
  int64_t row_stride = 0;   // draw index step from one row to the next (>= C)
  double mean = 0.0;
  double stddev = 1.0;
};

void normal_init(const ExecContext& ctx, const NormalInitArgs& args);

namespace cpu {
// OpenMP over rows.
void normal_init(const NormalInitArgs& args);
}  // namespace cpu

namespace cuda {
// One thread per element (grid-stride), kernels/cuda/normal_init.cu.
void normal_init(const NormalInitArgs& args, Stream stream);
}  // namespace cuda

}  // namespace om
