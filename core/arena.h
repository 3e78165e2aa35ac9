// Arena: one Buffer, many named views carved from it in order ("malloc and point", typed).
// Parameters, gradients, optimizer state and activations each get one arena, sized once for the
// largest micro-batch (use Arena::BytesFor to plan). Views stay valid until the Arena is destroyed
// or Reset(); the Arena owns the views' name strings. Every view starts at a 256-byte boundary.
// Thread safety: Carve is not thread-safe; views may be used from any thread.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/tensor.h"

namespace om {

class Arena {
 public:
  Arena() = default;
  Arena(Device device, size_t capacity_bytes, const char* label);
  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;

  // Bytes one Carve of (dtype, shape) consumes, alignment included.
  static size_t BytesFor(DType dtype, const Shape& shape);

  // A zero-initialised-at-construction, contiguous view. OutOfRange when it does not fit:
  // the message names the view, the request and what is left.
  StatusOr<TensorView> TryCarve(std::string_view name, DType dtype, Shape shape);
  // The same; running out of space is a sizing bug here, so it is fatal.
  TensorView Carve(std::string_view name, DType dtype, Shape shape);

  void Reset();  // forgets every view; the memory is reused by later Carves
  size_t used() const { return offset_; }
  size_t capacity() const { return buffer_.size(); }
  Device device() const { return buffer_.device(); }
  const Buffer& buffer() const { return buffer_; }

 private:
  Buffer buffer_;
  size_t offset_ = 0;
  std::deque<std::string> names_;  // deque: stable addresses for the views' name pointers
};

}  // namespace om
