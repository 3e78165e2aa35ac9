// CPU reference for the residual add (kernels/residual.h), templated on the float type.
// Element j of out is computed from element j of a and b alone, so out may alias a or b: no
// restrict qualifiers here, on purpose.
#include "kernels/residual.h"

namespace om::cpu {
namespace {

template <typename T>
void forward_impl(const ResidualArgs& args) {
  const int64_t n = args.a.numel();
  const T* a = args.a.data_as<const T>();
  const T* b = args.b.data_as<const T>();
  T* out = args.out.data_as<T>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace

void residual_forward(const ResidualArgs& args) {
  if (args.a.dtype == DType::kF64) return forward_impl<double>(args);
  forward_impl<float>(args);
}

}  // namespace om::cpu
