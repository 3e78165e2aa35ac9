// The CUDA emulator's CUB (cuda_emu/README.md): DeviceRadixSort::SortPairs, the one CUB call in
// kernels/cuda (embedding.cu). Same contract: a size query with d_temp_storage = nullptr, then a stable
// sort of (key, value) pairs by key bits [begin_bit, end_bit), queued like a kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "cuda_emu/emu.h"

namespace cub {

struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes, const K* keys_in, K* keys_out,
                               const V* values_in, V* values_out, int num_items, int begin_bit = 0,
                               int end_bit = static_cast<int>(sizeof(K) * 8), cudaStream_t stream = nullptr) {
    if (d_temp_storage == nullptr) {
      temp_storage_bytes = 256;
      return cudaSuccess;
    }
    if (num_items <= 0) return cudaSuccess;
    const size_t n = static_cast<size_t>(num_items);
    if (!om_emu::device_accessible(d_temp_storage, temp_storage_bytes) || !om_emu::device_accessible(keys_in, n * sizeof(K)) ||
        !om_emu::device_accessible(keys_out, n * sizeof(K)) || !om_emu::device_accessible(values_in, n * sizeof(V)) ||
        !om_emu::device_accessible(values_out, n * sizeof(V))) {
      om_emu::fail("cub::DeviceRadixSort::SortPairs: a buffer is not device memory of %zu items", n);
    }
    om_emu::enqueue(
        [=] {
          const uint64_t width = static_cast<uint64_t>(end_bit - begin_bit);
          const uint64_t mask = width >= 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
          auto bits = [&](K k) { return (static_cast<uint64_t>(k) >> begin_bit) & mask; };
          std::vector<size_t> order(n);
          std::iota(order.begin(), order.end(), size_t{0});
          std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bits(keys_in[a]) < bits(keys_in[b]); });
          std::vector<K> k(n);
          std::vector<V> v(n);
          for (size_t i = 0; i < n; ++i) {
            k[i] = keys_in[order[i]];
            v[i] = values_in[order[i]];
          }
          std::copy(k.begin(), k.end(), keys_out);
          std::copy(v.begin(), v.end(), values_out);
        },
        "cub::DeviceRadixSort::SortPairs", stream);
    return cudaSuccess;
  }
};

}  // namespace cub
