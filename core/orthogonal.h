// Random orthogonal matrices for OrthoAdam (DESIGN.md "OrthoAdam"), each a pure function of one
// counter-RNG stream (core/rng.h) and its size, so the same (seed, stream name, n) gives the same
// matrix on every rank and in every layout. Row-major (n, n), in double.
//
// haar_orthogonal: A (n, n) with A[i, j] = rng.NormalDouble(i·n + j); Householder QR A = Q·R (LAPACK
// dgeqrf, blocked; Q formed by dorgqr); then each column j of Q is multiplied by sign(R_jj)
// (sign(0) = +1). The sign fix makes the factorisation the unique one with R_jj > 0, which is what
// makes Q Haar-distributed (Mezzadri, "How to generate random matrices from the classical compact
// groups", 2007). Cost: (8/3)·n³ FLOPs on ONE thread (the first call sets OpenBLAS to one thread for
// the process, so callers may draw matrices in parallel, one per OpenMP thread, and the bits never
// depend on a thread count). The bits depend on the OpenBLAS build and CPU kernels, not on the layout.
//
// signed_permutation: Q[i, π(i)] = s_i with π uniform (Fisher–Yates, draw k = rng.UniformDouble(k))
// and s_i = ±1 (draw n + i). Adam is equivariant under it, so it exists for tests and ablations only.
// identity_matrix: I. Both are exact in any float type.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace om {

std::vector<double> haar_orthogonal(const Rng& rng, int64_t n);
std::vector<double> signed_permutation(const Rng& rng, int64_t n);
std::vector<double> identity_matrix(int64_t n);

}  // namespace om
