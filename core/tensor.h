// TensorView / ConstTensorView: named, non-owning views of memory owned by a Buffer or Arena.
// A view is a small POD (pointer, dtype, shape, strides in elements, device, name); copying it
// copies no data. The name points at storage owned by whoever made the view (an Arena interns
// its names, string literals are fine); it appears in every shape/dtype error message.
// Shapes are row-major; strides are in elements, not bytes. Up to kMaxDims dimensions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "core/check.h"
#include "core/device.h"
#include "core/dtype.h"

namespace om {

inline constexpr int kMaxDims = 6;

struct Shape {
  int ndim = 0;
  int64_t dims[kMaxDims] = {};

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    OM_CHECK(d.size() <= kMaxDims, "Shape with %zu dims exceeds kMaxDims=%d", d.size(), kMaxDims);
    for (int64_t v : d) dims[ndim++] = v;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t& operator[](int i) { return dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= dims[i];
    return n;
  }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; ++i)
      if (a.dims[i] != b.dims[i]) return false;
    return true;
  }
  std::string ToString() const;  // "(2, 5, 8)"
};

// Row-major (contiguous) strides for `shape`, in elements.
Shape contiguous_strides(const Shape& shape);

template <typename Ptr>
struct BasicTensorView {
  Ptr data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  Shape strides;  // in elements
  Device device;
  const char* name = "";

  int ndim() const { return shape.ndim; }
  int64_t dim(int i) const { return shape.dims[i < 0 ? i + shape.ndim : i]; }
  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool empty() const { return data == nullptr; }
  bool is_contiguous() const { return strides == contiguous_strides(shape); }

  // Typed pointer; OM_CHECKs that T matches dtype.
  template <typename T>
  auto data_as() const {
    OM_CHECK(DTypeOf<std::remove_const_t<T>>::value == dtype, "tensor '%s' is %s, accessed as %s", name,
             dtype_name(dtype).data(), dtype_name(DTypeOf<std::remove_const_t<T>>::value).data());
    if constexpr (std::is_const_v<std::remove_pointer_t<Ptr>>) {
      return static_cast<const std::remove_const_t<T>*>(data);
    } else {
      return static_cast<T*>(data);
    }
  }
  // "'name' f32 (2, 5, 8) on cpu"
  std::string ToString() const;
};

using TensorView = BasicTensorView<void*>;
struct ConstTensorView : BasicTensorView<const void*> {
  ConstTensorView() = default;
  ConstTensorView(const TensorView& v)  // NOLINT: a mutable view is usable where a const one is
      : BasicTensorView<const void*>{v.data, v.dtype, v.shape, v.strides, v.device, v.name} {}
  ConstTensorView(const BasicTensorView<const void*>& v) : BasicTensorView<const void*>(v) {}
};

// Wraps contiguous memory in a view (no ownership).
TensorView make_view(void* data, DType dtype, Shape shape, Device device, const char* name);
ConstTensorView make_view(const void* data, DType dtype, Shape shape, Device device, const char* name);

// Same data, new contiguous shape with the same numel (OM_CHECKs both).
TensorView reshape(const TensorView& v, Shape shape);
ConstTensorView reshape(const ConstTensorView& v, Shape shape);

}  // namespace om
