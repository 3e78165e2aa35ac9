// CUDA normal_init (kernels/cuda/normal_init.cu) against the CPU reference: the same bits (rule 1:
// exact), f32 and bf16, for whole-row blocks, a tp rank's column slice (row_stride > C), indices past
// 2^32, a size no block divides, and a grid-stride case (more elements than the grid's threads), plus
// the pinned draws of tests/core/portable_normal_test.cc read back from the device.
// Why exact: the kernel evaluates core/portable_normal.h with correctly rounded double operations
// written as _rn intrinsics (nothing fused), converts with cvt.rn like the host's static_cast, and
// does the f32 scale with __fmul_rn/__fadd_rn; the CPU reference does the same operations in the
// same order (x86-64 SSE2, no contraction). Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <cstring>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "kernels/normal_init.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Case {
  int64_t rows, cols, row_stride;
  uint64_t first;
};

TEST(NormalInitCuda, MatchesTheCpuReferenceBitForBit) {
  const Rng rng(1234, "init/layers.0.attn.o.weight");
  // (3, 5): tiny; (64, 96) stride 384 at column 192: a tp rank's o slice; (7, 1001) from 2^32 − 3000:
  // the counter's high word mid-tensor; (2304, 1024): 2.4M elements, past 8192 blocks x 256 threads.
  const Case cases[] = {{3, 5, 5, 0}, {64, 96, 384, 192}, {7, 1001, 1001, (uint64_t{1} << 32) - 3000},
                        {2304, 1024, 1024, 0}};
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (const Case& k : cases) {
      const NormalInitArgs base{.seed = rng.seed(), .stream = rng.stream(), .first = k.first,
                                .row_stride = k.row_stride, .mean = 0.0, .stddev = 0.02 / 3.0};
      HostTensor cpu("w", dtype, {k.rows, k.cols});
      NormalInitArgs a = base;
      a.out = cpu.view();
      normal_init(ExecContext{}, a);

      HostTensor garbage("w", dtype, {k.rows, k.cols});
      garbage.Fill(123.0);  // the kernel must overwrite every element
      DeviceTensor gpu = DeviceTensor::Upload(garbage);
      a.out = gpu.view();
      normal_init(ExecContext{Device::Cuda(0), {}}, a);
      OM_CUDA_CHECK(cudaDeviceSynchronize());
      const HostTensor back = gpu.Download();
      EXPECT_TRUE(bitwise_equal(back, cpu))
          << dtype_name(dtype) << " " << k.rows << "x" << k.cols << " stride " << k.row_stride << ": max |diff| "
          << max_abs_diff(back, cpu);
    }
  }
}

TEST(NormalInitCuda, PinnedDrawsComeBackFromTheDevice) {
  // f32 of N(i) at mean 0, stddev 1 is float(N(i)): the first pinned draws of portable_normal_test.
  const uint64_t stream = rng_stream_id("init/embed.weight");
  DeviceTensor gpu = DeviceTensor::Upload(HostTensor("w", DType::kF32, {1, 2}));
  normal_init(ExecContext{Device::Cuda(0), {}},
              {.out = gpu.view(), .seed = 1234, .stream = stream, .first = 0, .row_stride = 2, .stddev = 1.0});
  const HostTensor back = gpu.Download();
  EXPECT_EQ(back.get(0), static_cast<double>(static_cast<float>(0.4734244102595988)));
  EXPECT_EQ(back.get(1), static_cast<double>(static_cast<float>(2.0410474454189504)));
}

}  // namespace
}  // namespace om
