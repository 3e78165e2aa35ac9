// Test helpers shared by every gtest binary.
#pragma once

#include <gtest/gtest.h>

#include "kernels/check/gradcheck.h"

namespace om {

// EXPECTs every result ok; a failure prints the result's full line (worst index, values, rule).
void expect_all_ok(const CheckList& results);

// The exit code ctest reads as "skipped" (SKIP_RETURN_CODE in cmake/OmHelpers.cmake).
inline constexpr int kSkipReturnCode = 77;

}  // namespace om

// Skips the current test when no CUDA device is usable (CPU-only build or no GPU on this host).
#define OM_REQUIRE_CUDA()                                                          \
  do {                                                                             \
    if (!::om::cuda_available()) GTEST_SKIP() << "no CUDA device on this host";    \
  } while (0)
