// CUDA block rotation (kernels/cuda/block_rotate.cu, cuBLAS batched GEMMs) against the CPU reference
// (kernels/cpu/block_rotate.cc) on the same inputs: x ~ N(0, 1) and Haar Q's (core/orthogonal.h),
// both rounded to f32, the dtype of the optimizer state the CUDA kernel takes. Shapes: one (1, 1)
// unit; one (3, 5) unit with blocks {2, 3}; a mixed batch (two (8, 8) units with blocks {4, 4}, so
// one shape group whose equal-width blocks share a batched call, plus (16, 24) {8, 16} and (5, 7)
// {7}); a realistic batch of four (256, 512) {256, 256} units. Asserted:
//   a. both directions against the f64 and the f32 CPU reference (rule 2, two chained GEMMs);
//   b. kInverse(kForward(x)) on the GPU returns x (rule 2: both directions' rounding plus the
//      measured orthogonality error of the f32 Q's);
//   c. bitwise determinism: the same batch twice, the second time on another stream;
//   d. the CUDA dtype contract (f32 only), naming the tensor;
//   e. RotatePrecision::kTF32 within its own bound of the f64 reference, and visibly coarser than fp32 on
//      the realistic batch (so the flag reaches the tensor cores).
// Runs under cuda_test_main (exit 77 without a GPU).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/orthogonal.h"
#include "kernels/block_rotate.h"
#include "kernels/check/gradcheck.h"
#include "kernels/check/rotation_unit.h"
#include "kernels/check/tolerance.h"
#include "tests/support/device_tensor.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr RotateDirection kFwd = RotateDirection::kForward, kInv = RotateDirection::kInverse;

struct UnitSpec {
  int64_t R;
  std::vector<int64_t> widths;  // K_b, Σ = K
};
struct Case {
  const char* name;
  std::vector<UnitSpec> units;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {"one (1, 1) unit", {{1, {1}}}},
      {"(3, 5) {2, 3}", {{3, {2, 3}}}},
      {"mixed batch", {{8, {4, 4}}, {8, {4, 4}}, {16, {8, 16}}, {5, {7}}}},
      {"4 x (256, 512) {256, 256}", {{256, {256, 256}}, {256, {256, 256}}, {256, {256, 256}}, {256, {256, 256}}}},
  };
  return kCases;
}

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }
const char* dir_name(RotateDirection d) { return d == kFwd ? "fwd" : "inv"; }

using HostUnit = HostRotationUnit;  // kernels/check/rotation_unit.h
using Batch = std::vector<HostUnit>;

std::string tag(const HostUnit& u, size_t i, const char* what) {
  std::string blocks;
  for (const HostTensor& q : u.q_c) {
    if (!blocks.empty()) blocks += ',';
    blocks += std::to_string(q.shape()[0]);
  }
  return format_message("block_rotate cuda unit %zu R=%ld K=%ld {%s} %s", i, static_cast<long>(u.R()),
                        static_cast<long>(u.K()), blocks.c_str(), what);
}

HostTensor haar_f32(int64_t n, const std::string& stream, const char* name) {
  const std::vector<double> q = haar_orthogonal(Rng(31, stream), n);
  HostTensor t(name, DType::kF32, {n, n});
  for (int64_t i = 0; i < n * n; ++i) t.set(i, q[static_cast<size_t>(i)]);  // rounded to f32 once
  return t;
}

// Case `c`'s batch in f32: x ~ N(0, 1), Haar Q's, each from its own named stream.
Batch make_batch(size_t c) {
  Batch units;
  for (size_t i = 0; i < cases()[c].units.size(); ++i) {
    const UnitSpec& s = cases()[c].units[i];
    const std::string id = format_message("cuda_block_rotate/%zu/%zu", c, i);
    int64_t K = 0;
    for (int64_t kb : s.widths) K += kb;
    HostUnit u{HostTensor("x", DType::kF32, {s.R, K}), haar_f32(s.R, id + "/q_r", "q_r"), {}};
    u.x.FillNormal(Rng(31, id + "/x"), 0, 1.0);
    for (size_t b = 0; b < s.widths.size(); ++b)
      u.q_c.push_back(haar_f32(s.widths[b], id + "/q_c/" + std::to_string(b), "q_c"));
    units.push_back(std::move(u));
  }
  return units;
}

Batch converted(const Batch& in, DType dt) {
  Batch out;
  for (const HostUnit& u : in) out.push_back(u.Converted(dt));
  return out;
}

void cpu_rotate(Batch& units, RotateDirection dir) {
  std::vector<RotationUnit> views;
  for (HostUnit& u : units) views.push_back(u.view());
  block_rotate(ExecContext{}, views, dir);
}

HostTensor abs_f64(const HostTensor& t) {
  HostTensor out(t.name(), DType::kF64, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) out.set(i, std::fabs(t.get(i)));
  return out;
}

// Per unit, max_ij of S = |Q_r|·|x_i|·|Q_c|ᵀ (forward) or |Q_r|ᵀ·|x_i|·|Q_c| (inverse), the abs_sum of
// rule 2 for a rotation of x_i; computed by the f64 CPU kernel on the absolute values (its own
// rounding, ~1e-16 relative, is far below what the bound is used for). Also returns S itself in *s.
std::vector<double> abs_rotation_max(const Batch& units, const std::vector<HostTensor>& xs, RotateDirection dir,
                                     std::vector<HostTensor>* s = nullptr) {
  Batch a;
  for (size_t i = 0; i < units.size(); ++i) {
    HostUnit u{abs_f64(xs[i]), abs_f64(units[i].q_r), {}};
    for (const HostTensor& q : units[i].q_c) u.q_c.push_back(abs_f64(q));
    a.push_back(std::move(u));
  }
  cpu_rotate(a, dir);
  std::vector<double> out;
  for (HostUnit& u : a) {
    out.push_back(u.x.max_abs());
    if (s != nullptr) s->push_back(std::move(u.x));
  }
  return out;
}

std::vector<HostTensor> xs_of(const Batch& units) {
  std::vector<HostTensor> xs;
  for (const HostUnit& u : units) xs.push_back(u.x.Clone("x"));
  return xs;
}

// Device copies of a batch; rotate in place there, read x back.
struct DeviceUnit {
  DeviceTensor x, q_r;
  std::vector<DeviceTensor> q_c;
};

std::vector<DeviceUnit> upload(const Batch& units) {
  std::vector<DeviceUnit> out;
  for (const HostUnit& u : units) {
    DeviceUnit d{DeviceTensor::Upload(u.x), DeviceTensor::Upload(u.q_r), {}};
    for (const HostTensor& q : u.q_c) d.q_c.push_back(DeviceTensor::Upload(q));
    out.push_back(std::move(d));
  }
  return out;
}

// block_rotate synchronizes `stream` before it returns, so the downloads that follow see the result.
void cuda_rotate(std::vector<DeviceUnit>& units, RotateDirection dir, Stream stream = {},
                 RotatePrecision precision = RotatePrecision::kF32) {
  std::vector<RotationUnit> views;
  for (DeviceUnit& d : units) {
    RotationUnit u{d.x.view(), d.q_r.cview(), {}};
    for (const DeviceTensor& q : d.q_c) u.q_c.push_back(q.cview());
    views.push_back(std::move(u));
  }
  block_rotate(cuda_ctx(stream), views, dir, precision);
}

std::vector<HostTensor> download_x(const std::vector<DeviceUnit>& units) {
  std::vector<HostTensor> out;
  for (const DeviceUnit& d : units) out.push_back(d.x.Download());
  return out;
}

TEST(BlockRotateCuda, BothDirectionsMatchTheCpuReference) {
  CheckList results;
  for (size_t c = 0; c < cases().size(); ++c) {
    for (RotateDirection dir : {kFwd, kInv}) {
      const Batch in = make_batch(c);
      const std::vector<double> s = abs_rotation_max(in, xs_of(in), dir);
      Batch ref64 = converted(in, DType::kF64), ref32 = converted(in, DType::kF32);
      cpu_rotate(ref64, dir);
      cpu_rotate(ref32, dir);
      std::vector<DeviceUnit> dev = upload(in);
      cuda_rotate(dev, dir);
      const std::vector<HostTensor> got = download_x(dev);
      for (size_t i = 0; i < in.size(); ++i) {
        // Rule 2, two chained GEMMs (the derivation of kernels/check/block_rotate_check.cc, check a):
        // t̂ = fl(Q_r·x) has |t̂ − t| ≤ γ_R·|Q_r|·|x| and ŷ = fl(t̂·q_bᵀ) per block adds
        // γ_{K_b}·|t̂|·|q_b|ᵀ, for any summation order (cuBLAS's tiles, split-K and FMAs included, as
        // long as the arithmetic is fp32: CUBLAS_COMPUTE_32F, no TF32). So
        //   |ŷ − y| ≤ (γ_R + γ_{K_b} + γ_R·γ_{K_b})·S < (R + K_b)·eps·S,   γ_n = n·u/(1 − n·u), u = eps/2,
        // S = |Q_r|·|x|·|Q_c|ᵀ (inverse: |Q_r|ᵀ·|x|·|Q_c|), bounded by its max over the unit.
        // Against the f64 CPU (off the exact product by ~2^-29 of that): n_terms = R + max K_b.
        // Against the f32 CPU (dnnl), itself within the same bound of the exact product: twice that.
        // Sharpness: the small shapes' budgets (atol ≈ 4e-5 for (16, 24) {8, 16}) sit well below the
        // ~2^-11·|y| error that TF32's rounded inputs add: a host emulation of these GEMMs with
        // TF32-rounded inputs failed every small-shape comparison by 11x or more. The (256, 512)
        // budget (≈ 7e-3, the worst case for n = 512) only catches gross errors.
        const int64_t n = in[i].R() + in[i].max_block();
        results.push_back(compare_tensors(tag(in[i], i, dir_name(dir)), format_message("vs f64 CPU (%s)", cases()[c].name),
                                          got[i], ref64[i].x, for_reduction(DType::kF32, n, s[i])));
        results.push_back(compare_tensors(tag(in[i], i, dir_name(dir)), format_message("vs f32 CPU (%s)", cases()[c].name),
                                          got[i], ref32[i].x, for_reduction(DType::kF32, 2 * n, s[i])));
      }
    }
  }
  expect_all_ok(results);
}

TEST(BlockRotateCuda, InverseOfForwardReturnsX) {
  CheckList results;
  const double eps = dtype_eps(DType::kF32), eps64 = dtype_eps(DType::kF64);
  for (size_t c = 0; c < cases().size(); ++c) {
    const Batch in = make_batch(c);
    std::vector<DeviceUnit> dev = upload(in);
    cuda_rotate(dev, kFwd);
    const std::vector<HostTensor> y = download_x(dev);  // ŷ, the computed forward rotation
    cuda_rotate(dev, kInv);
    const std::vector<HostTensor> got = download_x(dev);
    std::vector<HostTensor> s1;
    abs_rotation_max(in, xs_of(in), kFwd, &s1);
    const std::vector<double> s1_back = abs_rotation_max(in, s1, kInv);
    const std::vector<double> s2 = abs_rotation_max(in, y, kInv);
    for (size_t i = 0; i < in.size(); ++i) {
      const HostUnit& u = in[i];
      const int64_t R = u.R();
      // Orthogonality of the f32-rounded Q's: δ = max|QᵀQ − I|, measured in double; the measurement's
      // dot products are off by ≤ γ_n(f64)·Σ_k|q_ki·q_kj| ≤ n·eps64·‖q_i‖·‖q_j‖ < 2·n·eps64 (columns of
      // norm 1 up to f32 rounding), hence δ + 2·n·eps64.
      const double d_r = orthogonality_error(u.q_r) + 2.0 * static_cast<double>(R) * eps64;
      double kd_c = 0.0;  // max_b K_b·δ_b
      for (const HostTensor& q : u.q_c) {
        const double kb = static_cast<double>(q.shape()[0]);
        kd_c = std::max(kd_c, kb * (orthogonality_error(q) + 2.0 * kb * eps64));
      }
      // inv(fwd(x)) − x = Q_rᵀ·e1·Q_c + e2 + (Q_rᵀQ_r·x·Q_cᵀQ_c − x) (kernels/check/block_rotate_check.cc,
      // check b), per element, n = R + max K_b:
      //   forward rounding e1 (|e1| ≤ n·eps·S1, S1 = |Q_r|·|x|·|Q_c|ᵀ, test a) carried through the
      //     inverse: ≤ n·eps·S1_back, S1_back = |Q_r|ᵀ·S1·|Q_c| (loose: assumes one sign throughout);
      //   inverse rounding e2: ≤ n·eps·S2, S2 = |Q_r|ᵀ·|ŷ|·|Q_c|;
      //   orthogonality, (I + E_r)·x·(I + E_c) − x: ≤ (R·δ_r + K_b·δ_b + R·δ_r·K_b·δ_b)·max|x|.
      // As rule 2 with n_terms = n: abs_sum = S1_back + S2 + orth / (n·eps).
      const double n = static_cast<double>(R + u.max_block());
      const double rd_r = static_cast<double>(R) * d_r;
      const double orth = (rd_r + kd_c + rd_r * kd_c) * u.x.max_abs();
      results.push_back(compare_tensors(tag(u, i, "inv(fwd)"), format_message("vs x (%s)", cases()[c].name), got[i],
                                        u.x, for_reduction(DType::kF32, R + u.max_block(),
                                                           s1_back[i] + s2[i] + orth / (n * eps))));
    }
  }
  expect_all_ok(results);
}

TEST(BlockRotateCuda, BitwiseDeterministicOnAnyStream) {
  // The second run uses its own stream: the bits must not depend on it. A blocking stream, so it is
  // ordered after DeviceTensor's uploads (cudaMemcpy on the legacy default stream).
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  for (size_t c : {size_t{2}, size_t{3}}) {  // the mixed and the realistic batch
    SCOPED_TRACE(cases()[c].name);
    const Batch in = make_batch(c);
    std::vector<DeviceUnit> a = upload(in), b = upload(in);
    for (RotateDirection dir : {kFwd, kInv}) {  // the inverse of a rotated (not freshly drawn) x too
      cuda_rotate(a, dir);
      cuda_rotate(b, dir, Stream{stream});
      const std::vector<HostTensor> xa = download_x(a), xb = download_x(b);
      for (size_t i = 0; i < in.size(); ++i) {
        EXPECT_TRUE(bitwise_equal(xa[i], xb[i])) << dir_name(dir) << " unit " << i;
        if (dir == kFwd) {
          EXPECT_FALSE(bitwise_equal(xa[i], in[i].x)) << "unit " << i << " was not rotated";
        }
      }
    }
  }
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

// max_ij |a − b| / max_ij |b| over a batch's units.
double max_relative_to_max(const std::vector<HostTensor>& a, const Batch& b) {
  double err = 0.0, mag = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (int64_t j = 0; j < a[i].numel(); ++j) err = std::max(err, std::fabs(a[i].get(j) - b[i].x.get(j)));
    mag = std::max(mag, b[i].x.max_abs());
  }
  return err / mag;
}

TEST(BlockRotateCuda, Tf32StaysWithinItsBoundAndIsCoarserThanFp32) {
  CheckList results;
  const double ut = std::ldexp(1.0, -10), eps = dtype_eps(DType::kF32);
  for (size_t c = 0; c < cases().size(); ++c) {
    for (RotateDirection dir : {kFwd, kInv}) {
      const Batch in = make_batch(c);
      const std::vector<double> s = abs_rotation_max(in, xs_of(in), dir);
      Batch ref64 = converted(in, DType::kF64);
      cpu_rotate(ref64, dir);
      std::vector<DeviceUnit> tf32 = upload(in), fp32 = upload(in);
      cuda_rotate(tf32, dir, {}, RotatePrecision::kTF32);
      cuda_rotate(fp32, dir);
      const std::vector<HostTensor> got = download_x(tf32), got32 = download_x(fp32);
      for (size_t i = 0; i < in.size(); ++i) {
        // Each pass rounds both operands to TF32 (relative error < u_t = 2^-10 truncated, 2^-11 rounded)
        // and sums in fp32: t̂ = fl(Q̂_r·x̂) has |t̂ − t| ≤ e1·|Q_r|·|x|, e1 = 2·u_t + u_t² + γ_R·(1 + u_t)²,
        // and the second pass adds e2·|t̂|·|q_b|ᵀ with e2 likewise for K_b, |t̂| ≤ (1 + e1)·|Q_r|·|x|. So
        //   |ŷ − y| ≤ (e1 + e2 + e1·e2)·S < (4.02·u_t + (R + K_b)·eps)·S      (γ_n < n·eps/2·1.01),
        // S as in test a. The f64 reference is off the exact product by ~2^-50 of S.
        const double n = static_cast<double>(in[i].R() + in[i].max_block());
        const Tolerance tol{(4.02 * ut + n * eps) * s[i], 0.0,
                            "TF32 operands (u_t = 2^-10) + fp32 sums, two chained GEMMs: (4.02 u_t + n eps) S"};
        results.push_back(compare_tensors(tag(in[i], i, dir_name(dir)), format_message("tf32 vs f64 CPU (%s)",
                                                                                     cases()[c].name),
                                          got[i], ref64[i].x, tol));
      }
      if (c == 3) {
        // The realistic batch: fp32's error, ~√n·2^-24 of max|y| (n = 768 terms of random sign), is far
        // below 2^-16 of it, TF32's (~2^-11 of it: each term is off by ~2^-11, and they add up like y's
        // terms) far above. Smaller shapes may run on fp32 kernels even with TF32 allowed, so only here.
        const double threshold = std::ldexp(1.0, -16);
        EXPECT_GT(max_relative_to_max(got, ref64), threshold) << dir_name(dir) << ": TF32 did not reach the GEMMs";
        EXPECT_LT(max_relative_to_max(got32, ref64), threshold) << dir_name(dir) << ": fp32 is not fp32";
      }
    }
  }
  expect_all_ok(results);
}

TEST(BlockRotateCudaDeathTest, F32UnitsOnlyNamingTheTensor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor x("layers.0.mlp.up.weight", DType::kF64, {4, 6}), q_r("q_r", DType::kF64, {4, 4}),
      q_c("q_c", DType::kF64, {6, 6});
  const RotationUnit units[] = {{x.view(), q_r.cview(), {q_c.cview()}}};
  EXPECT_DEATH(block_rotate(cuda_ctx(), units, kFwd),
               "block_rotate: the CUDA kernel takes f32 units \\(optimizer state\\); 'layers.0.mlp.up.weight' is f64");
}

}  // namespace
}  // namespace om
