#include "core/arena.h"

namespace om {

Arena::Arena(Device device, size_t capacity_bytes, const char* label)
    : buffer_(Buffer::Allocate(device, capacity_bytes, label)) {
  buffer_.Zero();
}

size_t Arena::BytesFor(DType dtype, const Shape& shape) {
  size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

StatusOr<TensorView> Arena::TryCarve(std::string_view name, DType dtype, Shape shape) {
  for (int i = 0; i < shape.ndim; ++i) {
    if (shape.dims[i] < 0) {
      return Status::InvalidArgument(format_message("arena '%s': view '%.*s' has negative extent in shape %s",
                                                    buffer_.label().c_str(), static_cast<int>(name.size()),
                                                    name.data(), shape.ToString().c_str()));
    }
  }
  size_t need = BytesFor(dtype, shape);
  if (need > capacity() - offset_) {
    return Status::OutOfRange(format_message(
        "arena '%s' (%zu bytes, %zu used): view '%.*s' %s %s needs %zu bytes, only %zu left", buffer_.label().c_str(),
        capacity(), offset_, static_cast<int>(name.size()), name.data(), std::string(dtype_name(dtype)).c_str(),
        shape.ToString().c_str(), need, capacity() - offset_));
  }
  names_.emplace_back(name);
  TensorView v = make_view(static_cast<char*>(buffer_.data()) + offset_, dtype, shape, buffer_.device(),
                           names_.back().c_str());
  offset_ += need;
  return v;
}

TensorView Arena::Carve(std::string_view name, DType dtype, Shape shape) {
  StatusOr<TensorView> v = TryCarve(name, dtype, shape);
  OM_CHECK(v.ok(), "%s", v.status().ToString().c_str());
  return v.value();
}

void Arena::Reset() {
  offset_ = 0;
  names_.clear();
}

}  // namespace om
