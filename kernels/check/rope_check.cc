// Checks for kernels/rope.h: the backward against central differences of the forward in f64
// (B=2, T=5, Hx=3, D=8, two rotated heads and one passed through), then the f32 kernel against the
// f64 kernel, forward and backward, at a training-like shape (B=4, T=256, fused qkv of 4 heads, D=64).
#include "kernels/check/checks.h"
#include "kernels/rope.h"

namespace om {
namespace {

// Applies the forward to a copy of x: the op works in place, the check needs x intact.
HostTensor rotated_copy(const HostTensor& x, int64_t n_rot_heads, const char* name) {
  HostTensor y = x.Clone(name);
  rope_forward(ExecContext{}, {y.view(), n_rot_heads});
  return y;
}

}  // namespace

CheckList check_rope() {
  CheckList results;
  {  // Gradient in f64 against central differences; head 2 is not rotated, its gradient is dout.
    const int64_t B = 2, T = 5, Hx = 3, D = 8, n_rot = 2;
    HostTensor x("x", DType::kF64, {B, T, Hx, D}), dout("dout", DType::kF64, {B, T, Hx, D});
    x.FillNormal(Rng(1, "rope/x"), 0, 1.0);
    dout.FillNormal(Rng(1, "rope/dout"), 0, 1.0);
    double scale = 0.0;
    weighted_sum(rotated_copy(x, n_rot, "y"), dout, &scale);
    HostTensor dx = dout.Clone("dx");
    rope_backward(ExecContext{}, {dx.view(), n_rot});
    auto loss = [&] { return weighted_sum(rotated_copy(x, n_rot, "y"), dout); };
    results.push_back(
        finite_difference_check("rope B=2 T=5 Hx=3 D=8 rot=2 f64", "dx vs central differences", x, dx, loss, scale));
  }
  {  // f32 kernel against the f64 kernel on the same (f32-representable) inputs.
    const int64_t B = 4, T = 256, H = 4, D = 64, n_rot = 2 * H;
    HostTensor x32("x", DType::kF32, {B, T, 3 * H, D});
    x32.FillNormal(Rng(2, "rope/x"), 0, 1.0);
    const HostTensor x64 = x32.Converted(DType::kF64);
    const std::string tag = "rope B=4 T=256 qkv H=4 D=64";
    // Every output is a sum of two products x[i]*cos, x[i+D/2]*sin formed in double, then rounded to
    // the output type once: two terms whose absolute values add up to at most 2 max|x|.
    const Tolerance tol = for_reduction(DType::kF32, 2, 2.0 * x64.max_abs());
    results.push_back(compare_tensors(tag, "f32 forward vs f64", rotated_copy(x32, n_rot, "y32"),
                                      rotated_copy(x64, n_rot, "y64"), tol));
    HostTensor g32 = x32.Clone("dx32"), g64 = x64.Clone("dx64");  // the same values, as gradients
    rope_backward(ExecContext{}, {g32.view(), n_rot});
    rope_backward(ExecContext{}, {g64.view(), n_rot});
    results.push_back(compare_tensors(tag, "f32 backward vs f64", g32, g64, tol));
  }
  return results;
}

}  // namespace om
