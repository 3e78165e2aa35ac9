// The host's waits for the GPU, counted two ways for the CUDA tests: core/buffer.h synchronous_calls
// (the project's own waits: synchronize, copy_bytes, plain device Buffers' cudaMalloc / cudaFree) and,
// in a CUDA emulator build, every CUDA runtime call that waits (om_emu::host_waits, cuda_emu/emu.h),
// which also sees a wait that bypasses core/buffer.h, such as a raw cudaStreamSynchronize in a backend.
// In a GPU build the second count is the first. Also the cuBLASLt heuristic queries and the launches,
// on the emulator.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#if OM_CUDA_EMULATION
#include "cuda_emu/emu.h"
#endif

namespace om {

struct HostWaits {
  uint64_t counted = 0;  // synchronous_calls()
  uint64_t runtime = 0;  // om_emu::host_waits() on the emulator, else = counted
};

inline HostWaits host_waits_now() {
#if OM_CUDA_EMULATION
  return HostWaits{synchronous_calls(), om_emu::host_waits()};
#else
  return HostWaits{synchronous_calls(), synchronous_calls()};
#endif
}

// cuBLASLt heuristic queries so far (om_emu::lt_heuristic_calls on the emulator; -1 in a GPU build, where
// they cannot be counted): kernels/cuda/matmul.cu makes one per kind of GEMM call, then reuses the plan.
inline int64_t lt_heuristic_calls_now() {
#if OM_CUDA_EMULATION
  return static_cast<int64_t>(om_emu::lt_heuristic_calls());
#else
  return -1;
#endif
}

// Device work issued by the host so far (om_emu::device_launches on the emulator: kernels, copies, memsets,
// cuBLAS calls, collectives, a graph launch once; -1 in a GPU build, where they cannot be counted).
inline int64_t device_launches_now() {
#if OM_CUDA_EMULATION
  return static_cast<int64_t>(om_emu::device_launches());
#else
  return -1;
#endif
}

}  // namespace om
