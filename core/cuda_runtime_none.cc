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
Status cuda_malloc_async(void** ptr, size_t bytes, int device_index, void*) { return cuda_malloc(ptr, bytes, device_index); }
void cuda_free_async(void*, int, void*) noexcept {}
void cuda_memcpy_async(void*, const void*, size_t, void*) { OM_CHECK(false, "CUDA memcpy in a CPU-only build"); }
void cuda_memset_zero_async(void*, size_t, int, void*) { OM_CHECK(false, "CUDA memset in a CPU-only build"); }
void cuda_stream_synchronize(int, void*) { OM_CHECK(false, "CUDA stream synchronization in a CPU-only build"); }
void* cuda_event_create() {
  OM_CHECK(false, "CUDA event in a CPU-only build");
  return nullptr;
}
void cuda_event_record(void*, void*) { OM_CHECK(false, "CUDA event in a CPU-only build"); }
double cuda_event_elapsed_s(void*, void*) {
  OM_CHECK(false, "CUDA event in a CPU-only build");
  return 0.0;
}
void* cuda_malloc_host(size_t) { return nullptr; }
void cuda_free_host(void*) noexcept {}
int cuda_device_count() { return 0; }
Status cuda_mem_get_info(int, size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = 0;
  return Status::Unavailable("this binary was built without CUDA (OM_WITH_CUDA=OFF)");
}
void* cuda_stream_create(int) {
  OM_CHECK(false, "CUDA stream in a CPU-only build");
  return nullptr;
}
void cuda_stream_destroy(void*) noexcept {}
void* cuda_sync_event_create() {
  OM_CHECK(false, "CUDA event in a CPU-only build");
  return nullptr;
}
void cuda_event_destroy(void*) noexcept {}
void cuda_stream_join(void*, void*, void*) { OM_CHECK(false, "CUDA stream in a CPU-only build"); }
void cuda_graph_begin_capture(void*) { OM_CHECK(false, "CUDA graph in a CPU-only build"); }
void* cuda_graph_end_capture(void*, std::string*) {
  OM_CHECK(false, "CUDA graph in a CPU-only build");
  return nullptr;
}
void cuda_graph_launch(void*, void*) { OM_CHECK(false, "CUDA graph in a CPU-only build"); }
void cuda_graph_destroy(void*) noexcept {}

}  // namespace om::device_memory
