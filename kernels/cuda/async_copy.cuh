// Asynchronous global → shared memory copies (PTX cp.async, sm_80 and later), so a kernel can fetch its
// next tile while it computes on the current one. Under the CPU emulator (cuda_emu/device.h defines
// OM_CUDA_EMULATOR) they are om_emu::cp_async*, which perform a thread's copies only when it waits, so a
// read before the wait shows there as the stale data it may see on a GPU.
// Contract, per thread: cp_async_16 calls, then cp_async_commit closes them into a group; cp_async_wait<N>
// returns once all but the N most recent groups have landed in shared memory. The data is visible to the
// other threads of the block only after a __syncthreads that follows the wait.
// REQUIRES: included only from .cu files.
#pragma once

#include <cstdint>

namespace om::cuda {

// 16 bytes from global src to shared dst (both 16-byte aligned); when !valid, 16 zero bytes instead and src
// is not read (it must still be a valid global address).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
#ifdef OM_CUDA_EMULATOR
  om_emu::cp_async(dst, src, 16, valid ? 16 : 0);
#else
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef OM_CUDA_EMULATOR
  om_emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#ifdef OM_CUDA_EMULATOR
  om_emu::cp_async_wait(kPending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

}  // namespace om::cuda
