#include "core/tensor.h"

namespace om {

std::string Shape::ToString() const {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}

Shape contiguous_strides(const Shape& shape) {
  Shape s;
  s.ndim = shape.ndim;
  int64_t stride = 1;
  for (int i = shape.ndim - 1; i >= 0; --i) {
    s.dims[i] = stride;
    stride *= shape.dims[i];
  }
  return s;
}

template <typename Ptr>
std::string BasicTensorView<Ptr>::ToString() const {
  return std::string("'") + name + "' " + std::string(dtype_name(dtype)) + " " + shape.ToString() + " on " +
         device_name(device);
}
template struct BasicTensorView<void*>;
template struct BasicTensorView<const void*>;

TensorView make_view(void* data, DType dtype, Shape shape, Device device, const char* name) {
  return TensorView{data, dtype, shape, contiguous_strides(shape), device, name};
}
ConstTensorView make_view(const void* data, DType dtype, Shape shape, Device device, const char* name) {
  return ConstTensorView(BasicTensorView<const void*>{data, dtype, shape, contiguous_strides(shape), device, name});
}

template <typename View>
static View reshape_impl(const View& v, Shape shape) {
  OM_CHECK(v.is_contiguous(), "reshape of non-contiguous tensor %s", v.ToString().c_str());
  OM_CHECK(shape.numel() == v.numel(), "reshape of %s to %s changes the element count", v.ToString().c_str(),
           shape.ToString().c_str());
  View out = v;
  out.shape = shape;
  out.strides = contiguous_strides(shape);
  return out;
}
TensorView reshape(const TensorView& v, Shape shape) { return reshape_impl(v, shape); }
ConstTensorView reshape(const ConstTensorView& v, Shape shape) { return reshape_impl(v, shape); }

}  // namespace om
