// Kernel checks: per op family, gradient checks against central differences in f64 on tiny shapes,
// and f32-vs-f64 agreement at a realistic shape, each returning CheckResults. tests/kernels asserts
// them; ortho_selfcheck runs them all and prints a table (the README's first command).
// Each check_<op> lives in kernels/check/<op>_check.cc and is deterministic (fixed seeds).
#pragma once

#include <span>

#include "kernels/check/gradcheck.h"

namespace om {

CheckList check_embedding();
CheckList check_rmsnorm();
CheckList check_rope();
CheckList check_matmul();
CheckList check_attention();
CheckList check_swiglu();
CheckList check_cross_entropy();
CheckList check_adamw();
CheckList check_block_rotate();
CheckList check_sum_squares();
CheckList check_residual();

struct KernelCheck {
  const char* op;
  CheckList (*run)();
};
// Every check above, in the order the self-check prints them.
std::span<const KernelCheck> all_kernel_checks();

}  // namespace om
