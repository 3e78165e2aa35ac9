// main() for CUDA test binaries: exits with kSkipReturnCode (ctest: skipped) when no CUDA device is
// usable, so CI on a GPU-less host still proves the binary links and loads.
#include <cstdio>

#include "core/device.h"
#include "tests/support/test_support.h"

int main(int argc, char** argv) {
  if (!om::cuda_available()) {
    std::printf("no CUDA device on this host: skipping %s\n", argv[0]);
    return om::kSkipReturnCode;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
