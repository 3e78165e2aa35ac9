// Checks for kernels/embedding.h: dweight against central differences in f64 (N=10, V=7, C=8 with
// repeated ids) for the whole table and for a shard owning part of the vocabulary, then the f32
// kernel against the f64 kernel at a training-like shape (N=512, V=64, C=768; ~8 repeats per id).
#include <algorithm>
#include <vector>

#include "kernels/check/checks.h"
#include "kernels/embedding.h"

namespace om {
namespace {

struct EmbeddingCase {
  HostTensor ids, weight, out;
  int64_t vocab_start;
  EmbeddingCase(DType dt, const HostTensor& token_ids, int64_t vocab_start_, int64_t Vl, int64_t C, uint64_t seed)
      : ids(token_ids.Clone("ids")),
        weight("weight", dt, {Vl, C}),
        out("out", dt, {token_ids.numel(), C}),
        vocab_start(vocab_start_) {
    weight.FillNormal(Rng(seed, "embedding/weight"), 0, 1.0);
  }
  void forward() { embedding_forward(ExecContext{}, {out.view(), ids.view(), weight.view(), vocab_start}); }
  void backward(HostTensor& dweight, const HostTensor& dout) {
    embedding_backward(ExecContext{}, {dweight.view(), dout.view(), ids.view(), vocab_start});
  }
};

HostTensor make_ids(const std::vector<int32_t>& values) {
  HostTensor ids("ids", DType::kI32, {static_cast<int64_t>(values.size())});
  std::copy(values.begin(), values.end(), ids.data<int32_t>());
  return ids;
}

// dweight of one shard [vocab_start, vocab_start + Vl) of a V=7 vocabulary against central differences.
CheckResult finite_difference_case(int64_t vocab_start, int64_t Vl) {
  const int64_t C = 8;
  // Ids 3, 1 and 6 repeat; 4 never occurs (its gradient row must stay zero).
  const HostTensor ids = make_ids({3, 1, 3, 0, 6, 3, 5, 1, 2, 6});
  const int64_t N = ids.numel();
  EmbeddingCase c(DType::kF64, ids, vocab_start, Vl, C, 1);
  HostTensor dout("dout", DType::kF64, {N, C});
  dout.FillNormal(Rng(1, "embedding/dout"), 0, 1.0);
  c.forward();
  double scale = 0.0;
  weighted_sum(c.out, dout, &scale);
  HostTensor dweight("dweight", DType::kF64, {Vl, C});
  c.backward(dweight, dout);
  auto loss = [&] {
    c.forward();
    return weighted_sum(c.out, dout);
  };
  const std::string tag = format_message("embedding N=10 V=7 shard [%ld, %ld) C=8 f64", static_cast<long>(vocab_start),
                                         static_cast<long>(vocab_start + Vl));
  return finite_difference_check(tag, "dweight vs central differences", c.weight, dweight, loss, scale);
}

}  // namespace

CheckList check_embedding() {
  CheckList results;
  results.push_back(finite_difference_case(0, 7));  // the whole table (tp = 1)
  results.push_back(finite_difference_case(4, 3));  // a shard: ids 0..3 belong to another rank
  {  // f32 kernel against the f64 kernel on the same (f32-representable) weights and gradients.
    const int64_t N = 512, V = 64, C = 768;
    HostTensor ids("ids", DType::kI32, {N});
    const Rng id_rng(2, "embedding/ids");
    for (int64_t n = 0; n < N; ++n) ids.data<int32_t>()[n] = static_cast<int32_t>(id_rng.Uniform(n) * V);
    EmbeddingCase c32(DType::kF32, ids, 0, V, C, 2);
    EmbeddingCase c64(DType::kF64, ids, 0, V, C, 2);
    c64.weight = c32.weight.Converted(DType::kF64);
    c32.forward();
    c64.forward();
    const std::string tag = "embedding N=512 V=64 C=768";
    // The forward copies rows: exact in any float type.
    results.push_back(compare_tensors(tag, "f32 out vs f64", c32.out, c64.out, exact()));

    HostTensor dout32("dout", DType::kF32, {N, C});
    dout32.FillNormal(Rng(2, "embedding/dout"), 0, 1.0);
    const HostTensor dout64 = dout32.Converted(DType::kF64);
    HostTensor dw32("dweight", DType::kF32, {V, C}), dw64("dweight", DType::kF64, {V, C});
    c32.backward(dw32, dout32);
    c64.backward(dw64, dout64);
    // dweight[v, c] sums the dout rows of every occurrence of v: a reduction of at most max_count
    // terms, each bounded by max|dout|. (The kernel sums in double and rounds once, so the f32
    // result is in fact within half an ulp; the rule-2 bound is the contract.)
    std::vector<int64_t> count(static_cast<size_t>(V), 0);
    for (int64_t n = 0; n < N; ++n) ++count[ids.data<int32_t>()[n]];
    const int64_t max_count = *std::max_element(count.begin(), count.end());
    results.push_back(compare_tensors(tag, "f32 dweight vs f64", dw32, dw64,
                                      for_reduction(DType::kF32, max_count, max_count * dout64.max_abs())));
  }
  return results;
}

}  // namespace om
