#include "kernels/check/checks.h"

namespace om {

std::span<const KernelCheck> all_kernel_checks() {
  // In the order a forward pass meets the ops, then the optimizer's.
  static const KernelCheck kChecks[] = {
      {"embedding", check_embedding},   {"rmsnorm", check_rmsnorm},
      {"matmul", check_matmul},         {"rope", check_rope},
      {"attention", check_attention},   {"residual", check_residual},
      {"swiglu", check_swiglu},         {"cross_entropy", check_cross_entropy},
      {"adamw", check_adamw},           {"block_rotate", check_block_rotate},
      {"sum_squares", check_sum_squares},
  };
  return kChecks;
}

}  // namespace om
