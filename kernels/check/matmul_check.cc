// Checks for kernels/matmul.h, for all four transpose combinations and both write modes:
//   1. the f64 loop and 2. the f32 dnnl path against an exact integer reference on small-integer
//      inputs (rule 1), at shapes that cross the f64 column block and the f32 tile grid;
//   3. the f32 path against the f64 path on random normal inputs at a training-like shape (rule 2);
//   4. the Linear-layer backward pattern (kernels/matmul.h) in f64 against central differences.
// Every combination multiplies the same logical matrices A (M, K) and B (K, N); a transposed
// operand is passed as the stored transpose of A or B, so one reference serves all four.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/check/checks.h"
#include "kernels/matmul.h"

namespace om {
namespace {

constexpr Transpose kBoth[] = {Transpose::kNo, Transpose::kYes};
constexpr WriteMode kModes[] = {WriteMode::kOverwrite, WriteMode::kAccumulate};

// Small integers in [-kIntMax, kIntMax]. Rule 1 holds when every partial sum of a dot product plus
// the prefilled c stays below 2^24 in magnitude (f32 mantissa): K * kIntMax^2 + kIntMax < 2^24,
// i.e. K < 1e6 here; the shapes below use K <= 200.
constexpr int kIntMax = 4;

void fill_small_ints(HostTensor& t, uint64_t seed, const char* stream) {
  const Rng rng(seed, stream);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.set(i, std::floor((2 * kIntMax + 1) * rng.UniformDouble(static_cast<uint64_t>(i))) - kIntMax);
}

// The tensor passed as an operand: the logical (R, C) matrix itself, or its (C, R) transpose.
HostTensor stored_as(const HostTensor& logical, Transpose t, DType dtype, const std::string& name) {
  if (t == Transpose::kNo) return logical.Converted(dtype, name);
  const int64_t R = logical.shape()[0], C = logical.shape()[1];
  HostTensor out(name, dtype, {C, R});
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) out.set(c * R + r, logical.get(r * C + c));
  return out;
}

// A·B in int64 arithmetic: the independent reference for integer-valued f64 inputs.
HostTensor exact_product(const HostTensor& A, const HostTensor& B) {
  const int64_t M = A.shape()[0], K = A.shape()[1], N = B.shape()[1];
  const double* a = A.data<double>();
  const double* b = B.data<double>();
  HostTensor out("exact", DType::kF64, {M, N});
  double* o = out.data<double>();
  std::vector<int64_t> row(static_cast<size_t>(N));
  for (int64_t i = 0; i < M; ++i) {
    std::fill(row.begin(), row.end(), 0);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) row[j] += static_cast<int64_t>(a[i * K + k]) * static_cast<int64_t>(b[k * N + j]);
    for (int64_t j = 0; j < N; ++j) o[i * N + j] = static_cast<double>(row[j]);
  }
  return out;
}

const char* combo_name(Transpose ta, Transpose tb) {
  static const char* const kNames[2][2] = {{"a·b", "a·bT"}, {"aT·b", "aT·bT"}};
  return kNames[ta == Transpose::kYes][tb == Transpose::kYes];
}

std::string tag(DType dtype, int64_t M, int64_t K, int64_t N, Transpose ta, Transpose tb) {
  return format_message("matmul %s %s M=%ld K=%ld N=%ld", std::string(dtype_name(dtype)).c_str(),
                        combo_name(ta, tb), static_cast<long>(M), static_cast<long>(K), static_cast<long>(N));
}

// Checks 1 and 2: every combination and mode on integer inputs, exact.
void check_exact(CheckList& out, DType dtype, int64_t M, int64_t K, int64_t N, uint64_t seed) {
  HostTensor A("A", DType::kF64, {M, K}), B("B", DType::kF64, {K, N}), prefill("prefill", DType::kF64, {M, N});
  fill_small_ints(A, seed, "matmul/A");
  fill_small_ints(B, seed, "matmul/B");
  fill_small_ints(prefill, seed, "matmul/prefill");
  const HostTensor want_overwrite = exact_product(A, B);
  HostTensor want_accumulate = want_overwrite.Clone();
  for (int64_t i = 0; i < want_accumulate.numel(); ++i) want_accumulate.set(i, want_accumulate.get(i) + prefill.get(i));
  for (Transpose ta : kBoth)
    for (Transpose tb : kBoth) {
      const HostTensor a = stored_as(A, ta, dtype, "a"), b = stored_as(B, tb, dtype, "b");
      for (WriteMode mode : kModes) {
        const bool acc = mode == WriteMode::kAccumulate;
        // Overwrite starts from the prefill too: garbage that must be replaced.
        HostTensor c = prefill.Converted(dtype, "c");
        matmul(ExecContext{}, {c.view(), a.view(), b.view(), ta, tb, mode});
        out.push_back(compare_tensors(tag(dtype, M, K, N, ta, tb),
                                      acc ? "c += op(a)·op(b) vs exact integers" : "c = op(a)·op(b) vs exact integers",
                                      c, acc ? want_accumulate : want_overwrite, exact()));
      }
    }
}

// Check 3: f32 (dnnl) against f64 (loop) on identical, f32-representable random normal inputs.
void check_f32_vs_f64(CheckList& out, int64_t M, int64_t K, int64_t N) {
  HostTensor A32("A", DType::kF32, {M, K}), B32("B", DType::kF32, {K, N});
  A32.FillNormal(Rng(3, "matmul/A"), 0, 1.0);
  B32.FillNormal(Rng(3, "matmul/B"), 0, 1.0);
  const HostTensor A = A32.Converted(DType::kF64), B = B32.Converted(DType::kF64);
  HostTensor want("f64", DType::kF64, {M, N});
  matmul(ExecContext{}, {want.view(), A.view(), B.view()});
  // Each output is a length-K dot product; the f32 sum of K terms is off by at most about
  // K * eps32 * sum_k |a_ik * b_kj| (rule 2), the f64 reference by 2^-29 times that. Bound with
  // the largest sum_k |a_ik * b_kj| over all outputs, which is the largest entry of |A|·|B|.
  HostTensor absA = A.Clone("|A|"), absB = B.Clone("|B|"), abs_sum("|A|·|B|", DType::kF64, {M, N});
  for (int64_t i = 0; i < absA.numel(); ++i) absA.set(i, std::fabs(absA.get(i)));
  for (int64_t i = 0; i < absB.numel(); ++i) absB.set(i, std::fabs(absB.get(i)));
  matmul(ExecContext{}, {abs_sum.view(), absA.view(), absB.view()});
  const Tolerance tol = for_reduction(DType::kF32, K, abs_sum.max_abs());
  for (Transpose ta : kBoth)
    for (Transpose tb : kBoth) {
      const HostTensor a = stored_as(A32, ta, DType::kF32, "a"), b = stored_as(B32, tb, DType::kF32, "b");
      HostTensor c("c", DType::kF32, {M, N});
      matmul(ExecContext{}, {c.view(), a.view(), b.view(), ta, tb});
      out.push_back(compare_tensors(tag(DType::kF32, M, K, N, ta, tb), "f32 c vs f64", c, want, tol));
    }
}

// Check 4: a Linear layer y = x·Wᵀ with loss = sum(y ⊙ R), so dy = R; the gradients come from
// matmul calls exactly as kernels/matmul.h prescribes (dx overwritten, dW accumulated).
void check_linear_gradients(CheckList& out) {
  const int64_t N = 5, C = 4, O = 3;
  HostTensor x("x", DType::kF64, {N, C}), W("W", DType::kF64, {O, C}), R("R", DType::kF64, {N, O});
  x.FillNormal(Rng(4, "matmul/x"), 0, 1.0);
  W.FillNormal(Rng(4, "matmul/W"), 0, 1.0);
  R.FillNormal(Rng(4, "matmul/R"), 0, 1.0);
  HostTensor y("y", DType::kF64, {N, O});
  auto forward = [&] { matmul(ExecContext{}, {y.view(), x.view(), W.view(), Transpose::kNo, Transpose::kYes}); };
  forward();
  double scale = 0.0;
  weighted_sum(y, R, &scale);
  HostTensor dx("dx", DType::kF64, {N, C}), dW("dW", DType::kF64, {O, C});
  dx.Fill(7.0);  // an overwrite must replace this
  matmul(ExecContext{}, {dx.view(), R.view(), W.view()});
  matmul(ExecContext{}, {dW.view(), R.view(), x.view(), Transpose::kYes, Transpose::kNo, WriteMode::kAccumulate});
  auto loss = [&] {
    forward();
    return weighted_sum(y, R);
  };
  const std::string op = "matmul linear N=5 C=4 O=3 f64";
  out.push_back(finite_difference_check(op, "dx = dy·W vs central differences", x, dx, loss, scale));
  out.push_back(finite_difference_check(op, "dW += dyT·x vs central differences", W, dW, loss, scale));
}

}  // namespace

CheckList check_matmul() {
  CheckList results;
  check_exact(results, DType::kF64, 7, 13, 9, 1);       // tiny, odd
  check_exact(results, DType::kF64, 20, 37, 600, 2);    // N crosses the f64 loop's column block
  check_exact(results, DType::kF32, 7, 13, 9, 1);       // one dnnl tile
  check_exact(results, DType::kF32, 300, 200, 520, 2);  // a 2 x 4 tile grid with ragged edges
  check_f32_vs_f64(results, 256, 768, 512);
  check_linear_gradients(results);
  return results;
}

}  // namespace om
