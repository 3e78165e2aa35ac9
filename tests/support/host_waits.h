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

// What the emulator counts so far (cuda_emu/emu.h); -1 each in a GPU build, where they cannot be counted.
struct EmuCounts {
  // cuBLASLt heuristic queries: kernels/cuda/matmul.cu makes one per kind of GEMM call, then reuses the plan.
  int64_t lt_heuristic_calls = -1;
  // Batched GEMM calls with TF32 compute (kernels/cuda/block_rotate.cu under --ortho-precision tf32).
  int64_t tf32_gemm_calls = -1;
  // Device work issued by the host: kernels, copies, memsets, cuBLAS calls, collectives, a graph launch once.
  int64_t device_launches = -1;
};

inline EmuCounts emu_counts_now() {
#if OM_CUDA_EMULATION
  return EmuCounts{static_cast<int64_t>(om_emu::lt_heuristic_calls()), static_cast<int64_t>(om_emu::tf32_gemm_calls()),
                   static_cast<int64_t>(om_emu::device_launches())};
#else
  return EmuCounts{};
#endif
}

}  // namespace om
