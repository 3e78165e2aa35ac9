// CUDA vocab-parallel embedding (kernels/cuda/embedding.cu) against the CPU reference on the same
// inputs: forward (f32 and bf16 tables) and backward (f32 and bf16 dout into the f32 gradient
// buffer) for tiny / odd / realistic shapes and shards, ids outside the shard (negative, >= V,
// INT32_MIN/MAX, another shard's), a skewed id distribution whose most frequent token spans several
// 256-row chunks of the segment sum, accumulation into a nonzero gradient, bitwise determinism on
// another stream, and the CUDA dtype contract (f32 dweight).
// Tolerance: rule 1 (exact) throughout, by construction:
//   forward   a row copy or a zero row, on both sides;
//   backward  the kernel sums each row's dout rows in increasing n in double and adds the sum to
//             the f32 dweight once, rounding once: cpu::embedding_backward's arithmetic in f32,
//             with the same values (bf16 dout widens exactly to f32 and to double).
// Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "core/cuda_check.h"
#include "kernels/check/gradcheck.h"
#include "kernels/embedding.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct EmbeddingCase {
  int64_t N, V, Vl, vocab_start, C;
  double skew;  // ids = floor(V u^skew), u uniform in [0, 1): 1 is uniform, > 1 favours small ids
};
constexpr EmbeddingCase kCases[] = {
    {1, 1, 1, 0, 1, 1.0},                  // tiny
    {37, 26, 13, 13, 33, 1.0},             // odd: the second of two shards, C not a multiple of 8
    {1000, 50, 50, 0, 300, 10.0},          // id 0 is ~60% of the tokens: a segment of three 256-row
                                           // chunks; C = 300 leaves the second column tile partial
    {4096, 32000, 16000, 0, 768, 4.0},     // realistic: tp = 2 shard 0 of a 32k vocabulary, Zipf-like
    {4096, 32000, 16000, 16000, 768, 1.0}  // realistic: shard 1, uniform ids
};
constexpr DType kActDtypes[] = {DType::kF32, DType::kBF16};
ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(const char* dir, DType act, const EmbeddingCase& c) {
  return format_message("embedding_%s cuda %s N=%ld V=%ld Vl=%ld start=%ld C=%ld", dir,
                        std::string(dtype_name(act)).c_str(), static_cast<long>(c.N), static_cast<long>(c.V),
                        static_cast<long>(c.Vl), static_cast<long>(c.vocab_start), static_cast<long>(c.C));
}

// Ids drawn as kCases says, except every 10th token, which cycles through ids outside this shard:
// outside the vocabulary (negative, >= V, INT32_MIN, INT32_MAX) and just outside the shard's range.
HostTensor make_ids(const EmbeddingCase& c, uint64_t seed) {
  const int64_t outside[] = {-1, c.V, c.V + 3, -4, INT32_MIN, INT32_MAX, c.vocab_start - 1, c.vocab_start + c.Vl};
  constexpr int64_t kOutside = sizeof(outside) / sizeof(outside[0]);
  HostTensor ids("batch.tokens", DType::kI32, {c.N});
  const Rng rng(seed, "embedding/ids");
  int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < c.N; ++n) {
    const double u = rng.UniformDouble(static_cast<uint64_t>(n));
    p[n] = n % 10 == 9 ? static_cast<int32_t>(outside[(n / 10) % kOutside])
                       : static_cast<int32_t>(std::floor(static_cast<double>(c.V) * std::pow(u, c.skew)));
  }
  return ids;
}

TEST(EmbeddingCuda, ForwardMatchesCpuReferenceExactly) {
  CheckList results;
  for (DType act : kActDtypes) {
    for (const EmbeddingCase& c : kCases) {
      const std::string name = case_name("forward", act, c);
      const HostTensor ids = make_ids(c, 51);
      HostTensor w("embed.weight", act, {c.Vl, c.C});
      w.FillNormal(Rng(51, "embedding/w"), 0, 1.0);
      // Reference: the f32 CPU op on the same values, rounded back to the dtype (a copy: exact).
      const HostTensor w32 = w.Converted(DType::kF32);
      HostTensor ref32("out", DType::kF32, {c.N, c.C});
      embedding_forward(ExecContext{}, {ref32.view(), ids.view(), w32.view(), c.vocab_start});
      const HostTensor ref = ref32.Converted(act);
      HostTensor garbage("out", act, {c.N, c.C});
      garbage.Fill(123.0);  // zero rows must be written, not assumed
      DeviceTensor dids = DeviceTensor::Upload(ids), dw = DeviceTensor::Upload(w), dout = DeviceTensor::Upload(garbage);
      embedding_forward(cuda_ctx(), {dout.view(), dids.view(), dw.view(), c.vocab_start});
      const HostTensor got = dout.Download();
      results.push_back(compare_tensors(name, "out vs reference", got, ref, exact()));
      results.push_back(check_fact(name, "out bitwise equal to the reference", bitwise_equal(got, ref)));
    }
  }
  expect_all_ok(results);
}

struct BackwardInputs {
  HostTensor ids, dout, dweight_init;
  BackwardInputs(DType act, const EmbeddingCase& c, uint64_t seed)
      : ids(make_ids(c, seed)), dout("dout", act, {c.N, c.C}), dweight_init("embed.weight.grad", DType::kF32, {c.Vl, c.C}) {
    dout.FillNormal(Rng(seed, "embedding/dout"), 0, 1.0);
    // An earlier micro-batch's gradient, which += must keep (rows without tokens: bit for bit).
    dweight_init.FillNormal(Rng(seed, "embedding/dweight"), 0, 1.0);
  }
};

HostTensor cpu_backward(const BackwardInputs& in, const EmbeddingCase& c) {
  HostTensor dw = in.dweight_init.Clone("dweight");
  const HostTensor dy = in.dout.Converted(DType::kF32);
  embedding_backward(ExecContext{}, {dw.view(), dy.view(), in.ids.view(), c.vocab_start});
  return dw;
}

HostTensor cuda_backward(const BackwardInputs& in, const EmbeddingCase& c, Stream stream = {}) {
  DeviceTensor ids = DeviceTensor::Upload(in.ids), dy = DeviceTensor::Upload(in.dout),
               dw = DeviceTensor::Upload(in.dweight_init);
  embedding_backward(cuda_ctx(stream), {dw.view(), dy.view(), ids.view(), c.vocab_start});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  return dw.Download();
}

TEST(EmbeddingCuda, BackwardAccumulatesExactlyAsTheCpuReference) {
  CheckList results;
  for (DType act : kActDtypes) {
    for (const EmbeddingCase& c : kCases) {
      const std::string name = case_name("backward", act, c);
      const BackwardInputs in(act, c, 52);
      const HostTensor ref = cpu_backward(in, c);
      const HostTensor got = cuda_backward(in, c);
      results.push_back(compare_tensors(name, "dweight (+= onto random) vs f32 reference", got, ref, exact()));
      results.push_back(check_fact(name, "dweight bitwise equal to the reference", bitwise_equal(got, ref)));
    }
  }
  expect_all_ok(results);
}

TEST(EmbeddingCuda, OneLongSegmentCountsEveryRow) {
  // Every token is id 7: one 1000-row segment, staged in four chunks of 256 rows. Small-integer
  // values make the sums exact (rule 1): dweight[7, c] = 1000 (1 + c), every other row stays 0.
  const int64_t N = 1000, C = 3;
  HostTensor ids("ids", DType::kI32, {N}), dout("dout", DType::kF32, {N, C});
  for (int64_t n = 0; n < N; ++n) ids.data<int32_t>()[n] = 7;
  for (int64_t i = 0; i < N * C; ++i) dout.set(i, 1.0 + static_cast<double>(i % C));
  DeviceTensor dids = DeviceTensor::Upload(ids), ddy = DeviceTensor::Upload(dout), dw("dweight", DType::kF32, {10, C});
  embedding_backward(cuda_ctx(), {dw.view(), ddy.view(), dids.view(), 0});
  const HostTensor got = dw.Download();
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t c = 0; c < C; ++c)
      EXPECT_EQ(got.get(r * C + c), r == 7 ? static_cast<double>(N) * (1.0 + static_cast<double>(c)) : 0.0)
          << "dweight[" << r << ", " << c << "]";
}

TEST(EmbeddingCuda, BackwardBitwiseDeterministicOnAnyStream) {
  // A blocking stream, so it is ordered after DeviceTensor's uploads on the legacy default stream.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  const EmbeddingCase c{16384, 32000, 32000, 0, 768, 4.0};
  for (DType act : kActDtypes) {
    const BackwardInputs in(act, c, 53);
    const HostTensor a = cuda_backward(in, c), b = cuda_backward(in, c, Stream{stream});
    EXPECT_TRUE(bitwise_equal(a, b)) << dtype_name(act);
    EXPECT_FALSE(bitwise_equal(a, in.dweight_init)) << "the gradient was not accumulated";
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(EmbeddingCudaDeathTest, WeightGradientMustBeF32) {
  // On CUDA the gradient buffer is f32 whatever dout is (kernels/embedding.h, DESIGN.md "Precision").
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor ids("ids", DType::kI32, {4}), dout("dout", DType::kBF16, {4, 8}),
      dw("embed.weight.grad", DType::kBF16, {10, 8});
  EXPECT_DEATH(embedding_backward(cuda_ctx(), {dw.view(), dout.view(), ids.view(), 0}),
               "'embed.weight.grad' is bf16 but expected f32");
}

}  // namespace
}  // namespace om
