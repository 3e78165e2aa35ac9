// core/orthogonal.h: Haar orthogonal matrices (orthogonality and the QR factorisation of the documented
// A within the Householder error bound, the sign fix, determinism, a distribution check), signed
// permutations and the identity.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/orthogonal.h"
#include "kernels/check/tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr int64_t kSizes[] = {1, 2, 3, 17, 128};
const double kEps = dtype_eps(DType::kF64);  // 2^-52 = 2u

// Error bound of the Householder QR in core/orthogonal.cc (Higham, "Accuracy and Stability of Numerical
// Algorithms", 2nd ed., Lemmas 19.2–19.3 and Theorem 19.4, with the constants of their γ̃ made
// explicit for this code). One reflector H_k, built from a column of length m = n − k and applied to
// a vector y, returns H_k·y + δ with ‖δ‖ <= 4(m + 6)·u·‖y‖ = 2(m + 6)·eps: the dot product vᵀy and
// the update y − w·v cost γ_{m+3}, the computed v̂, τ̂ (a sum of m − 1 squares, sqrt, add, subtract,
// divide, scale) another γ_{m+5}, and both are amplified by τ·‖v‖² = 2. Every column of Q passes
// through n reflectors H_{n−1} … H_0 (Q = H_0 ⋯ H_{n−1}·I), and the columns of A through the same
// reflectors to give R, so with P the exactly orthogonal product of the exact reflectors:
//   Q̂ = P·(I + ΔE),  A + ΔA = P·R̂,  ‖Δe_j‖, ‖Δa_j‖/‖a_j‖ <= e_n = Σ_k 2(n − k + 6)·eps = n(n + 13)·eps.
// The sign fix multiplies columns by ±1, exactly. This is the worst case, quadratic in n; the
// c·n·eps often quoted for Householder QR is the typical growth (errors of random sign), not a bound,
// so the tests assert e_n and print the measured error next to it.
double householder_column_error(int64_t n) { return static_cast<double>(n) * static_cast<double>(n + 13) * kEps; }

// The test's own double dot products of n terms with Σ|terms| <= ‖x‖·‖y‖: at most n·eps/2 relative.
double dot_error(int64_t n) { return static_cast<double>(n) * kEps; }

double at(const std::vector<double>& m, int64_t n, int64_t i, int64_t j) { return m[static_cast<size_t>(i * n + j)]; }

// max_ij |(QᵀQ − I)_ij| (dot products of columns) or |(Q·Qᵀ − I)_ij| (of rows), Q (n, n) row-major.
enum class Gram : uint8_t { kColumns, kRows };
double gram_error(const std::vector<double>& q, int64_t n, Gram g) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < n; ++k)
        s += g == Gram::kColumns ? at(q, n, k, i) * at(q, n, k, j) : at(q, n, i, k) * at(q, n, j, k);
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

TEST(HaarOrthogonal, OrthogonalWithinHouseholderBound) {
  for (int64_t n : kSizes) {
    const std::vector<double> q = haar_orthogonal(Rng(5, "orthogonal_test/q"), n);
    ASSERT_EQ(q.size(), static_cast<size_t>(n * n));
    const double e = householder_column_error(n);
    // (QᵀQ − I)_ij = Δe_iᵀΔe_j + (Δe_i + Δe_j terms) with P orthogonal: <= 2e + e².
    const double bound_cols = 2.0 * e + e * e + dot_error(n);
    // Q·Qᵀ − I = P·(ΔE + ΔEᵀ + ΔE·ΔEᵀ)·Pᵀ: an entry is at most the spectral norm, <= 2‖ΔE‖_F + ‖ΔE‖_F²
    // with ‖ΔE‖_F <= sqrt(n)·e.
    const double fro = std::sqrt(static_cast<double>(n)) * e;
    const double bound_rows = 2.0 * fro + fro * fro + dot_error(n);
    const double cols = gram_error(q, n, Gram::kColumns), rows = gram_error(q, n, Gram::kRows);
    std::printf("haar n=%3ld: max|QᵀQ−I| %.2e (bound %.2e, n·eps %.2e)  max|QQᵀ−I| %.2e (bound %.2e)\n",
                static_cast<long>(n), cols, bound_cols, static_cast<double>(n) * kEps, rows, bound_rows);
    EXPECT_LE(cols, bound_cols) << "n=" << n;
    EXPECT_LE(rows, bound_rows) << "n=" << n;
  }
}

TEST(HaarOrthogonal, FactorsTheDocumentedGaussianMatrixWithPositiveDiagonal) {
  // A (n, n), A[i, j] = NormalDouble(i·n + j) from the same Rng (core/orthogonal.h), so R = QᵀA must be
  // the upper-triangular factor with R_jj > 0. With the relations above, for i > j:
  //   (QᵀA)_ij = (ΔEᵀ·R̂ − (I + ΔE)ᵀ·Pᵀ·ΔA)_ij  =>  |(QᵀA)_ij| <= 2e(1 + e)·‖a_j‖,
  // plus the test's dot product q_iᵀa_j, off by dot_error(n)·‖q_i‖·‖a_j‖ with ‖q_i‖ <= 1 + e.
  for (int64_t n : kSizes) {
    const Rng rng(6, "orthogonal_test/qr");
    const std::vector<double> q = haar_orthogonal(rng, n);
    std::vector<double> a(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n * n; ++i) a[static_cast<size_t>(i)] = rng.NormalDouble(static_cast<uint64_t>(i));
    const double e = householder_column_error(n);
    double worst_lower = 0.0, worst_lower_budget = 0.0, min_diag_over_bound = INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      double norm_aj = 0.0;
      for (int64_t k = 0; k < n; ++k) norm_aj += at(a, n, k, j) * at(a, n, k, j);
      norm_aj = std::sqrt(norm_aj);
      const double bound = (2.0 * e + dot_error(n)) * (1.0 + e) * norm_aj;
      for (int64_t i = 0; i < n; ++i) {
        double r = 0.0;
        for (int64_t k = 0; k < n; ++k) r += at(q, n, k, i) * at(a, n, k, j);
        if (i > j) {
          EXPECT_LE(std::fabs(r), bound) << "n=" << n << " R[" << i << ", " << j << "] below the diagonal";
          worst_lower = std::max(worst_lower, std::fabs(r));
          worst_lower_budget = std::max(worst_lower_budget, std::fabs(r) / bound);
        } else if (i == j) {
          // Positive, and by more than its error bound, so the sign is the sign fix's and not noise.
          EXPECT_GT(r, bound) << "n=" << n << " R[" << j << ", " << j << "]";
          min_diag_over_bound = std::min(min_diag_over_bound, r / bound);
        }
      }
    }
    std::printf("haar n=%3ld: R = QᵀA, max below-diagonal %.2e (%.2f%% of bound), min R_jj / bound %.3g\n",
                static_cast<long>(n), worst_lower, 100.0 * worst_lower_budget, min_diag_over_bound);
  }
}

TEST(HaarOrthogonal, SameKeyBitIdenticalOtherKeyDifferent) {
  const int64_t n = 17;
  const std::vector<double> a = haar_orthogonal(Rng(7, "orthogonal_test/det"), n);
  const std::vector<double> b = haar_orthogonal(Rng(7, "orthogonal_test/det"), n);
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(double)));
  for (const Rng& other : {Rng(7, "orthogonal_test/det2"), Rng(8, "orthogonal_test/det")}) {
    const std::vector<double> c = haar_orthogonal(other, n);
    int same = 0;
    for (size_t i = 0; i < a.size(); ++i) same += a[i] == c[i];
    EXPECT_EQ(same, 0) << "stream " << other.stream() << " seed " << other.seed();
  }
}

TEST(HaarOrthogonal, DrawsInParallelThreadsEqualSerialDraws) {
  // The optimizer draws its units' matrices in an OpenMP loop (LAPACK single-threaded per matrix):
  // the bits must not depend on which thread draws what or how many draw at once.
  constexpr int kMatrices = 12;
  std::vector<std::vector<double>> serial, parallel(kMatrices);
  for (int k = 0; k < kMatrices; ++k) serial.push_back(haar_orthogonal(Rng(3, "par/" + std::to_string(k)), 40 + 7 * k));
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
  for (int k = 0; k < kMatrices; ++k) parallel[k] = haar_orthogonal(Rng(3, "par/" + std::to_string(k)), 40 + 7 * k);
  for (int k = 0; k < kMatrices; ++k) {
    ASSERT_EQ(serial[k].size(), parallel[k].size());
    EXPECT_EQ(std::memcmp(serial[k].data(), parallel[k].data(), serial[k].size() * sizeof(double)), 0) << "matrix " << k;
  }
}

TEST(HaarOrthogonal, EntryMomentsMatchHaarOverManyStreams) {
  // For Haar Q (n, n) every entry has the law of one coordinate of a uniform unit vector:
  //   E[Q_ij] = 0, Var[Q_ij] = 1/n;  Q_ij² ~ Beta(1/2, (n−1)/2): E = 1/n, Var = 2(n−1)/(n²(n+2)).
  // The means over S independent streams are asserted within 5 standard errors (sqrt(Var/S)); with a
  // fixed seed the test is deterministic, 5 sigma keeps the pass from being a lucky draw. Without
  // the sign fix Q_00 = −|A_00|/‖a_0‖ < 0 always, mean −sqrt(2/(πn)) ≈ −0.10, vs 5 sigma = 0.044.
  const int64_t n = 64, S = 200;
  const double nd = static_cast<double>(n), sd = static_cast<double>(S);
  const double se_mean = std::sqrt(1.0 / nd / sd);
  const double se_sq = std::sqrt(2.0 * (nd - 1.0) / (nd * nd * (nd + 2.0)) / sd);
  for (const auto& [i, j] : {std::pair<int64_t, int64_t>{0, 0}, {n - 1, n - 1}, {n / 2, 3}}) {
    double sum = 0.0, sum_sq = 0.0;
    for (int64_t s = 0; s < S; ++s) {
      const std::vector<double> q = haar_orthogonal(Rng(9, "orthogonal_test/haar/" + std::to_string(s)), n);
      sum += at(q, n, i, j);
      sum_sq += at(q, n, i, j) * at(q, n, i, j);
    }
    const double mean = sum / sd, mean_sq = sum_sq / sd;
    std::printf("haar n=64 Q[%ld][%ld] over %ld streams: mean %+.4f (|.| <= %.4f), mean of squares %.5f (1/n = %.5f "
                "± %.5f)\n",
                static_cast<long>(i), static_cast<long>(j), static_cast<long>(S), mean, 5.0 * se_mean, mean_sq,
                1.0 / nd, 5.0 * se_sq);
    EXPECT_LE(std::fabs(mean), 5.0 * se_mean) << "Q[" << i << "][" << j << "]";
    EXPECT_LE(std::fabs(mean_sq - 1.0 / nd), 5.0 * se_sq) << "Q[" << i << "][" << j << "]";
  }
}

TEST(SignedPermutation, OneSignedUnitPerRowAndColumn) {
  for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{17}, int64_t{64}}) {
    const std::vector<double> p = signed_permutation(Rng(10, "orthogonal_test/perm"), n);
    ASSERT_EQ(p.size(), static_cast<size_t>(n * n));
    std::vector<int> per_row(static_cast<size_t>(n), 0), per_col(static_cast<size_t>(n), 0);
    int64_t fixed_points = 0, negatives = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const double v = at(p, n, i, j);
        ASSERT_TRUE(v == 0.0 || v == 1.0 || v == -1.0) << "n=" << n << " P[" << i << ", " << j << "] = " << v;
        if (v == 0.0) continue;
        ++per_row[static_cast<size_t>(i)];
        ++per_col[static_cast<size_t>(j)];
        fixed_points += i == j;
        negatives += v < 0.0;
      }
    for (int64_t k = 0; k < n; ++k) {
      EXPECT_EQ(per_row[static_cast<size_t>(k)], 1) << "n=" << n << " row " << k;
      EXPECT_EQ(per_col[static_cast<size_t>(k)], 1) << "n=" << n << " column " << k;
    }
    if (n == 64) {  // P(identity) = 1/64!, P(one sign only) = 2^-63
      EXPECT_LT(fixed_points, n);
      EXPECT_GT(negatives, 0);
      EXPECT_LT(negatives, n);
    }
  }
  const std::vector<double> a = signed_permutation(Rng(10, "orthogonal_test/perm"), 64);
  const std::vector<double> b = signed_permutation(Rng(10, "orthogonal_test/perm"), 64);
  EXPECT_EQ(a, b);
}

TEST(IdentityMatrix, IsExactlyTheIdentity) {
  for (int64_t n : {int64_t{1}, int64_t{5}}) {
    const std::vector<double> id = identity_matrix(n);
    ASSERT_EQ(id.size(), static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) EXPECT_EQ(at(id, n, i, j), i == j ? 1.0 : 0.0);
  }
}

}  // namespace
}  // namespace om
