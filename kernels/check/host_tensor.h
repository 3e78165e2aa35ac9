// HostTensor: an owning, named CPU tensor for checks, tests, benchmarks and the self-check.
// Wraps a Buffer; move-only. Element access as double works for every dtype (bf16 included).
#pragma once

#include <string>

#include "core/buffer.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace om {

class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(std::string name, DType dtype, Shape shape);  // zero-filled

  TensorView view();
  ConstTensorView view() const;
  ConstTensorView cview() const { return view(); }
  template <typename T>
  T* data() { return view().data_as<T>(); }
  template <typename T>
  const T* data() const { return view().data_as<const T>(); }

  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }

  double get(int64_t i) const;       // element i (flat) converted to double
  void set(int64_t i, double value);  // element i (flat), rounded to dtype
  double max_abs() const;

  // A copy converted to `dtype` (f64 <-> f32 <-> bf16; integers copy values).
  HostTensor Converted(DType dtype, std::string name = "") const;
  HostTensor Clone(std::string name = "") const { return Converted(dtype_, std::move(name)); }
  // Element i = draw(offset + i) from `rng`, rounded to dtype.
  void FillNormal(const Rng& rng, uint64_t offset, double stddev);
  void FillUniform(const Rng& rng, uint64_t offset, double lo, double hi);
  void Fill(double value);

 private:
  std::string name_;
  DType dtype_ = DType::kF32;
  Shape shape_;
  Buffer buffer_;
};

// max_i |a_i − b_i| over the elements as doubles. REQUIRES: equal numel.
double max_abs_diff(const HostTensor& a, const HostTensor& b);
// Same dtype, shape and bytes.
bool bitwise_equal(const HostTensor& a, const HostTensor& b);
// Columns [begin, end) of a 2-D (N, V) tensor, as a new (N, end − begin) tensor named `name` (a vocabulary
// shard of logits, for example).
HostTensor columns(const HostTensor& x, int64_t begin, int64_t end, const std::string& name);

}  // namespace om
