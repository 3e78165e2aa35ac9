// CUDA rotary position embedding (kernels/cuda/rope.cu) against the CPU reference on the same
// inputs: forward and backward (both in place), f32 and bf16, tiny / odd / realistic shapes, no
// rotated heads and all heads rotated, Llama-3's theta, a wide head; heads >= n_rot_heads untouched bit
// for bit; bitwise determinism on another stream; the same bits from the 128-bit and the element loads.
// Tolerances (kernels/check/tolerance.h): rule 3 for bf16; rule 2 for f32, derived here. Kernel and
// reference both compute freq_i, the angle t freq_i, its cos and sin and the rotation
// x0 c -+ x1 s in double. Their double results differ by at most a few eps64 relative to
// |x0| + |x1| per step (pow, sin, cos within 2 ulp; the angle t freq_i loses up to 3 eps64 t
// absolute; 4 roundings in the rotation): with t < 2048 that is < 1e4 eps64 ~ 2e-12, below
// eps32 ~ 1.2e-7 by five orders. The kernel then rounds once to f32 (eps32/2 relative, inside
// rtol = kElementwiseUlps eps32). So rule 2 for a 2-term sum with abs_sum = max |x0| + |x1| bounds
// the difference with a wide margin. Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/buffer.h"
#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/rope.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct RopeCase {
  int64_t B, T, Hx, D, n_rot;
  float theta;
};
constexpr RopeCase kCases[] = {
    {1, 3, 1, 2, 1, 10000.0f},         // tiny: one pair per row
    {3, 5, 3, 6, 2, 10000.0f},         // odd: D/2 = 3, B not a multiple of the block's batch rows
    {5, 7, 4, 8, 0, 10000.0f},         // no rotated heads: a no-op
    {5, 7, 4, 8, 4, 10000.0f},         // every head rotated
    {2, 256, 36, 64, 24, 10000.0f},    // Llama-130M fused qkv: 3H = 36 heads of D = 64, q and k rotated
    {1, 2048, 3, 128, 2, 500000.0f},   // long positions, D = 128, Llama-3's theta
    {1, 4, 2, 6160, 1, 10000.0f},      // D = 6160: wider than the 48 KiB per-block table of the kernel before
};
// Pack widths (kernels/cuda/rope.cu): D/2 = 1 and 3 take one pair per thread in both dtypes; D/2 = 4 packs f32
// (4 pairs) but not bf16; D/2 = 32, 64 and 3080 pack both (8 bf16 pairs).
constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};
enum class Direction { kForward, kBackward };
constexpr Direction kDirections[] = {Direction::kForward, Direction::kBackward};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(Direction dir, DType act, const RopeCase& c) {
  return format_message("rope_%s cuda %s B=%ld T=%ld Hx=%ld D=%ld n_rot=%ld theta=%g",
                        dir == Direction::kForward ? "forward" : "backward", std::string(dtype_name(act)).c_str(),
                        static_cast<long>(c.B), static_cast<long>(c.T), static_cast<long>(c.Hx), static_cast<long>(c.D),
                        static_cast<long>(c.n_rot), static_cast<double>(c.theta));
}

HostTensor make_input(DType act, const RopeCase& c, uint64_t seed) {
  HostTensor x("qkv", act, {c.B, c.T, c.Hx, c.D});
  x.FillNormal(Rng(seed, "rope/x"), 0, 1.0);
  return x;
}

void apply(const ExecContext& ctx, Direction dir, const RopeArgs& args) {
  if (dir == Direction::kForward) {
    rope_forward(ctx, args);
  } else {
    rope_backward(ctx, args);
  }
}

// The CPU reference in `dtype` (f32 or f64) on x's values.
HostTensor cpu_rope(const HostTensor& x, Direction dir, const RopeCase& c, DType dtype) {
  HostTensor y = x.Converted(dtype);
  apply(ExecContext{}, dir, {y.view(), c.n_rot, c.theta});
  return y;
}

HostTensor cuda_rope(const HostTensor& x, Direction dir, const RopeCase& c, Stream stream = {}) {
  DeviceTensor y = DeviceTensor::Upload(x);
  apply(cuda_ctx(stream), dir, {y.view(), c.n_rot, c.theta});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return y.Download();
}

// max over rotated pairs of |x[i]| + |x[i + D/2]|: the abs_sum of each output's 2-term sum.
double max_pair_abs(const HostTensor& x, const RopeCase& c) {
  const int64_t half = c.D / 2;
  double worst = 0.0;
  for (int64_t row = 0; row < c.B * c.T; ++row)
    for (int64_t h = 0; h < c.n_rot; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const int64_t at = (row * c.Hx + h) * c.D + i;
        worst = std::max(worst, std::fabs(x.get(at)) + std::fabs(x.get(at + half)));
      }
  return worst;
}

// True when every element of heads >= n_rot is bit-identical in `got` and `x` (same dtype).
bool unrotated_heads_untouched(const HostTensor& got, const HostTensor& x, const RopeCase& c) {
  const size_t head_bytes = static_cast<size_t>(c.D) * dtype_size(x.dtype());
  const char* g = static_cast<const char*>(got.view().data);
  const char* w = static_cast<const char*>(x.view().data);
  for (int64_t row = 0; row < c.B * c.T; ++row)
    for (int64_t h = c.n_rot; h < c.Hx; ++h) {
      const size_t at = static_cast<size_t>(row * c.Hx + h) * head_bytes;
      if (std::memcmp(g + at, w + at, head_bytes) != 0) return false;
    }
  return true;
}

TEST(RopeCuda, MatchesCpuReference) {
  CheckList results;
  for (Direction dir : kDirections) {
    for (DType act : kActDtypes) {
      for (const RopeCase& c : kCases) {
        const std::string name = case_name(dir, act, c);
        const HostTensor x = make_input(act, c, 41);
        const HostTensor ref = cpu_rope(x, dir, c, DType::kF64);
        const HostTensor got = cuda_rope(x, dir, c);
        if (act == DType::kF32) {
          results.push_back(compare_tensors(name, "x vs f64 reference", got, ref,
                                            for_reduction(DType::kF32, 2, max_pair_abs(x, c))));
        } else {
          // Rule 3: naive = the f32 CPU reference on the same bf16 values, rounded to bf16.
          const HostTensor naive = cpu_rope(x, dir, c, DType::kF32).Converted(DType::kBF16);
          results.push_back(compare_tensors(name, "x vs f64 reference", got, ref,
                                            for_naive_reference(max_abs_diff(naive, ref))));
        }
        results.push_back(
            check_fact(name, "heads >= n_rot_heads bit-identical to the input", unrotated_heads_untouched(got, x, c)));
      }
    }
  }
  expect_all_ok(results);
}

TEST(RopeCuda, BackwardUndoesForward) {
  // R(t)^T R(t) = I: forward then backward returns x up to two f32 roundings of each element
  // (rule 2 as above, twice: a 4-term budget over abs_sum = max |x0| + |x1|).
  const RopeCase c{2, 256, 36, 64, 24, 10000.0f};
  const HostTensor x = make_input(DType::kF32, c, 42);
  DeviceTensor y = DeviceTensor::Upload(x);
  rope_forward(cuda_ctx(), {y.view(), c.n_rot, c.theta});
  rope_backward(cuda_ctx(), {y.view(), c.n_rot, c.theta});
  expect_all_ok({compare_tensors(case_name(Direction::kBackward, DType::kF32, c), "R^T R x vs x", y.Download(), x,
                                 for_reduction(DType::kF32, 4, max_pair_abs(x, c)))});
}

TEST(RopeCuda, BitwiseDeterministicOnAnyStream) {
  // A blocking stream, so it is ordered after DeviceTensor's uploads on the legacy default stream.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  const RopeCase c{8, 256, 36, 64, 24, 10000.0f};
  for (DType act : kActDtypes) {
    for (Direction dir : kDirections) {
      const HostTensor x = make_input(act, c, 43);
      EXPECT_TRUE(bitwise_equal(cuda_rope(x, dir, c), cuda_rope(x, dir, c, Stream{stream})))
          << case_name(dir, act, c);
    }
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(RopeCuda, ResultsDoNotDependOnAlignment) {
  // The 128-bit loads (x 16-byte aligned) and the element loads (x one element off) rotate the same values
  // with the same arithmetic: the same bits.
  const RopeCase c{3, 16, 6, 64, 4, 10000.0f};
  for (DType act : kActDtypes) {
    for (Direction dir : kDirections) {
      const HostTensor x = make_input(act, c, 44);
      DeviceTensor y = DeviceTensor::UploadMisaligned(x);
      apply(cuda_ctx(), dir, {y.view(), c.n_rot, c.theta});
      const HostTensor got = y.Download();
      EXPECT_TRUE(bitwise_equal(got, cuda_rope(x, dir, c))) << case_name(dir, act, c);
      EXPECT_FALSE(bitwise_equal(got, x)) << "nothing was rotated";
    }
  }
}

TEST(RopeCuda, CapturedIntoAGraphBeforeAnyEagerCall) {
  // The cos/sin table is made once per process, outside any CUDA graph capture; a capture that meets a
  // (T, D, theta) with no table yet writes its own inside the graph (kernels/cuda/rope.cuh). Both give the
  // eager bits. This theta is the test's own, so no earlier test made its table: f32 captures the fallback,
  // then the eager reference makes the table and bf16 captures with it.
  const RopeCase c{2, 9, 3, 16, 2, 4321.0f};
  for (DType act : kActDtypes) {
    SCOPED_TRACE(case_name(Direction::kForward, act, c));
    const HostTensor x = make_input(act, c, 45);
    DeviceTensor y = DeviceTensor::Upload(x);
    OM_CUDA_CHECK(cudaDeviceSynchronize());  // the upload has landed before the non-blocking stream reads it
    void* stream = device_memory::cuda_stream_create(0);
    device_memory::cuda_graph_begin_capture(stream);
    rope_forward(cuda_ctx(Stream{stream}), {y.view(), c.n_rot, c.theta});
    std::string error;
    void* exec = device_memory::cuda_graph_end_capture(stream, &error);
    ASSERT_NE(exec, nullptr) << error;
    device_memory::cuda_graph_launch(exec, stream);
    device_memory::cuda_stream_synchronize(0, stream);
    EXPECT_TRUE(bitwise_equal(y.Download(), cuda_rope(x, Direction::kForward, c)));
    device_memory::cuda_graph_destroy(exec);
    device_memory::cuda_stream_destroy(stream);
  }
}

}  // namespace
}  // namespace om
