// Checks for kernels/cross_entropy.h: dlogits against central differences in f64 on a tiny shard
// with padding and an ignored target (N=6, Vl=11, vocab_size 8), then the f32 kernels against the
// f64 kernels at a training-like shape (N=64, Vl=8192).
#include "kernels/check/checks.h"
#include "kernels/cross_entropy.h"

namespace om {
namespace {

// Rows whose index is 2 mod 8 have an ignored target; the others a uniform id in [0, vocab_size).
struct CrossEntropyCase {
  HostTensor logits, targets, losses, row_max, sum_exp, target_logit;
  VocabShard shard;
  float dloss = 0.0f;  // 1 / (number of non-ignored targets): the mean loss
  CrossEntropyCase(DType dt, int64_t N, int64_t Vl, int64_t vocab_size, uint64_t seed)
      : logits("logits", dt, {N, Vl}),
        targets("targets", DType::kI32, {N}),
        losses("losses", dt, {N}),
        row_max("row_max", dt, {N}),
        sum_exp("sum_exp", dt, {N}),
        target_logit("target_logit", dt, {N}),
        shard{0, vocab_size} {
    logits.FillNormal(Rng(seed, "cross_entropy/logits"), 0, 3.0);
    const Rng rng(seed, "cross_entropy/targets");
    int64_t counted = 0;
    for (int64_t n = 0; n < N; ++n) {
      const bool ignored = n % 8 == 2;
      targets.set(n, ignored ? kIgnoreTarget : static_cast<int64_t>(rng.UniformDouble(n) * vocab_size));
      counted += ignored ? 0 : 1;
    }
    dloss = 1.0f / static_cast<float>(counted);
  }
  void forward() {
    cross_entropy_forward(ExecContext{}, {losses.view(), row_max.view(), sum_exp.view(), target_logit.view(),
                                          logits.view(), targets.view(), shard});
  }
  HostTensor backward() {
    HostTensor dlogits("dlogits", logits.dtype(), logits.shape());
    cross_entropy_backward(ExecContext{}, {dlogits.view(), logits.view(), targets.view(), row_max.view(),
                                           sum_exp.view(), shard, dloss});
    return dlogits;
  }
};

}  // namespace

CheckList check_cross_entropy() {
  CheckList results;
  {  // Gradients in f64 against central differences of loss = dloss * sum_n losses[n]. Padding
     // columns (ids 8..10) do not enter the loss, so their numeric gradient is 0 and so must ours be.
    CrossEntropyCase c(DType::kF64, 6, 11, 8, 1);
    c.forward();
    HostTensor w("dloss", DType::kF64, c.losses.shape());
    w.Fill(c.dloss);
    double scale = 0.0;
    weighted_sum(c.losses, w, &scale);
    const HostTensor dlogits = c.backward();
    auto loss = [&] {
      c.forward();
      return weighted_sum(c.losses, w);
    };
    results.push_back(finite_difference_check("cross_entropy N=6 Vl=11 vocab 8 f64", "dlogits vs central differences",
                                              c.logits, dlogits, loss, scale));
  }
  {  // f32 kernels against f64 kernels on the same (f32-representable) logits and targets.
    const int64_t N = 64, Vl = 8192, vocab_size = 8192 - 64;
    CrossEntropyCase c32(DType::kF32, N, Vl, vocab_size, 2);
    CrossEntropyCase c64(DType::kF64, N, Vl, vocab_size, 2);
    c64.logits = c32.logits.Converted(DType::kF64);
    c32.forward();
    c64.forward();
    const HostTensor d32 = c32.backward(), d64 = c64.backward();
    // Both paths form exp(x - m) and sum it in double (kernels/cpu/cross_entropy.cc), and row_max and
    // the target logit are copies of inputs, so the f32 path differs only by rounding sum_exp to f32
    // (relative eps/2, i.e. absolute eps/2 on log(sum_exp): atol = 1 * eps * 1) and by the final
    // roundings of the outputs (rtol). In dlogits the rounded sum_exp perturbs each probability p by
    // eps/2 relative, at most eps/2 * dloss absolute (atol = 1 * eps * dloss).
    const std::string tag = "cross_entropy N=64 Vl=8192";
    results.push_back(compare_tensors(tag, "f32 losses vs f64", c32.losses, c64.losses,
                                      for_reduction(DType::kF32, 1, 1.0)));
    results.push_back(compare_tensors(tag, "f32 dlogits vs f64", d32, d64,
                                      for_reduction(DType::kF32, 1, c64.dloss)));
  }
  return results;
}

}  // namespace om
