// CPU reference for sum_squares (kernels/sum_squares.h). Fixed blocks of kSumSquaresBlock elements
// are summed serially in double (one block per OpenMP iteration), then the partials in block order:
// the grouping depends only on numel, never on the thread count. Error bound (rule 2): recursive
// summation over at most kSumSquaresBlock + nblocks terms, each square exact for f32 inputs.
#include <algorithm>
#include <vector>

#include "kernels/sum_squares.h"

namespace om::cpu {
namespace {

template <typename T>
double sum_squares_impl(const T* x, int64_t n) {
  const int64_t nblocks = (n + kSumSquaresBlock - 1) / kSumSquaresBlock;
  std::vector<double> partial(static_cast<size_t>(nblocks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    double s = 0.0;
    for (int64_t i = blk * kSumSquaresBlock; i < std::min(n, (blk + 1) * kSumSquaresBlock); ++i) {
      const double xi = x[i];
      s += xi * xi;
    }
    partial[static_cast<size_t>(blk)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

void sum_squares(const SumSquaresArgs& a) {
  const int64_t n = a.x.numel();
  const double s = a.x.dtype == DType::kF64 ? sum_squares_impl(a.x.data_as<const double>(), n)
                                            : sum_squares_impl(a.x.data_as<const float>(), n);
  a.out.data_as<double>()[0] += s;
}

}  // namespace om::cpu
