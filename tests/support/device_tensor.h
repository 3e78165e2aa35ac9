// DeviceTensor: an owning, named tensor in CUDA memory for tests and benchmarks. Made by uploading
// a HostTensor (or zero-filled), passed to ops through view(), read back with Download().
// Move-only (it owns a Buffer). Views made before a move keep pointing at the old name string,
// as with HostTensor; make views after the tensor has its final home.
// Copies are synchronous (copy_bytes, i.e. cudaMemcpy on the legacy default stream): a Download
// sees every kernel issued on the default stream; synchronize any other stream first.
// REQUIRES: a CUDA build and a visible device (tests run under cuda_test_main or OM_REQUIRE_CUDA).
#pragma once

#include <string>

#include "core/buffer.h"
#include "core/tensor.h"
#include "kernels/check/host_tensor.h"

namespace om {

class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(std::string name, DType dtype, Shape shape, Device device = Device::Cuda(0));  // zero-filled
  // A device copy of `host`: same name, dtype, shape and bytes.
  static DeviceTensor Upload(const HostTensor& host, Device device = Device::Cuda(0));
  // The same, its data one element past the allocation's start (which is 256-byte aligned), so never 16-byte
  // aligned: for the kernels' element-by-element path (their 128-bit loads need 16-byte alignment).
  static DeviceTensor UploadMisaligned(const HostTensor& host, Device device = Device::Cuda(0));

  TensorView view();
  ConstTensorView view() const;
  ConstTensorView cview() const { return view(); }

  // Overwrites the contents with `host`'s bytes; dtype and shape must match (OM_CHECK).
  void CopyFrom(const HostTensor& host);
  // A host copy: same name, dtype, shape and bytes.
  HostTensor Download() const;

  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return buffer_.device(); }

 private:
  std::string name_;
  DType dtype_ = DType::kF32;
  Shape shape_;
  Buffer buffer_;
  size_t offset_ = 0;  // bytes from buffer_'s start to the data
};

}  // namespace om
