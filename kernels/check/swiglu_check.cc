// Checks for kernels/swiglu.h: dgate_up against central differences in f64 (N=10, F=8), then the
// f32 kernel against the f64 kernel, forward and backward, at a training-like shape (N=512, F=768).
// Gates are drawn with stddev 2 so that both tails and the curved middle of silu are exercised.
#include <algorithm>
#include <cmath>

#include "kernels/check/checks.h"
#include "kernels/swiglu.h"

namespace om {
namespace {

struct SwigluCase {
  HostTensor gate_up, out, dout, dgate_up;
  SwigluCase(DType dt, int64_t N, int64_t F, uint64_t seed)
      : gate_up("gate_up", dt, {N, 2 * F}),
        out("out", dt, {N, F}),
        dout("dout", dt, {N, F}),
        dgate_up("dgate_up", dt, {N, 2 * F}) {
    gate_up.FillNormal(Rng(seed, "swiglu/gate_up"), 0, 2.0);
    dout.FillNormal(Rng(seed, "swiglu/dout"), 0, 1.0);
  }
  void forward() { swiglu_forward(ExecContext{}, {out.view(), gate_up.view()}); }
  void backward() { swiglu_backward(ExecContext{}, {dgate_up.view(), dout.view(), gate_up.view()}); }
};

// max over (n, f) of |dout * up * s| * (1 + |gate * (1 - s)|), s = sigmoid(gate): the absolute sum of
// the two terms of dgate = dout * up * s * (1 + gate * (1 - s)) (see the f32 check below).
double dgate_abs_sum(const SwigluCase& c, int64_t N, int64_t F) {
  double m = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t f = 0; f < F; ++f) {
      const double g = c.gate_up.get(n * 2 * F + f), u = c.gate_up.get(n * 2 * F + F + f);
      const double s = 1.0 / (1.0 + std::exp(-g));
      m = std::max(m, std::fabs(c.dout.get(n * F + f) * u * s) * (1.0 + std::fabs(g * (1.0 - s))));
    }
  }
  return m;
}

}  // namespace

CheckList check_swiglu() {
  CheckList results;
  {  // Gradient in f64 against central differences.
    const int64_t N = 10, F = 8;
    SwigluCase c(DType::kF64, N, F, 1);
    c.forward();
    double scale = 0.0;
    weighted_sum(c.out, c.dout, &scale);
    c.backward();
    auto loss = [&] {
      c.forward();
      return weighted_sum(c.out, c.dout);
    };
    results.push_back(finite_difference_check("swiglu N=10 F=8 f64", "dgate_up vs central differences", c.gate_up,
                                              c.dgate_up, loss, scale));
  }
  {  // f32 kernel against the f64 kernel on the same (f32-representable) inputs.
    const int64_t N = 512, F = 768;
    SwigluCase c32(DType::kF32, N, F, 2);
    SwigluCase c64(DType::kF64, N, F, 2);
    c64.gate_up = c32.gate_up.Converted(DType::kF64);
    c64.dout = c32.dout.Converted(DType::kF64);
    c32.forward();
    c64.forward();
    c32.backward();
    c64.backward();
    const std::string tag = "swiglu N=512 F=768";
    // out = g * sigmoid(g) * u is a chain of ~6 roundings (exp, add, divide, multiplies) and no sum:
    // relative error <= 6 * eps/2, inside the 8-ulp rtol (reduce_len 1). The absolute floor
    // eps * max|out| covers outputs whose sigmoid underflows for very negative gates.
    results.push_back(
        compare_tensors(tag, "f32 out vs f64", c32.out, c64.out, for_reduction(DType::kF32, 1, c64.out.max_abs())));
    // dup = dout * g * s is a product (relative error, as above). dgate = dout * u * s * (1 + g * (1 - s))
    // contains a two-term sum that cancels where silu' = 0 (g near -1.28), so its error is absolute:
    // eps * (1 + |g (1 - s)|) per unit of |dout u s|; with reduce_len 2 this bounds both halves.
    results.push_back(compare_tensors(tag, "f32 dgate_up vs f64", c32.dgate_up, c64.dgate_up,
                                      for_reduction(DType::kF32, 2, dgate_abs_sum(c64, N, F))));
  }
  return results;
}

}  // namespace om
