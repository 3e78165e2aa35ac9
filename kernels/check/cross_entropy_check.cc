// Checks for kernels/cross_entropy.h: dlogits against central differences in f64 on a tiny shard
// with padding and an ignored target (N=6, Vl=11, vocab_size 8), then the f32 kernels (the f32
// dispatch runs the cpu::*_simd variants) against the f64 reference at a training-like shape
// (N=64, Vl=8192) and at an odd one (Vl=8136, vocab 8121: 15 padding columns, rows not a multiple
// of 16 floats long, a partial last block of 9 columns).
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
  // f32 kernels against f64 kernels on the same (f32-representable) logits and targets.
  struct Shape {
    int64_t Vl, vocab_size;
  };
  for (const Shape& sh : {Shape{8192, 8192}, Shape{8136, 8121}}) {
    const int64_t N = 64;
    CrossEntropyCase c32(DType::kF32, N, sh.Vl, sh.vocab_size, 2);
    CrossEntropyCase c64(DType::kF64, N, sh.Vl, sh.vocab_size, 2);
    c64.logits = c32.logits.Converted(DType::kF64);
    c32.forward();
    c64.forward();
    const HostTensor d32 = c32.backward(), d64 = c64.backward();
    // The row max and the target logit are copies of inputs: exact. sum_exp (f32) has V terms
    // exp(x - m) (cpu::exp_shifted_f32: x - m exact), each within kExpF32Ulps (terms under FLT_MIN
    // are flushed: <= V * FLT_MIN, far below eps), summed in kCrossEntropySimdLanes f32 lanes:
    // rule 4 bounds its relative error, i.e. the absolute error of log(sum_exp) (abs_sum 1); the
    // loss's own roundings are the rtol.
    // dlogits = exp(x - m) * fl(dloss / sum_exp), minus dloss on the target: each element carries
    // sum_exp's relative error plus the exp's ulps and 3 roundings (the factor, the product, the
    // subtraction), all relative to p * dloss <= dloss: rule 4 with abs_sum dloss, term_ulps + 3.
    const int64_t V = sh.vocab_size, lanes = cpu::kCrossEntropySimdLanes;
    const std::string tag = format_message("cross_entropy N=64 Vl=%ld vocab %ld", static_cast<long>(sh.Vl),
                                           static_cast<long>(V));
    results.push_back(compare_tensors(tag, "f32 row_max vs f64", c32.row_max, c64.row_max, exact()));
    results.push_back(compare_tensors(tag, "f32 target_logit vs f64", c32.target_logit, c64.target_logit, exact()));
    results.push_back(compare_tensors(tag, "f32 losses vs f64", c32.losses, c64.losses,
                                      for_lane_reduction(DType::kF32, V, lanes, 1.0, kExpF32Ulps)));
    results.push_back(compare_tensors(tag, "f32 dlogits vs f64", d32, d64,
                                      for_lane_reduction(DType::kF32, V, lanes, c64.dloss, kExpF32Ulps + 3.0)));
  }
  return results;
}

}  // namespace om
