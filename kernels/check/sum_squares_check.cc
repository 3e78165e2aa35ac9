// Checks for kernels/sum_squares.h, in f32 and f64 inputs: exact on small integers (rule 1, over
// several blocks and a partial one), and against a long-double Kahan sum for 1e6 normal elements
// (rule 2, with the bound of the fixed-block summation order).
#include <cmath>

#include "kernels/check/checks.h"
#include "kernels/sum_squares.h"

namespace om {
namespace {

HostTensor run_sum_squares(const HostTensor& x) {
  HostTensor out("sum_squares out", DType::kF64, {1});
  sum_squares(ExecContext{}, {out.view(), x.view()});
  return out;
}

HostTensor scalar(const char* name, double value) {
  HostTensor t(name, DType::kF64, {1});
  t.set(0, value);
  return t;
}

}  // namespace

CheckList check_sum_squares() {
  CheckList results;
  for (DType dt : {DType::kF32, DType::kF64}) {
    const std::string dname(dtype_name(dt));
    {  // Integers in [-8, 8]: every square and partial sum (<= 64 n < 2^53) is exact in double.
      const int64_t n = 3 * cpu::kSumSquaresBlock + 5;
      HostTensor x("x", dt, {n});
      const Rng rng(3, "sum_squares/int");
      int64_t want = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t xi = static_cast<int64_t>(std::floor(rng.UniformDouble(i) * 17.0)) - 8;
        x.set(i, static_cast<double>(xi));
        want += xi * xi;
      }
      results.push_back(compare_tensors("sum_squares n=12293 " + dname, "small integers vs int64 sum",
                                        run_sum_squares(x), scalar("want", static_cast<double>(want)), exact()));
    }
    {  // Normal data against a compensated (Kahan) long-double sum of the squares.
      const int64_t n = 1000000;
      HostTensor x("x", dt, {n});
      x.FillNormal(Rng(4, "sum_squares/normal"), 0, 1.0);
      long double sum = 0.0L, carry = 0.0L;
      for (int64_t i = 0; i < n; ++i) {
        const long double xi = x.get(i);
        const long double y = xi * xi - carry;
        const long double t = sum + y;
        carry = (t - sum) - y;
        sum = t;
      }
      // Each block sums kSumSquaresBlock squares serially, then nblocks partials are summed serially:
      // every square passes through at most kSumSquaresBlock + nblocks double additions, plus one
      // rounding of the square itself for f64 inputs (exact for f32), so recursive summation bounds
      // the error by (block + nblocks + 1) * eps64 * sum x^2.
      const int64_t nblocks = (n + cpu::kSumSquaresBlock - 1) / cpu::kSumSquaresBlock;
      const double want = static_cast<double>(sum);
      results.push_back(compare_tensors("sum_squares n=1e6 " + dname, "vs long-double Kahan sum", run_sum_squares(x),
                                        scalar("want", want),
                                        for_reduction(DType::kF64, cpu::kSumSquaresBlock + nblocks + 1, want)));
    }
  }
  return results;
}

}  // namespace om
