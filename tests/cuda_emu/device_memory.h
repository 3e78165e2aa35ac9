// Device memory for the emulator's own tests (emulator_test.cu, device_test.cu): allocate n elements,
// download n floats. A failed CUDA call is a googletest failure of the calling test.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace om::emu_test {

// n uninitialised elements of T (the emulator fills fresh device memory with NaN bytes).
template <typename T>
T* device_alloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

// d[0..n) copied to the host.
inline std::vector<float> download(const float* d, size_t n) {
  std::vector<float> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

}  // namespace om::emu_test
