// CPU-only build: there is no CUDA runtime; asking for CUDA memory is an Unavailable Status,
// and code that reaches a CUDA copy without having allocated CUDA memory is a bug.
#include "core/buffer.h"

namespace om::device_memory {

Status cuda_malloc(void** ptr, size_t bytes, int device_index) {
  *ptr = nullptr;
  return Status::Unavailable(
      "this binary was built without CUDA (OM_WITH_CUDA=OFF); rebuild with -DOM_WITH_CUDA=ON or use --device cpu");
}
void cuda_free(void*, int) noexcept {}
void cuda_memset_zero(void*, size_t, int) { OM_CHECK(false, "CUDA memset in a CPU-only build"); }
void cuda_memcpy(void*, const void*, size_t) { OM_CHECK(false, "CUDA memcpy in a CPU-only build"); }
int cuda_device_count() { return 0; }

}  // namespace om::device_memory
