// Checks for kernels/rmsnorm.h: both variants, gradients against central differences in f64
// (N=10, C=8), then the f32 kernel against the f64 kernel at a training-like shape (N=64, C=768).
#include "kernels/check/checks.h"
#include "kernels/rmsnorm.h"

namespace om {
namespace {

const char* kind_name(NormKind k) { return k == NormKind::kRmsNormS ? "rmsnorm-s" : "rmsnorm"; }

struct RmsNormCase {
  HostTensor inp, weight, out, rstd;
  RmsNormCase(DType dt, int64_t N, int64_t C, NormKind kind, uint64_t seed)
      : inp("inp", dt, {N, C}),
        weight("weight", dt, kind == NormKind::kRmsNormS ? Shape{1} : Shape{C}),
        out("out", dt, {N, C}),
        rstd("rstd", dt, {N}) {
    inp.FillNormal(Rng(seed, "rmsnorm/inp"), 0, 1.0);
    weight.FillUniform(Rng(seed, "rmsnorm/weight"), 0, 0.5, 1.5);
  }
  void forward(NormKind kind) {
    rmsnorm_forward(ExecContext{}, {out.view(), rstd.view(), inp.view(), weight.view(), kind});
  }
};

CheckList check_kind(NormKind kind) {
  CheckList results;
  const std::string op = kind_name(kind);
  {  // Gradients in f64 against central differences.
    const int64_t N = 10, C = 8;
    RmsNormCase c(DType::kF64, N, C, kind, 1);
    HostTensor dout("dout", DType::kF64, {N, C});
    dout.FillNormal(Rng(1, "rmsnorm/dout"), 0, 1.0);
    c.forward(kind);
    double scale = 0.0;
    weighted_sum(c.out, dout, &scale);
    HostTensor dinp("dinp", DType::kF64, {N, C});
    HostTensor dweight("dweight", DType::kF64, c.weight.shape());
    rmsnorm_backward(ExecContext{}, {dinp.view(), dweight.view(), dout.view(), c.inp.view(), c.weight.view(),
                                     c.rstd.view(), kind});
    auto loss = [&] {
      c.forward(kind);
      return weighted_sum(c.out, dout);
    };
    const std::string tag = op + " N=10 C=8 f64";
    results.push_back(finite_difference_check(tag, "dinp vs central differences", c.inp, dinp, loss, scale));
    results.push_back(finite_difference_check(tag, "dweight vs central differences", c.weight, dweight, loss, scale));
  }
  {  // f32 kernel against the f64 kernel on the same (f32-representable) inputs.
    const int64_t N = 64, C = 768;
    RmsNormCase c32(DType::kF32, N, C, kind, 2);
    RmsNormCase c64(DType::kF64, N, C, kind, 2);
    c64.inp = c32.inp.Converted(DType::kF64);
    c64.weight = c32.weight.Converted(DType::kF64);
    c32.forward(kind);
    c64.forward(kind);
    // out = x * rsqrt(sum x^2 / C) * g: a length-C reduction of squares perturbs rstd by at most
    // C*eps relative, so |d out| <= C * eps * |out|; bounded with max |out|.
    results.push_back(compare_tensors(op + " N=64 C=768", "f32 out vs f64", c32.out, c64.out,
                                      for_reduction(DType::kF32, C, c64.out.max_abs())));
  }
  return results;
}

}  // namespace

CheckList check_rmsnorm() {
  CheckList all = check_kind(NormKind::kRmsNorm);
  for (CheckResult& r : check_kind(NormKind::kRmsNormS)) all.push_back(std::move(r));
  return all;
}

}  // namespace om
