// CPU reference for the cross-entropy pieces (kernels/cross_entropy.h). Templated on the float type
// (f32 production, f64 gradient checks). Rows are independent (OpenMP over rows), so results are
// bit-identical for any thread count. Exponentials and sums run in double for both types: the
// exp argument x - m is then exact for f32 inputs, and f32 results differ from f64 ones only by
// the final roundings to f32 (kernels/check/cross_entropy_check.cc relies on this). Measured on
// this machine, double exp costs about the same as expf inside a double-accumulated sum.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/cross_entropy_common.h"
#include "kernels/cross_entropy.h"

namespace om::cpu {
namespace {

template <typename T>
void row_max_impl(const CrossEntropyRowMaxArgs& a) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const T* x = a.logits.data_as<const T>();
  T* mx = a.row_max.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * Vl;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < valid; ++j) m = std::max(m, xr[j]);
    mx[n] = m;
  }
}

template <typename T>
void sum_exp_impl(const CrossEntropySumExpArgs& a) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const T* x = a.logits.data_as<const T>();
  const T* mx = a.row_max.data_as<const T>();
  T* se = a.sum_exp.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * Vl;
    const double m = mx[n];
    double s = 0.0;
    for (int64_t j = 0; j < valid; ++j) s += std::exp(static_cast<double>(xr[j]) - m);
    se[n] = static_cast<T>(s);
  }
}

template <typename T>
void target_logit_impl(const CrossEntropyTargetLogitArgs& a) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const T* x = a.logits.data_as<const T>();
  const int32_t* tg = a.targets.data_as<const int32_t>();
  T* tl = a.target_logit.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t local = static_cast<int64_t>(tg[n]) - a.shard.vocab_start;
    // Exactly one shard owns a valid target; the others contribute an exact 0 to the all-reduce.
    const bool here = tg[n] != kIgnoreTarget && local >= 0 && local < valid;
    tl[n] = here ? x[n * Vl + local] : T(0);
  }
}

template <typename T>
void loss_impl(const CrossEntropyLossArgs& a) {
  const int64_t N = a.row_max.dim(0);
  const T* mx = a.row_max.data_as<const T>();
  const T* se = a.sum_exp.data_as<const T>();
  const T* tl = a.target_logit.data_as<const T>();
  const int32_t* tg = a.targets.data_as<const int32_t>();
  T* loss = a.losses.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    // log(sum_exp) + m - x_t: with sum_exp >= 1 (it contains exp(0) for the max) this never
    // overflows, even for logits of magnitude 1e4.
    loss[n] = tg[n] == kIgnoreTarget
                  ? T(0)
                  : static_cast<T>(std::log(static_cast<double>(se[n])) + static_cast<double>(mx[n]) -
                                   static_cast<double>(tl[n]));
  }
}

template <typename T>
void backward_impl(const CrossEntropyBackwardArgs& a) {
  const int64_t N = a.logits.dim(0), Vl = a.logits.dim(1), valid = valid_columns(a.shard, Vl);
  const T* x = a.logits.data_as<const T>();
  const int32_t* tg = a.targets.data_as<const int32_t>();
  const T* mx = a.row_max.data_as<const T>();
  const T* se = a.sum_exp.data_as<const T>();
  T* dx = a.dlogits.data_as<T>();
  const double dloss = a.dloss;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * Vl;
    T* dxr = dx + n * Vl;
    if (tg[n] == kIgnoreTarget) {
      std::fill(dxr, dxr + Vl, T(0));
      continue;
    }
    // Outside this shard `local` is out of [0, valid) and no column gets the -1.
    const int64_t local = static_cast<int64_t>(tg[n]) - a.shard.vocab_start;
    const double m = mx[n], inv_sum = 1.0 / static_cast<double>(se[n]);
    for (int64_t j = 0; j < valid; ++j) {
      const double p = std::exp(static_cast<double>(xr[j]) - m) * inv_sum;
      dxr[j] = static_cast<T>((p - (j == local ? 1.0 : 0.0)) * dloss);
    }
    std::fill(dxr + valid, dxr + Vl, T(0));
  }
}

}  // namespace

void cross_entropy_row_max(const CrossEntropyRowMaxArgs& a) {
  if (a.logits.dtype == DType::kF64) return row_max_impl<double>(a);
  row_max_impl<float>(a);
}

void cross_entropy_sum_exp(const CrossEntropySumExpArgs& a) {
  if (a.logits.dtype == DType::kF64) return sum_exp_impl<double>(a);
  sum_exp_impl<float>(a);
}

void cross_entropy_target_logit(const CrossEntropyTargetLogitArgs& a) {
  check_targets("cross_entropy_target_logit", a.targets, a.shard.vocab_size);
  if (a.logits.dtype == DType::kF64) return target_logit_impl<double>(a);
  target_logit_impl<float>(a);
}

void cross_entropy_loss(const CrossEntropyLossArgs& a) {
  if (a.row_max.dtype == DType::kF64) return loss_impl<double>(a);
  loss_impl<float>(a);
}

void cross_entropy_backward(const CrossEntropyBackwardArgs& a) {
  check_targets("cross_entropy_backward", a.targets, a.shard.vocab_size);
  if (a.logits.dtype == DType::kF64) return backward_impl<double>(a);
  backward_impl<float>(a);
}

}  // namespace om::cpu
