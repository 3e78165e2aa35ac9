// Checks for kernels/residual.h: the identity backward (d a = d b = d out) against central
// differences in f64 (N=10, C=8); exactness on small integers in f32; in-place (out aliasing a or b)
// equal to out-of-place bit for bit; f32 against f64 at a training-like shape (N=2048, C=256).
#include "kernels/check/checks.h"
#include "kernels/residual.h"

namespace om {
namespace {

struct ResidualCase {
  HostTensor a, b, out;
  ResidualCase(DType dt, int64_t N, int64_t C, uint64_t seed)
      : a("a", dt, {N, C}), b("b", dt, {N, C}), out("out", dt, {N, C}) {
    a.FillNormal(Rng(seed, "residual/a"), 0, 1.0);
    b.FillNormal(Rng(seed, "residual/b"), 0, 1.0);
  }
  void forward() { residual_forward(ExecContext{}, {out.view(), a.view(), b.view()}); }
};

}  // namespace

CheckList check_residual() {
  CheckList results;
  {  // The backward is the identity: d(sum out * w)/da = d(...)/db = w.
    const int64_t N = 10, C = 8;
    ResidualCase c(DType::kF64, N, C, 1);
    HostTensor w("dout", DType::kF64, {N, C});
    w.FillNormal(Rng(1, "residual/dout"), 0, 1.0);
    c.forward();
    double scale = 0.0;
    weighted_sum(c.out, w, &scale);
    auto loss = [&] {
      c.forward();
      return weighted_sum(c.out, w);
    };
    const std::string tag = "residual N=10 C=8 f64";
    results.push_back(finite_difference_check(tag, "da = dout vs central differences", c.a, w, loss, scale));
    results.push_back(finite_difference_check(tag, "db = dout vs central differences", c.b, w, loss, scale));
  }
  {  // Rule 1: integers in [-1000, 1000] and their sums are exact in f32.
    const int64_t N = 7, C = 33;
    HostTensor a("a", DType::kF32, {N, C}), b("b", DType::kF32, {N, C}), out("out", DType::kF32, {N, C}),
        want("a + b", DType::kF64, {N, C});
    const Rng ra(3, "residual/int_a"), rb(3, "residual/int_b");
    for (int64_t i = 0; i < N * C; ++i) {
      a.set(i, static_cast<double>(static_cast<int>(ra.Uniform(i) * 2001.0f) - 1000));
      b.set(i, static_cast<double>(static_cast<int>(rb.Uniform(i) * 2001.0f) - 1000));
      want.set(i, a.get(i) + b.get(i));
    }
    residual_forward(ExecContext{}, {out.view(), a.view(), b.view()});
    results.push_back(compare_tensors("residual N=7 C=33 f32", "integer sums exact", out, want, exact()));
  }
  {  // In place: out aliasing a, then out aliasing b, each equals the out-of-place result exactly.
    const int64_t N = 9, C = 17;
    ResidualCase c(DType::kF32, N, C, 4);
    c.forward();
    HostTensor in_a = c.a.Clone("a += b"), in_b = c.b.Clone("b += a");
    residual_forward(ExecContext{}, {in_a.view(), in_a.view(), c.b.view()});
    residual_forward(ExecContext{}, {in_b.view(), c.a.view(), in_b.view()});
    results.push_back(compare_tensors("residual N=9 C=17 f32", "out aliasing a equals out-of-place", in_a, c.out,
                                      exact()));
    results.push_back(compare_tensors("residual N=9 C=17 f32", "out aliasing b equals out-of-place", in_b, c.out,
                                      exact()));
  }
  {  // f32 against f64 on the same (f32-representable) inputs.
    const int64_t N = 2048, C = 256;
    ResidualCase c32(DType::kF32, N, C, 2);
    ResidualCase c64(DType::kF64, N, C, 2);
    c64.a = c32.a.Converted(DType::kF64);
    c64.b = c32.b.Converted(DType::kF64);
    c32.forward();
    c64.forward();
    // One rounding of the exact sum: |err| <= eps/2 * |a + b|, inside the 8-ulp rtol (reduce_len 1).
    results.push_back(compare_tensors("residual N=2048 C=256", "f32 out vs f64", c32.out, c64.out,
                                      for_reduction(DType::kF32, 1, c64.out.max_abs())));
  }
  return results;
}

}  // namespace om
