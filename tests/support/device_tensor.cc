#include "tests/support/device_tensor.h"

namespace om {

DeviceTensor::DeviceTensor(std::string name, DType dtype, Shape shape, Device device)
    : name_(std::move(name)),
      dtype_(dtype),
      shape_(shape),
      buffer_(Buffer::Allocate(device, static_cast<size_t>(shape.numel()) * dtype_size(dtype), name_.c_str())) {
  OM_CHECK(device.kind == DeviceKind::kCuda, "DeviceTensor '%s' must live on a CUDA device, not %s", name_.c_str(),
           device_name(device).c_str());
  buffer_.Zero();
}

DeviceTensor DeviceTensor::Upload(const HostTensor& host, Device device) {
  DeviceTensor t(host.name(), host.dtype(), host.shape(), device);
  t.CopyFrom(host);
  return t;
}

DeviceTensor DeviceTensor::UploadMisaligned(const HostTensor& host, Device device) {
  const size_t es = dtype_size(host.dtype());
  DeviceTensor t(host.name(), host.dtype(), Shape{host.numel() + 1}, device);
  t.shape_ = host.shape();
  t.offset_ = es;
  t.CopyFrom(host);
  return t;
}

TensorView DeviceTensor::view() {
  return make_view(static_cast<char*>(buffer_.data()) + offset_, dtype_, shape_, buffer_.device(), name_.c_str());
}

ConstTensorView DeviceTensor::view() const {
  return make_view(static_cast<const void*>(static_cast<const char*>(buffer_.data()) + offset_), dtype_, shape_,
                   buffer_.device(), name_.c_str());
}

void DeviceTensor::CopyFrom(const HostTensor& host) {
  OM_CHECK(host.dtype() == dtype_ && host.shape() == shape_, "DeviceTensor '%s' %s %s: cannot copy from '%s' %s %s",
           name_.c_str(), std::string(dtype_name(dtype_)).c_str(), shape_.ToString().c_str(), host.name().c_str(),
           std::string(dtype_name(host.dtype())).c_str(), host.shape().ToString().c_str());
  copy_bytes(view().data, buffer_.device(), host.view().data, Device::Cpu(), host.view().nbytes());
}

HostTensor DeviceTensor::Download() const {
  HostTensor host(name_, dtype_, shape_);
  copy_bytes(host.view().data, Device::Cpu(), view().data, buffer_.device(), host.view().nbytes());
  return host;
}

}  // namespace om
