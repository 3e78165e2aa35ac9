// CUDA sum of squares (kernels/cuda/sum_squares.cu) against the CPU reference on the same values:
// f32 and bf16 x; tiny (tail only), odd (packs plus a tail, several blocks) and realistic sizes (the
// full 1024-block grid looping); accumulation into a nonzero out; bitwise determinism on another
// stream and for a misaligned copy of x; an empty x.
// Tolerances (kernels/check/tolerance.h):
//   rule 1 (exact) for small-integer x: every square and every partial sum is an integer below
//          2^53, so both sides are exact whatever their order;
//   rule 2 for normal x: both sides form each square exactly in double (an f32 significand squared
//          fits in 53 bits) and add n terms in some order, each within gamma_n * sum x^2 of the
//          exact sum, so |cuda - cpu| <= 2 n eps64 sum x^2: for_reduction(f64, 2 n, sum x^2).
// Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/sum_squares.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// 1 and 7: below one pack (tail only); 1000003: packs, a tail and ~250-1000 blocks; 4096 x 768 and
// 5,000,000: more packs than the 1024-block grid has threads, so threads loop.
const Shape kShapes[] = {Shape{1}, Shape{7}, Shape{1000003}, Shape{4096, 768}, Shape{5000000}};
constexpr DType kDtypes[] = {DType::kF32, DType::kBF16};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(DType dtype, const Shape& s) {
  return format_message("sum_squares cuda %s %s", std::string(dtype_name(dtype)).c_str(), s.ToString().c_str());
}

HostTensor scalar(double v) {
  HostTensor t("grad_norm.sum_sq", DType::kF64, {1});
  t.set(0, v);
  return t;
}

double cpu_sum_squares(const HostTensor& x, double init) {
  HostTensor out = scalar(init);
  const HostTensor x32 = x.Converted(DType::kF32);  // exact for bf16 values
  sum_squares(ExecContext{}, {out.view(), x32.view()});
  return out.get(0);
}

// out = init, then out += sum x^2 on the GPU, on `stream`.
double cuda_sum_squares(const DeviceTensor& x, double init, Stream stream = {}) {
  DeviceTensor out = DeviceTensor::Upload(scalar(init));
  sum_squares(cuda_ctx(stream), {out.view(), x.view()});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return out.Download().get(0);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

TEST(SumSquaresCuda, SmallIntegersAreExact) {
  CheckList results;
  for (DType dtype : kDtypes) {
    for (const Shape& s : kShapes) {
      const std::string name = case_name(dtype, s);
      HostTensor x("x", dtype, s);
      x.FillUniform(Rng(61, "sum_squares/x"), 0, -15.5, 15.5);
      for (int64_t i = 0; i < x.numel(); ++i) x.set(i, std::round(x.get(i)));  // integers in [-16, 16]
      // At most 5e6 * 256 = 1.3e9 < 2^53; the 0.25 start keeps every sum exact too.
      const double ref = cpu_sum_squares(x, 0.25);
      const double got = cuda_sum_squares(DeviceTensor::Upload(x), 0.25);
      results.push_back(check_fact(name, "0.25 + sum x^2 exact (integer x)", got == ref,
                                   format_message("got %.17g, want %.17g", got, ref)));
    }
  }
  expect_all_ok(results);
}

TEST(SumSquaresCuda, NormalValuesMatchCpuReference) {
  CheckList results;
  for (DType dtype : kDtypes) {
    for (const Shape& s : kShapes) {
      const std::string name = case_name(dtype, s);
      HostTensor x("x", dtype, s);
      x.FillNormal(Rng(62, "sum_squares/x"), 0, 1.0);
      const double ref = cpu_sum_squares(x, 0.0);
      const double got = cuda_sum_squares(DeviceTensor::Upload(x), 0.0);
      HostTensor got_t = scalar(got), ref_t = scalar(ref);
      results.push_back(compare_tensors(name, "sum x^2 vs f64-accumulated reference", got_t, ref_t,
                                        for_reduction(DType::kF64, 2 * x.numel(), ref)));
    }
  }
  expect_all_ok(results);
}

TEST(SumSquaresCuda, AccumulatesIntoOut) {
  // out += s: starting from 0 gives s, from 0.5 exactly 0.5 + s (one f64 addition of the same s).
  for (DType dtype : kDtypes) {
    for (const Shape& s : {Shape{7}, Shape{1000003}}) {  // one block (direct +=) and two passes
      SCOPED_TRACE(case_name(dtype, s));
      HostTensor x("x", dtype, s);
      x.FillNormal(Rng(63, "sum_squares/x"), 0, 1.0);
      const DeviceTensor dx = DeviceTensor::Upload(x);
      const double from_zero = cuda_sum_squares(dx, 0.0);
      EXPECT_GT(from_zero, 0.0);
      EXPECT_TRUE(same_bits(cuda_sum_squares(dx, 0.5), 0.5 + from_zero));
    }
  }
}

TEST(SumSquaresCuda, BitwiseDeterministicOnAnyStreamAndAlignment) {
  // The summation order depends on numel only: a second run, a run on another (blocking) stream and
  // a run on a copy of x that starts one element past a 16-byte boundary (scalar loads) give the same
  // bits.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (DType dtype : kDtypes) {
    const int64_t n = 3000007;
    SCOPED_TRACE(case_name(dtype, Shape{n}));
    HostTensor x("x", dtype, {n});
    x.FillNormal(Rng(64, "sum_squares/x"), 0, 1.0);
    const DeviceTensor dx = DeviceTensor::Upload(x);
    const double first = cuda_sum_squares(dx, 0.0);
    EXPECT_TRUE(same_bits(first, cuda_sum_squares(dx, 0.0)));
    EXPECT_TRUE(same_bits(first, cuda_sum_squares(dx, 0.0, Stream{stream})));

    HostTensor padded("x", dtype, {n + 8});
    const size_t elem = dtype_size(dtype);  // x starts one element (2 or 4 bytes) into the buffer
    std::memcpy(static_cast<char*>(padded.view().data) + elem, x.view().data, n * elem);
    DeviceTensor dpadded = DeviceTensor::Upload(padded), out = DeviceTensor::Upload(scalar(0.0));
    const ConstTensorView shifted =
        make_view(static_cast<const char*>(dpadded.view().data) + elem, dtype, Shape{n}, Device::Cuda(0), "x+1");
    sum_squares(cuda_ctx(), {out.view(), shifted});
    EXPECT_TRUE(same_bits(first, out.Download().get(0))) << "misaligned copy";
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(SumSquaresCuda, EmptyTensorAddsNothing) {
  DeviceTensor out = DeviceTensor::Upload(scalar(0.5));
  const ConstTensorView empty = make_view(static_cast<const void*>(nullptr), DType::kF32, Shape{0}, Device::Cuda(0), "x");
  sum_squares(cuda_ctx(), {out.view(), empty});
  EXPECT_EQ(out.Download().get(0), 0.5);
}

}  // namespace
}  // namespace om
