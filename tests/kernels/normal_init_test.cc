// normal_init (kernels/normal_init.h), CPU reference: every element is the formula of the header on
// portable::normal_portable, exactly, in each dtype; rows start at first + r·row_stride; the result
// does not depend on the thread count; bad arguments are refused with the tensor's name.
#include "kernels/normal_init.h"

#include <omp.h>

#include "core/dtype.h"
#include "core/portable_normal.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct Case {
  int64_t rows, cols, row_stride;
  uint64_t first;
};

// The header's formula for element (r, c), in `dtype`, as a double.
double expected(DType dtype, const NormalInitArgs& a, int64_t r, int64_t c) {
  const double n = portable::normal_portable(
      a.seed, a.stream, a.first + static_cast<uint64_t>(r * a.row_stride + c));
  // Products through portable::mul: unfused even in a build with FMA (-march=native), like the kernel's.
  if (dtype == DType::kF64) return a.mean + portable::mul(a.stddev, n);
  const float f = static_cast<float>(a.mean) + portable::mul(static_cast<float>(a.stddev), static_cast<float>(n));
  return dtype == DType::kBF16 ? static_cast<double>(bf16_bits_to_float(float_to_bf16_bits(f))) : f;
}

TEST(NormalInit, EveryElementIsTheFormulaInEachDtype) {
  const Rng rng(1234, "init/layers.3.mlp.down.weight");
  // Whole rows (row_stride = cols), a column slice of a wider logical tensor (a tp rank's o/down
  // slice: row_stride > cols, first at a column offset), and indices past 2^32.
  const Case cases[] = {{5, 7, 7, 0}, {4, 6, 24, 12}, {3, 5, 5, (uint64_t{1} << 32) - 7}};
  for (DType dtype : {DType::kF64, DType::kF32, DType::kBF16}) {
    for (const Case& k : cases) {
      HostTensor out("w", dtype, {k.rows, k.cols});
      out.Fill(123.0);  // every element must be written
      const NormalInitArgs a{.out = out.view(), .seed = rng.seed(), .stream = rng.stream(), .first = k.first,
                             .row_stride = k.row_stride, .mean = 0.25, .stddev = 0.02};
      normal_init(ExecContext{}, a);
      for (int64_t r = 0; r < k.rows; ++r) {
        for (int64_t c = 0; c < k.cols; ++c) {
          ASSERT_EQ(out.get(r * k.cols + c), expected(dtype, a, r, c))
              << dtype_name(dtype) << " element (" << r << ", " << c << ") of " << k.rows << "x" << k.cols;
        }
      }
    }
  }
}

TEST(NormalInit, BitsDoNotDependOnTheThreadCount) {
  const Rng rng(5, "init/embed.weight");
  HostTensor one("one", DType::kF32, {257, 33}), two("two", DType::kF32, {257, 33});
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  normal_init(ExecContext{}, {.out = one.view(), .seed = 5, .stream = rng.stream(), .row_stride = 40, .stddev = 1});
  omp_set_num_threads(2);
  normal_init(ExecContext{}, {.out = two.view(), .seed = 5, .stream = rng.stream(), .row_stride = 40, .stddev = 1});
  omp_set_num_threads(saved);
  EXPECT_TRUE(bitwise_equal(one, two));
}

TEST(NormalInitDeathTest, BadArgumentsNameTheTensor) {
  HostTensor w("layers.0.attn.o.weight", DType::kF32, {4, 8}), flat("embed.flat", DType::kF32, {32});
  EXPECT_DEATH(normal_init(ExecContext{}, {.out = w.view(), .row_stride = 7}),
               "row_stride 7 is smaller than the 8 columns of 'layers.0.attn.o.weight'");
  EXPECT_DEATH(normal_init(ExecContext{}, {.out = flat.view(), .row_stride = 32}), "'embed.flat' is \\(32\\)");
  HostTensor ids("ids", DType::kI32, {2, 2});
  EXPECT_DEATH(normal_init(ExecContext{}, {.out = ids.view(), .row_stride = 2}), "'ids' is i32");
}

}  // namespace
}  // namespace om
