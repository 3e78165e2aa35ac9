// Global gradient norm and the clipping coefficient (optim/grad_clip.h).
#include "optim/grad_clip.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/buffer.h"
#include "kernels/sum_squares.h"

namespace om {

double global_grad_norm(std::span<const Parameter> params) {
  if (params.empty()) return 0.0;
  // One f64 accumulator on the gradients' device, summed into in parameter order: the result is a
  // fixed function of the gradients (sum_squares is itself thread-count invariant), so the norm a
  // run logs is reproducible and a resumed run clips identically.
  const Device device = params.front().grad.device;
  Buffer acc = Buffer::Allocate(device, sizeof(double), "grad_norm_sq");
  acc.Zero();
  const TensorView sum_sq = make_view(acc.data(), DType::kF64, {1}, device, "grad_norm_sq");
  const ExecContext ctx{device, Stream{}};
  for (const Parameter& p : params) sum_squares(ctx, {sum_sq, p.grad});
  double host = 0.0;
  copy_bytes(&host, Device::Cpu(), acc.data(), device, sizeof(double));
  return std::sqrt(host);
}

float clip_coefficient(double grad_norm, float max_norm) {
  if (!(max_norm > 0.0f)) return 1.0f;  // clipping off (--clip-grad 0)
  // A NaN or infinite norm gives a NaN coefficient rather than 1 (std::min(1, NaN) would hide it)
  // or 0 (max/inf, which would silently turn the step into pure weight decay). A step taken with it
  // poisons every parameter visibly; the trainer checks the norm first and skips or stops.
  if (!std::isfinite(grad_norm)) return std::numeric_limits<float>::quiet_NaN();
  return static_cast<float>(std::min(1.0, static_cast<double>(max_norm) / (grad_norm + 1e-6)));
}

}  // namespace om
