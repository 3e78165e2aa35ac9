// Haar matrices through LAPACK's blocked Householder QR (dgeqrf + dorgqr from OpenBLAS), single-threaded
// per matrix; signed permutations and the identity directly.
#include "core/orthogonal.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <utility>

#include "core/check.h"

namespace om {
namespace {

// LAPACK (OpenBLAS's): blocked Householder QR and the explicit Q from its reflectors.
extern "C" {
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work, const int* lwork,
             int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau, double* work,
             const int* lwork, int* info);
void openblas_set_num_threads(int num_threads);
}

// OpenBLAS runs single-threaded: callers draw many matrices in their own OpenMP loops (one matrix per
// thread), and a matrix's bits then never depend on a thread count.
void single_threaded_lapack() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

std::vector<double> haar_orthogonal(const Rng& rng, int64_t n) {
  OM_CHECK(n >= 1 && n <= (1 << 15), "haar_orthogonal: n = %ld must be in [1, 32768]", static_cast<long>(n));
  single_threaded_lapack();
  const size_t nn = static_cast<size_t>(n * n);
  std::vector<double> a(nn);  // column-major: a[j·n + i] = A[i, j]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[j * n + i] = rng.NormalDouble(static_cast<uint64_t>(i * n + j));

  const int ni = static_cast<int>(n);
  int info = 0, lwork = -1;
  double query = 0.0;
  std::vector<double> tau(static_cast<size_t>(n));
  dgeqrf_(&ni, &ni, a.data(), &ni, tau.data(), &query, &lwork, &info);
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgeqrf_(&ni, &ni, a.data(), &ni, tau.data(), work.data(), &lwork, &info);
  OM_CHECK(info == 0, "haar_orthogonal: dgeqrf failed (info %d) for n = %ld", info, static_cast<long>(n));
  std::vector<double> sign(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) sign[j] = a[j * n + j] < 0.0 ? -1.0 : 1.0;  // sign(R_jj)

  lwork = -1;
  dorgqr_(&ni, &ni, &ni, a.data(), &ni, tau.data(), &query, &lwork, &info);
  lwork = std::max(1, static_cast<int>(query));
  work.assign(static_cast<size_t>(lwork), 0.0);
  dorgqr_(&ni, &ni, &ni, a.data(), &ni, tau.data(), work.data(), &lwork, &info);
  OM_CHECK(info == 0, "haar_orthogonal: dorgqr failed (info %d) for n = %ld", info, static_cast<long>(n));

  std::vector<double> out(nn);  // row-major, columns sign-fixed
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < n; ++i) out[i * n + j] = sign[j] * a[j * n + i];
  return out;
}

std::vector<double> signed_permutation(const Rng& rng, int64_t n) {
  OM_CHECK(n >= 1, "signed_permutation: n = %ld must be >= 1", static_cast<long>(n));
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t k = n - 1; k > 0; --k) {  // Fisher–Yates: swap k with a uniform index in [0, k]
    const int64_t j = std::min<int64_t>(k, static_cast<int64_t>(rng.UniformDouble(static_cast<uint64_t>(k)) *
                                                                 static_cast<double>(k + 1)));
    std::swap(perm[k], perm[j]);
  }
  std::vector<double> out(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    out[i * n + perm[i]] = rng.UniformDouble(static_cast<uint64_t>(n + i)) < 0.5 ? -1.0 : 1.0;
  }
  return out;
}

std::vector<double> identity_matrix(int64_t n) {
  std::vector<double> out(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) out[i * n + i] = 1.0;
  return out;
}

}  // namespace om
