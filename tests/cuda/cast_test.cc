// CUDA cast (kernels/cuda/cast.cu) against cpu::cast on the same inputs, both directions: random
// normals over a wide range of exponents, random bit patterns (NaNs with payloads, subnormals,
// infinities included) and hand-picked specials (ties, overflow to inf, signed zeros); every
// sign/exponent/top-mantissa combination with the rounding-critical low halves; sizes 1, 7 (tail
// only) and 1000003 (packed loop plus a tail); misaligned views (the scalar path); same-dtype copies;
// cast_group over every dtype pair, in few launches (counted on the emulator).
// Tolerance: rule 1 (exact, bitwise). Both backends round to nearest even with the same NaN rule
// (kernels/cast.h), so any difference in any bit is a bug. Runs under cuda_test_main (exit 77
// without a GPU).
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "kernels/cast.h"
#include "tests/support/device_tensor.h"
#include "tests/support/host_waits.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

ExecContext cuda_ctx() { return ExecContext{Device::Cuda(0), Stream{}}; }

constexpr int64_t kSizes[] = {1, 7, 1000003};

// Special f32 values placed first (where the size allows): RNE ties both ways, just off a tie, the
// overflow midpoint and past it, ±0, ±inf, subnormals, and NaNs (quiet, signalling, negative,
// payloads in either half). tests/kernels/cast_test.cc derives the expected bf16 of each.
constexpr uint32_t kSpecialF32[] = {
    0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0xbf808000u, 0x7f7f7fffu, 0x7f7f8000u,
    0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u, 0x00000001u,
    0x00008000u, 0x00018000u, 0x007fffffu, 0x807f8000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u,
    0x7fa12345u, 0xfff0000fu, 0x7fffffffu};

// n f32 values: the specials, then alternately random normals scaled by 2^[-140, 124) (normal and
// subnormal magnitudes; |x| < 32 * 2^123 stays finite) and raw random bit patterns (every class).
HostTensor f32_input(int64_t n, uint64_t seed) {
  HostTensor t("in", DType::kF32, {n});
  uint32_t* bits = static_cast<uint32_t*>(t.view().data);
  const Rng rng(seed, "cast/f32");
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k = static_cast<uint64_t>(i);
    if (i < static_cast<int64_t>(std::size(kSpecialF32))) {
      bits[i] = kSpecialF32[i];
    } else if (i % 2 == 0) {
      const int scale = static_cast<int>(rng.Block(k)[0] % 264) - 140;
      t.data<float>()[i] = static_cast<float>(std::ldexp(rng.NormalDouble(k), scale));
    } else {
      bits[i] = rng.Block(k)[1];
    }
  }
  return t;
}

// n bf16 values: raw random bit patterns (NaNs and subnormals included), the first 65536 of a
// large tensor being every pattern in order.
HostTensor bf16_input(int64_t n, uint64_t seed) {
  HostTensor t("in", DType::kBF16, {n});
  uint16_t* bits = static_cast<uint16_t*>(t.view().data);
  const Rng rng(seed, "cast/bf16");
  for (int64_t i = 0; i < n; ++i)
    bits[i] = n >= 65536 && i < 65536 ? static_cast<uint16_t>(i)
                                      : static_cast<uint16_t>(rng.Block(static_cast<uint64_t>(i))[0]);
  return t;
}

HostTensor cpu_cast(const HostTensor& in, DType to) {
  HostTensor out("want", to, in.shape());
  cast(ExecContext{}, {out.view(), in.view()});
  return out;
}

HostTensor gpu_cast(const HostTensor& in, DType to) {
  DeviceTensor din = DeviceTensor::Upload(in);
  HostTensor garbage("got", to, in.shape());
  std::memset(garbage.view().data, 0x5a, garbage.view().nbytes());  // the kernel must write every element
  DeviceTensor dout = DeviceTensor::Upload(garbage);
  cast(cuda_ctx(), {dout.view(), din.view()});
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  return dout.Download();
}

// Index and bits of the first differing element, for the failure message.
std::string first_difference(const HostTensor& got, const HostTensor& want) {
  const size_t elem = dtype_size(got.dtype());
  const char* g = static_cast<const char*>(got.view().data);
  const char* w = static_cast<const char*>(want.view().data);
  for (int64_t i = 0; i < got.numel(); ++i) {
    uint32_t gb = 0, wb = 0;
    std::memcpy(&gb, g + i * elem, elem);
    std::memcpy(&wb, w + i * elem, elem);
    if (gb != wb) return format_message("element %ld: got 0x%x, want 0x%x", static_cast<long>(i), gb, wb);
  }
  return "none";
}

TEST(CastCuda, F32ToBf16BitIdenticalToCpu) {
  for (int64_t n : kSizes) {
    const HostTensor in = f32_input(n, 31);
    const HostTensor got = gpu_cast(in, DType::kBF16), want = cpu_cast(in, DType::kBF16);
    EXPECT_TRUE(bitwise_equal(got, want)) << "n=" << n << ": " << first_difference(got, want);
  }
}

TEST(CastCuda, Bf16ToF32BitIdenticalToCpu) {
  for (int64_t n : kSizes) {
    const HostTensor in = bf16_input(n, 32);
    const HostTensor got = gpu_cast(in, DType::kF32), want = cpu_cast(in, DType::kF32);
    EXPECT_TRUE(bitwise_equal(got, want)) << "n=" << n << ": " << first_difference(got, want);
  }
}

TEST(CastCuda, EveryHighHalfWithTheRoundingCriticalLowHalves) {
  // 65536 high halves x 8 low halves: exact, +1 ulp, just below / at / just past the tie, all ones,
  // and two random ones; __float2bfloat16_rn against core/dtype.h's rounding on every exponent.
  const int64_t n = int64_t{65536} * 8;
  HostTensor in("in", DType::kF32, {n});
  uint32_t* bits = static_cast<uint32_t*>(in.view().data);
  const Rng rng(33, "cast/low_halves");
  for (int64_t hi = 0; hi < 65536; ++hi) {
    const PhiloxBlock r = rng.Block(static_cast<uint64_t>(hi));
    const uint32_t lows[8] = {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu, r[0] & 0xffffu, r[1] & 0xffffu};
    for (int j = 0; j < 8; ++j) bits[hi * 8 + j] = static_cast<uint32_t>(hi) << 16 | lows[j];
  }
  const HostTensor got = gpu_cast(in, DType::kBF16), want = cpu_cast(in, DType::kBF16);
  EXPECT_TRUE(bitwise_equal(got, want)) << first_difference(got, want);
}

TEST(CastCuda, MisalignedViewsTakeTheScalarPathWithTheSameBits) {
  // Views one element into their buffers are not aligned to a pack, so the kernel converts element
  // by element; the result must not change, and the element before the view must stay untouched.
  const int64_t n = 4096;
  const HostTensor in = f32_input(n, 34);
  const HostTensor want = cpu_cast(in, DType::kBF16);
  HostTensor padded_in("in+1", DType::kF32, {n + 1});
  std::memcpy(static_cast<char*>(padded_in.view().data) + 4, in.view().data, in.view().nbytes());
  DeviceTensor din = DeviceTensor::Upload(padded_in), dout("out+1", DType::kBF16, {n + 1});
  const TensorView out_view =
      make_view(static_cast<char*>(dout.view().data) + 2, DType::kBF16, Shape{n}, Device::Cuda(0), "out+1");
  const ConstTensorView in_view =
      make_view(static_cast<const char*>(din.cview().data) + 4, DType::kF32, Shape{n}, Device::Cuda(0), "in+1");
  cast(cuda_ctx(), {out_view, in_view});
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  const HostTensor padded_out = dout.Download();
  HostTensor got("got", DType::kBF16, {n});
  std::memcpy(got.view().data, static_cast<const char*>(padded_out.view().data) + 2, n * 2);
  EXPECT_TRUE(bitwise_equal(got, want)) << first_difference(got, want);
  EXPECT_EQ(static_cast<const uint16_t*>(padded_out.view().data)[0], 0u) << "the element before the view was written";
}

TEST(CastCuda, SameDtypeIsACopy) {
  for (int64_t n : kSizes) {
    const HostTensor f = f32_input(n, 35), b = bf16_input(n, 36);
    EXPECT_TRUE(bitwise_equal(gpu_cast(f, DType::kF32), f)) << "f32 n=" << n;
    EXPECT_TRUE(bitwise_equal(gpu_cast(b, DType::kBF16), b)) << "bf16 n=" << n;
  }
}

TEST(CastCuda, EmptyTensorsLaunchNothing) {
  DeviceTensor in("in", DType::kF32, {0}), out("out", DType::kBF16, {0, 3});
  cast(cuda_ctx(), {out.view(), in.view()});
  OM_CUDA_CHECK(cudaDeviceSynchronize());
}

TEST(CastCuda, GroupedCastsEqualTheCpuEntryByEntryInFewLaunches) {
  // 232 entries of 0..1499 elements: 130 f32 -> bf16 (two launches of at most kCastGroupMax), then
  // bf16 -> f32, f32 copies and bf16 copies in turn (one launch each), two empty ones, and two of
  // kCastGroupOwnLaunch elements (f32 -> bf16 and an f32 copy) that take the single cast's path (one
  // launch each): 7 launches. Every output starts as garbage, so every element must be written.
  struct Pair {
    DType from, to;
  };
  std::vector<Pair> pairs;
  std::vector<int64_t> sizes;
  const Rng rng(37, "cast/group");
  for (int i = 0; i < 230; ++i) {
    const int k = i < 130 ? 0 : 1 + i % 3;
    pairs.push_back(k == 0   ? Pair{DType::kF32, DType::kBF16}
                    : k == 1 ? Pair{DType::kBF16, DType::kF32}
                    : k == 2 ? Pair{DType::kF32, DType::kF32}
                             : Pair{DType::kBF16, DType::kBF16});
    sizes.push_back(i == 3 || i == 150 ? 0 : static_cast<int64_t>(rng.Block(static_cast<uint64_t>(i))[0] % 1500));
  }
  pairs.push_back({DType::kF32, DType::kBF16});
  sizes.push_back(kCastGroupOwnLaunch);
  pairs.push_back({DType::kF32, DType::kF32});
  sizes.push_back(kCastGroupOwnLaunch + 3);
  std::vector<HostTensor> want;
  std::vector<DeviceTensor> din, dout;
  std::vector<CastArgs> list;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const uint64_t seed = 100 + i;
    const HostTensor in = pairs[i].from == DType::kF32 ? f32_input(sizes[i], seed) : bf16_input(sizes[i], seed);
    want.push_back(cpu_cast(in, pairs[i].to));
    HostTensor garbage("got", pairs[i].to, in.shape());
    if (sizes[i] > 0) std::memset(garbage.view().data, 0x5a, garbage.view().nbytes());  // none to set when empty
    din.push_back(DeviceTensor::Upload(in));
    dout.push_back(DeviceTensor::Upload(garbage));
  }
  for (size_t i = 0; i < pairs.size(); ++i) list.push_back({dout[i].view(), din[i].cview()});
  const int64_t before = emu_counts_now().device_launches;
  cast_group(cuda_ctx(), list);
  const int64_t after = emu_counts_now().device_launches;
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const HostTensor got = dout[i].Download();
    EXPECT_TRUE(bitwise_equal(got, want[i])) << "entry " << i << " (" << sizes[i] << " elements, "
                                              << dtype_name(pairs[i].from) << " -> " << dtype_name(pairs[i].to)
                                              << "): " << first_difference(got, want[i]);
  }
  if (before >= 0) {  // the emulator counts launches (tests/support/host_waits.h)
    EXPECT_EQ(after - before, 7) << "cast_group launches";
  }
}

TEST(CastCudaDeathTest, F64IsNotACudaDtype) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor in("master.f64", DType::kF64, {4}), out("out", DType::kF64, {4});
  EXPECT_DEATH(cast(cuda_ctx(), {out.view(), in.view()}), "cast: no CUDA conversion from f64 \\('master.f64'");
}

}  // namespace
}  // namespace om
