#include "kernels/check/host_tensor.h"

#include <cmath>
#include <cstring>

namespace om {

HostTensor::HostTensor(std::string name, DType dtype, Shape shape)
    : name_(std::move(name)),
      dtype_(dtype),
      shape_(shape),
      buffer_(Buffer::Allocate(Device::Cpu(), static_cast<size_t>(shape.numel()) * dtype_size(dtype), name_.c_str())) {
  buffer_.Zero();
}

TensorView HostTensor::view() { return make_view(buffer_.data(), dtype_, shape_, Device::Cpu(), name_.c_str()); }
ConstTensorView HostTensor::view() const {
  return make_view(static_cast<const void*>(buffer_.data()), dtype_, shape_, Device::Cpu(), name_.c_str());
}

double HostTensor::get(int64_t i) const {
  OM_CHECK(i >= 0 && i < numel(), "HostTensor '%s': index %ld out of range %ld", name_.c_str(), static_cast<long>(i),
           static_cast<long>(numel()));
  const void* p = buffer_.data();
  switch (dtype_) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF64: return static_cast<const double*>(p)[i];
    case DType::kBF16: return bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kU16: return static_cast<const uint16_t*>(p)[i];
    case DType::kU32: return static_cast<const uint32_t*>(p)[i];
  }
  return 0.0;
}

void HostTensor::set(int64_t i, double v) {
  OM_CHECK(i >= 0 && i < numel(), "HostTensor '%s': index %ld out of range %ld", name_.c_str(), static_cast<long>(i),
           static_cast<long>(numel()));
  void* p = buffer_.data();
  switch (dtype_) {
    case DType::kF32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case DType::kF64: static_cast<double*>(p)[i] = v; return;
    case DType::kBF16: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits(static_cast<float>(v)); return;
    case DType::kI32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); return;
    case DType::kI64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); return;
    case DType::kU16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v); return;
    case DType::kU32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); return;
  }
}

double HostTensor::max_abs() const {
  double m = 0.0;
  for (int64_t i = 0; i < numel(); ++i) m = std::max(m, std::fabs(get(i)));
  return m;
}

double max_abs_diff(const HostTensor& a, const HostTensor& b) {
  OM_CHECK(a.numel() == b.numel(), "max_abs_diff: '%s' has %ld elements, '%s' %ld", a.name().c_str(),
           static_cast<long>(a.numel()), b.name().c_str(), static_cast<long>(b.numel()));
  double m = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.get(i) - b.get(i)));
  return m;
}

bool bitwise_equal(const HostTensor& a, const HostTensor& b) {
  // memcmp needs valid pointers even for 0 bytes, and an empty tensor has none.
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.view().nbytes() == 0 || std::memcmp(a.view().data, b.view().data, a.view().nbytes()) == 0);
}

HostTensor columns(const HostTensor& x, int64_t begin, int64_t end, const std::string& name) {
  const int64_t N = x.shape()[0], V = x.shape()[1], W = end - begin;
  HostTensor out(name, x.dtype(), {N, W});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) out.set(n * W + j, x.get(n * V + begin + j));
  return out;
}

HostTensor HostTensor::Converted(DType dtype, std::string name) const {
  HostTensor out(name.empty() ? name_ : std::move(name), dtype, shape_);
  if (dtype == dtype_) {
    std::memcpy(out.buffer_.data(), buffer_.data(), buffer_.size());
  } else {
    for (int64_t i = 0; i < numel(); ++i) out.set(i, get(i));
  }
  return out;
}

void HostTensor::FillNormal(const Rng& rng, uint64_t offset, double stddev) {
  for (int64_t i = 0; i < numel(); ++i) set(i, stddev * rng.NormalDouble(offset + static_cast<uint64_t>(i)));
}

void HostTensor::FillUniform(const Rng& rng, uint64_t offset, double lo, double hi) {
  for (int64_t i = 0; i < numel(); ++i) set(i, lo + (hi - lo) * rng.UniformDouble(offset + static_cast<uint64_t>(i)));
}

void HostTensor::Fill(double value) {
  for (int64_t i = 0; i < numel(); ++i) set(i, value);
}

}  // namespace om
