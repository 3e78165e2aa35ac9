// CPU reference for the vocab-parallel token embedding (kernels/embedding.h), templated on the float
// type (f32 production, f64 gradient checks).
#include <algorithm>
#include <vector>

#include "kernels/embedding.h"

namespace om::cpu {
namespace {

// Row of this shard that token `id` maps to, or -1 when the id belongs to another shard (or to no
// shard at all: negative or past the vocabulary). Computed in 64 bits so no id can overflow.
inline int64_t local_row(int32_t id, int64_t vocab_start, int64_t Vl) {
  const int64_t r = static_cast<int64_t>(id) - vocab_start;
  return (r >= 0 && r < Vl) ? r : -1;
}

template <typename T>
void forward_impl(const EmbeddingForwardArgs& a) {
  const int64_t N = a.ids.dim(0), Vl = a.weight.dim(0), C = a.weight.dim(1);
  const int32_t* ids = a.ids.data_as<const int32_t>();
  const T* w = a.weight.data_as<const T>();
  T* y = a.out.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = local_row(ids[n], a.vocab_start, Vl);
    T* yr = y + n * C;
    if (r < 0) {
      std::fill(yr, yr + C, T(0));  // another rank supplies this row; the tp all-reduce adds it
    } else {
      std::copy(w + r * C, w + (r + 1) * C, yr);
    }
  }
}

// dweight[r] += sum over n with ids[n] = vocab_start + r of dout[n], in increasing n.
// A scatter-add over n would race (repeated ids) or depend on the thread schedule, so the ids are
// first bucketed by shard row with a stable counting sort (serial, O(N + Vl)). Each dweight row is
// then owned by one thread and sums its bucket in n order in double, rounding once into dweight:
// bit-identical for any thread count, and a row's result does not depend on how the vocabulary is
// sharded (the two-shard test relies on this).
template <typename T>
void backward_impl(const EmbeddingBackwardArgs& a) {
  const int64_t N = a.ids.dim(0), Vl = a.dweight.dim(0), C = a.dweight.dim(1);
  const int32_t* ids = a.ids.data_as<const int32_t>();
  const T* dy = a.dout.data_as<const T>();
  T* dw = a.dweight.data_as<T>();

  std::vector<int64_t> start(static_cast<size_t>(Vl + 1), 0);  // bucket r is order[start[r], start[r+1])
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = local_row(ids[n], a.vocab_start, Vl);
    if (r >= 0) ++start[r + 1];
  }
  for (int64_t r = 0; r < Vl; ++r) start[r + 1] += start[r];
  std::vector<int64_t> order(static_cast<size_t>(start[Vl]));
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = local_row(ids[n], a.vocab_start, Vl);
    if (r >= 0) order[fill[r]++] = n;
  }

#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(C));
    // Buckets vary in size (frequent tokens); dynamic scheduling balances them and cannot change the
    // result because no row is shared between threads.
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < Vl; ++r) {
      if (start[r] == start[r + 1]) continue;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = start[r]; k < start[r + 1]; ++k) {
        const T* dyr = dy + order[k] * C;
        for (int64_t c = 0; c < C; ++c) acc[c] += static_cast<double>(dyr[c]);
      }
      T* dwr = dw + r * C;
      for (int64_t c = 0; c < C; ++c) dwr[c] = static_cast<T>(static_cast<double>(dwr[c]) + acc[c]);
    }
  }
}

}  // namespace

void embedding_forward(const EmbeddingForwardArgs& a) {
  if (a.weight.dtype == DType::kF64) return forward_impl<double>(a);
  forward_impl<float>(a);
}

void embedding_backward(const EmbeddingBackwardArgs& a) {
  if (a.dweight.dtype == DType::kF64) return backward_impl<double>(a);
  backward_impl<float>(a);
}

}  // namespace om::cpu
