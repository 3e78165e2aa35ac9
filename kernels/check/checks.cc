#include "kernels/check/checks.h"

namespace om {

std::span<const KernelCheck> all_kernel_checks() {
  static const KernelCheck kChecks[] = {
      {"rmsnorm", check_rmsnorm},
  };
  return kChecks;
}

}  // namespace om
