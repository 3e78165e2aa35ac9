// HostRotationUnit: host storage of one block_rotate unit (kernels/block_rotate.h) for checks and
// tests — x (R, K), q_r (R, R), q_c[b] (K_b, K_b) — and the RotationUnit view of it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/block_rotate.h"
#include "kernels/check/host_tensor.h"

namespace om {

struct HostRotationUnit {
  HostTensor x, q_r;
  std::vector<HostTensor> q_c;

  int64_t R() const { return x.shape()[0]; }
  int64_t K() const { return x.shape()[1]; }
  int64_t max_block() const {
    int64_t m = 0;
    for (const HostTensor& q : q_c) m = std::max(m, q.shape()[0]);
    return m;
  }
  // Views are made here, after every move of the HostTensors (a view points at the tensor's name).
  RotationUnit view() {
    RotationUnit u{x.view(), q_r.cview(), {}};
    for (const HostTensor& q : q_c) u.q_c.push_back(q.cview());
    return u;
  }
  HostRotationUnit Converted(DType dt) const {
    HostRotationUnit out{x.Converted(dt), q_r.Converted(dt), {}};
    for (const HostTensor& q : q_c) out.q_c.push_back(q.Converted(dt));
    return out;
  }
};

// max_ij |(QᵀQ − I)_ij| of a square Q (n, n), each entry a dot product in double.
inline double orthogonality_error(const HostTensor& q) {
  const int64_t n = q.shape()[0];
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < n; ++k) s += q.get(k * n + i) * q.get(k * n + j);
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

}  // namespace om
