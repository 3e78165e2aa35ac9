// cpu::exp_f32_array (kernels/cpu/exp_f32.h): the shared f32 exp over an array, multi-versioned like
// the kernels' row loops so that its accuracy test measures the clone the kernels run.
#include "kernels/cpu/exp_f32.h"

namespace om::cpu {
namespace {

OM_ROW_LOOP_CLONES void exp_rounded_loop(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i] - shift);
}

OM_ROW_LOOP_CLONES void exp_exact_loop(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_shifted_f32(x[i], shift);
}

}  // namespace

void exp_f32_array(const ExpF32ArrayArgs& a) {
  switch (a.form) {
    case ExpShift::kRounded: return exp_rounded_loop(a.x, a.shift, a.y, a.n);
    case ExpShift::kExact: return exp_exact_loop(a.x, a.shift, a.y, a.n);
  }
}

}  // namespace om::cpu
