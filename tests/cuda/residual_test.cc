// CUDA residual add (kernels/cuda/residual.cu) against the CPU reference on the same inputs: f32
// and bf16, tiny / odd (scalar path) / realistic (128-bit path) shapes of rank 1 to 3, in place
// (out aliasing a or b), a misaligned view, and bitwise determinism on another stream.
// Tolerance: rule 1 (exact). Each element is one f32 addition of two values exact in f32 (a bf16
// value widens exactly), correctly rounded; bf16 then rounds that f32 sum to nearest even, as the
// host's f32 -> bf16 conversion does. So the kernel equals the f32 reference rounded to the dtype
// bit for bit. Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/residual.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(DType act, const Shape& s) {
  return format_message("residual cuda %s %s", std::string(dtype_name(act)).c_str(), s.ToString().c_str());
}

struct Inputs {
  HostTensor a, b;
  Inputs(DType act, const Shape& s, uint64_t seed) : a("a", act, s), b("b", act, s) {
    a.FillNormal(Rng(seed, "residual/a"), 0, 1.0);
    b.FillNormal(Rng(seed, "residual/b"), 0, 1.0);
  }
};

// The f32 reference on the same values, rounded to the activation dtype.
HostTensor reference(const Inputs& in) {
  HostTensor a = in.a.Converted(DType::kF32), b = in.b.Converted(DType::kF32);
  HostTensor out("out", DType::kF32, in.a.shape());
  residual_forward(ExecContext{}, {out.view(), a.view(), b.view()});
  return out.Converted(in.a.dtype());
}

HostTensor cuda_forward(const Inputs& in, Stream stream = {}) {
  DeviceTensor a = DeviceTensor::Upload(in.a), b = DeviceTensor::Upload(in.b);
  HostTensor garbage("out", in.a.dtype(), in.a.shape());
  garbage.Fill(123.0);  // the kernel must overwrite every element
  DeviceTensor out = DeviceTensor::Upload(garbage);
  residual_forward(cuda_ctx(stream), {out.view(), a.view(), b.view()});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return out.Download();
}

TEST(ResidualCuda, MatchesCpuReferenceExactly) {
  // {1}: tiny; {7, 3} and {5, 13, 9}: element counts no pack width divides (scalar path); the rest
  // realistic (B, T, C) / (N, C) activations on the 128-bit path.
  const Shape shapes[] = {Shape{1}, Shape{7, 3}, Shape{5, 13, 9}, Shape{64, 1600}, Shape{4, 256, 768}};
  CheckList results;
  for (DType act : kActDtypes) {
    for (const Shape& s : shapes) {
      const std::string name = case_name(act, s);
      const Inputs in(act, s, 21);
      const HostTensor ref = reference(in);
      const HostTensor got = cuda_forward(in);
      results.push_back(compare_tensors(name, "out vs f32 reference (rounded to the dtype)", got, ref, exact()));
      results.push_back(check_fact(name, "out bitwise equal to the reference", bitwise_equal(got, ref)));
    }
  }
  expect_all_ok(results);
}

TEST(ResidualCuda, InPlaceOnEitherOperand) {
  // x += y with out = a, and with out = b: each thread reads its pack before it writes it.
  CheckList results;
  for (DType act : kActDtypes) {
    for (const Shape& s : {Shape{7, 3}, Shape{64, 768}}) {
      const std::string name = case_name(act, s);
      const Inputs in(act, s, 22);
      const HostTensor ref = reference(in);
      DeviceTensor a = DeviceTensor::Upload(in.a), b = DeviceTensor::Upload(in.b);
      residual_forward(cuda_ctx(), {a.view(), a.view(), b.view()});
      results.push_back(check_fact(name, "out = a in place", bitwise_equal(a.Download(), ref)));
      a.CopyFrom(in.a);
      residual_forward(cuda_ctx(), {b.view(), a.view(), b.view()});
      results.push_back(check_fact(name, "out = b in place", bitwise_equal(b.Download(), ref)));
    }
  }
  expect_all_ok(results);
}

TEST(ResidualCuda, MisalignedViewsTakeTheScalarPathWithTheSameBits) {
  // Views that start one element into their buffers are not 16-byte aligned even though numel is a
  // multiple of every pack width, so the kernel must fall back to scalar loads.
  for (DType act : kActDtypes) {
    const int64_t n = 4096;
    SCOPED_TRACE(case_name(act, Shape{n}));
    const Inputs in(act, Shape{n}, 23);
    const HostTensor ref = reference(in);
    HostTensor pa("a", act, {n + 1}), pb("b", act, {n + 1});
    for (int64_t i = 0; i < n; ++i) {
      pa.set(i + 1, in.a.get(i));
      pb.set(i + 1, in.b.get(i));
    }
    DeviceTensor da = DeviceTensor::Upload(pa), db = DeviceTensor::Upload(pb), dout("out", act, {n + 1});
    const size_t elem = dtype_size(act);
    auto shifted = [&](DeviceTensor& t, const char* name) {
      return make_view(static_cast<char*>(t.view().data) + elem, act, Shape{n}, Device::Cuda(0), name);
    };
    residual_forward(cuda_ctx(), {shifted(dout, "out+1"), shifted(da, "a+1"), shifted(db, "b+1")});
    const HostTensor padded = dout.Download();
    HostTensor got("out", act, {n});
    std::memcpy(got.view().data, static_cast<const char*>(padded.view().data) + elem, n * elem);
    EXPECT_TRUE(bitwise_equal(got, ref));
    EXPECT_EQ(padded.get(0), 0.0) << "the element before the view was written";
  }
}

TEST(ResidualCuda, BitwiseDeterministicOnAnyStream) {
  // A blocking stream, so it is ordered after DeviceTensor's uploads on the legacy default stream.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (DType act : kActDtypes) {
    const Inputs in(act, Shape{1000, 768}, 24);
    EXPECT_TRUE(bitwise_equal(cuda_forward(in), cuda_forward(in, Stream{stream}))) << dtype_name(act);
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(ResidualCudaDeathTest, F64IsNotACudaActivationDtype) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor a("layers.0.residual", DType::kF64, {2, 8}), b("b", DType::kF64, {2, 8}), out("out", DType::kF64, {2, 8});
  EXPECT_DEATH(residual_forward(cuda_ctx(), {out.view(), a.view(), b.view()}),
               "CUDA kernels take bf16 or f32 activations; 'layers.0.residual' is f64");
}

}  // namespace
}  // namespace om
