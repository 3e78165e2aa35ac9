// CUDA AdamW (kernels/cuda/adamw.cu) against the CPU reference (kernels/cpu/adamw.cc) on the same
// f32 inputs: adamw_update, and adam_direction (in place and not) then adam_apply, at tiny, odd and
// realistic sizes (one larger than the kernel's grid, so the grid-stride loop wraps) and steps 1, 2,
// 1000; the split path equals the fused one on CUDA; bitwise determinism; the f32-only contract; the
// grouped calls (adamw_update_group, adam_apply_group) equal the CPU's single calls entry by entry, in
// ceil(entries / kAdamGroupMax) launches each (counted on the emulator); the fused publish (`value`,
// f32 and bf16 entries mixed in one launch) writes the bits a cast of the updated param would.
// Runs under cuda_test_main (exit 77 without a GPU).
//
// Tolerance (rule 1, exact by construction; kMaxUlps below). Both sides evaluate the same IEEE
// double operations on the same operands in the same order: f32 -> double conversions are exact;
// +, -, *, / and sqrt are correctly rounded on the host (SSE2) and on the device (the kernel's _rn
// intrinsics, which nvcc never fuses into FMAs); the bias corrections are computed on the host by the
// same expression and libm in both. So every double intermediate, and every f32 rounding of one,
// is identical: param, m, v and the direction must match bit for bit. The one way this can break
// is the host compiler contracting a * b + c into an FMA inside the CPU reference, which GCC does
// (-ffp-contract=fast) only where the target has FMA: not on the x86-64 baseline this project
// builds for (no -march). Where it has (x86-64 with FMA enabled, AArch64), the reference's double
// intermediates may differ by a few units of 2^-53 relative, and rounding two such doubles to f32
// gives the same float or adjacent ones (a step whose terms cancel to below 2^-29 of their size
// could do more; these inputs do not): kMaxUlps = 1 there.
#include <cuda_runtime_api.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/rng.h"
#include "kernels/adamw.h"
#include "kernels/cast.h"
#include "kernels/check/gradcheck.h"
#include "tests/support/device_tensor.h"
#include "tests/support/host_waits.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

#if defined(__FMA__) || defined(__aarch64__)
constexpr int64_t kMaxUlps = 1;  // the host compiler may contract the CPU reference (see above)
#else
constexpr int64_t kMaxUlps = 0;  // bit-identical
#endif

// 3'000'001 elements need more blocks of 256 than the kernel's grid cap (132 * 8 * 4), so the
// grid-stride loop runs more than once per thread; 7 and 4099 leave partial blocks.
constexpr int64_t kSizes[] = {1, 7, 4099, 3'000'001};

struct Hyper {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  int64_t step;
};
// Step 1 and 2 (bias corrections far from 1), a late step; with and without decay and clipping.
constexpr Hyper kHypers[] = {
    {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1},
    {1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.37f, 2},
    {6e-4f, 0.8f, 0.999f, 1e-6f, 0.01f, 0.9f, 1000},
};

ExecContext cuda_ctx(Stream stream = {}) { return ExecContext{Device::Cuda(0), stream}; }

std::string case_name(int64_t n, const Hyper& h) {
  return format_message("adamw cuda n=%ld step=%ld", static_cast<long>(n), static_cast<long>(h.step));
}

// The state of one optimizer shard, f32 like the CUDA kernel takes it. Gradients span magnitudes
// 1e-6..10 and v spans 1e-14..1e-2, so sqrt(vh) is sometimes near eps and sometimes far above it;
// every 97th element is fresh (m = v = grad = 0: u = 0 / (0 + eps) = 0).
struct State {
  HostTensor param, m, v, grad;
  State Clone() const { return {param.Clone(), m.Clone(), v.Clone(), grad.Clone()}; }
};

State make_state(int64_t n, uint64_t seed) {
  State s{HostTensor("param", DType::kF32, {n}), HostTensor("m", DType::kF32, {n}), HostTensor("v", DType::kF32, {n}),
          HostTensor("grad", DType::kF32, {n})};
  s.param.FillNormal(Rng(seed, "adamw-cuda/param"), 0, 0.05);
  const Rng noise(seed, "adamw-cuda/noise"), mag(seed, "adamw-cuda/magnitude");
  for (int64_t i = 0; i < n; ++i) {
    if (i % 97 == 0) continue;  // zero-filled
    const double gm = std::pow(10.0, -6.0 + 7.0 * mag.UniformDouble(3 * i));
    const double vm = std::pow(10.0, -14.0 + 12.0 * mag.UniformDouble(3 * i + 1));
    s.grad.set(i, gm * noise.NormalDouble(3 * i));
    s.m.set(i, 1e-3 * noise.NormalDouble(3 * i + 1));
    s.v.set(i, vm * (0.5 + mag.UniformDouble(3 * i + 2)));
  }
  return s;
}

// Distance in representable floats between a and b (0: the same value; +0 and -0 are 0 apart).
int64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  auto key = [](float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    return (u & 0x80000000u) ? -static_cast<int64_t>(u & 0x7fffffffu) : static_cast<int64_t>(u);
  };
  return std::llabs(key(a) - key(b));
}

// A pass/fail fact: every element of `got` within `max_ulps` floats of `want`; names the worst.
CheckResult within_ulps(const std::string& op, const std::string& what, const HostTensor& got,
                        const HostTensor& want, int64_t max_ulps) {
  int64_t worst = 0, at = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int64_t d = ulp_distance(got.data<float>()[i], want.data<float>()[i]);
    if (d > worst) worst = d, at = i;
  }
  return check_fact(op, what + format_message(" (<= %ld ulp)", static_cast<long>(max_ulps)), worst <= max_ulps,
                    at < 0 ? "" : format_message("worst [%ld]: got %.9g want %.9g, %ld ulp apart",
                                                 static_cast<long>(at), got.get(at), want.get(at),
                                                 static_cast<long>(worst)));
}

void cpu_update(State& s, const Hyper& h) {
  adamw_update(ExecContext{}, {s.param.view(), s.m.view(), s.v.view(), s.grad.view(), h.lr, h.beta1, h.beta2, h.eps,
                               h.weight_decay, h.step, h.grad_scale});
}

// The CUDA update on a copy of `s`; `stream` is synchronized before the download.
State cuda_update(const State& s, const Hyper& h, Stream stream = {}) {
  DeviceTensor p = DeviceTensor::Upload(s.param), m = DeviceTensor::Upload(s.m), v = DeviceTensor::Upload(s.v),
               g = DeviceTensor::Upload(s.grad);
  adamw_update(cuda_ctx(stream), {p.view(), m.view(), v.view(), g.cview(), h.lr, h.beta1, h.beta2, h.eps,
                                  h.weight_decay, h.step, h.grad_scale});
  OM_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream.handle)));
  State out = s.Clone();
  out.param = p.Download();
  out.m = m.Download();
  out.v = v.Download();
  return out;
}

enum class DirectionBuffer : uint8_t { kSeparate, kInPlace };

// adam_direction then adam_apply on a copy of `s`, on CUDA; the direction goes to its own buffer
// or overwrites the gradient (the aliasing adam_direction allows). Returns the final state with
// the direction in `grad`.
State cuda_split(const State& s, const Hyper& h, DirectionBuffer where) {
  DeviceTensor p = DeviceTensor::Upload(s.param), m = DeviceTensor::Upload(s.m), v = DeviceTensor::Upload(s.v),
               g = DeviceTensor::Upload(s.grad), u("direction", DType::kF32, s.grad.shape());
  TensorView dir = where == DirectionBuffer::kInPlace ? g.view() : u.view();
  adam_direction(cuda_ctx(), {dir, m.view(), v.view(), g.cview(), h.beta1, h.beta2, h.eps, h.step, h.grad_scale});
  adam_apply(cuda_ctx(), {p.view(), dir, h.lr, h.weight_decay});
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  State out = s.Clone();
  out.param = p.Download();
  out.m = m.Download();
  out.v = v.Download();
  out.grad = where == DirectionBuffer::kInPlace ? g.Download() : u.Download();
  return out;
}

TEST(AdamWCuda, UpdateMatchesCpuReference) {
  CheckList results;
  for (int64_t n : kSizes) {
    for (const Hyper& h : kHypers) {
      const std::string name = case_name(n, h);
      const State in = make_state(n, 21);
      State ref = in.Clone();
      cpu_update(ref, h);
      const State got = cuda_update(in, h);
      results.push_back(within_ulps(name, "param vs cpu", got.param, ref.param, kMaxUlps));
      results.push_back(within_ulps(name, "m vs cpu", got.m, ref.m, kMaxUlps));
      results.push_back(within_ulps(name, "v vs cpu", got.v, ref.v, kMaxUlps));
    }
  }
  expect_all_ok(results);
}

TEST(AdamWCuda, DirectionThenApplyMatchesCpuAndTheFusedUpdate) {
  CheckList results;
  for (int64_t n : {int64_t{7}, int64_t{4099}, int64_t{3'000'001}}) {
    for (const Hyper& h : kHypers) {
      for (DirectionBuffer where : {DirectionBuffer::kSeparate, DirectionBuffer::kInPlace}) {
        const std::string name =
            case_name(n, h) + (where == DirectionBuffer::kInPlace ? " direction in place" : " direction separate");
        const State in = make_state(n, 22);
        // The CPU reference of the split path: direction, then apply.
        State ref = in.Clone();
        HostTensor u("direction", DType::kF32, in.grad.shape());
        adam_direction(ExecContext{},
                       {u.view(), ref.m.view(), ref.v.view(), ref.grad.view(), h.beta1, h.beta2, h.eps, h.step,
                        h.grad_scale});
        adam_apply(ExecContext{}, {ref.param.view(), u.view(), h.lr, h.weight_decay});
        const State got = cuda_split(in, h, where);
        results.push_back(within_ulps(name, "direction vs cpu", got.grad, u, kMaxUlps));
        results.push_back(within_ulps(name, "param vs cpu", got.param, ref.param, kMaxUlps));
        results.push_back(within_ulps(name, "m vs cpu", got.m, ref.m, kMaxUlps));
        results.push_back(within_ulps(name, "v vs cpu", got.v, ref.v, kMaxUlps));
        // On one device the split path runs the fused path's operations exactly (kernels/adamw.h:
        // the identity-rotation OrthoAdam test relies on it): exact whatever the host compiler does.
        const State fused = cuda_update(in, h);
        results.push_back(within_ulps(name, "param vs cuda adamw_update", got.param, fused.param, 0));
        results.push_back(within_ulps(name, "m vs cuda adamw_update", got.m, fused.m, 0));
        results.push_back(within_ulps(name, "v vs cuda adamw_update", got.v, fused.v, 0));
      }
    }
  }
  expect_all_ok(results);
}

TEST(AdamWCuda, UpdateIsBitwiseDeterministicOnAnyStream) {
  // Element-wise, so this holds by construction; it guards against a future vectorised or
  // reduction-fused variant that would not. The second run is on its own (blocking) stream.
  cudaStream_t stream = nullptr;
  OM_CUDA_CHECK(cudaStreamCreate(&stream));
  const Hyper& h = kHypers[0];
  const State in = make_state(3'000'001, 23);
  const State a = cuda_update(in, h), b = cuda_update(in, h, Stream{stream});
  EXPECT_TRUE(bitwise_equal(a.param, b.param));
  EXPECT_TRUE(bitwise_equal(a.m, b.m));
  EXPECT_TRUE(bitwise_equal(a.v, b.v));
  EXPECT_FALSE(bitwise_equal(a.param, in.param));  // the update really ran
  OM_CUDA_CHECK(cudaStreamDestroy(stream));
}

// A grouped call's entries: slices of one flat shard (as the ZeRO-1 optimizer passes them), sizes 0..2999
// and a few of 70'000 (more than one block's grid-stride pass each), separated by 5-element gaps that no
// entry covers: the gaps must come back untouched. 150 entries, 148 non-empty: three launches of at most
// kAdamGroupMax.
struct Slice {
  int64_t offset, numel;
  float weight_decay;
};

std::vector<Slice> group_slices(int64_t& total) {
  std::vector<Slice> slices;
  const Rng rng(24, "adamw-cuda/group");
  int64_t at = 0;
  for (int i = 0; i < 150; ++i) {
    int64_t n = static_cast<int64_t>(rng.Block(static_cast<uint64_t>(i))[0] % 3000);
    if (i == 5 || i == 77) n = 0;                        // empty entries launch nothing
    if (i == 40 || i == 41 || i == 149) n = 70'000;      // consecutive large ones, and the last
    slices.push_back({at, n, i % 3 == 0 ? 0.0f : 0.1f});  // norm gains (no decay) among matrices
    at += n + 5;
  }
  total = at;
  return slices;
}

int64_t expected_launches(size_t entries, int max_per_launch) {
  return static_cast<int64_t>((entries + static_cast<size_t>(max_per_launch) - 1) / max_per_launch);
}

// Entry `sl` of a flat tensor of any dtype: its elements [offset, offset + numel).
TensorView slice_of(void* base, DType dtype, Device device, const Slice& sl, const char* name) {
  return make_view(static_cast<char*>(base) + sl.offset * static_cast<int64_t>(dtype_size(dtype)), dtype,
                   Shape{sl.numel}, device, name);
}
TensorView slice_of(HostTensor& t, const Slice& sl) {
  return slice_of(t.view().data, t.dtype(), Device::Cpu(), sl, t.name().c_str());
}
TensorView slice_of(DeviceTensor& t, const Slice& sl) {
  return slice_of(t.view().data, t.dtype(), t.device(), sl, t.name().c_str());
}

// The grouped calls over `slices` of flat device tensors: AdamW on (p, m, v, g) with h's hyper-parameters and
// each slice's decay, and adam_apply of direction u to pa; no values.
struct GroupCalls {
  std::vector<AdamWArgs> updates;
  std::vector<AdamApplyArgs> applies;
};
GroupCalls group_calls(const std::vector<Slice>& slices, const Hyper& h, DeviceTensor& p, DeviceTensor& m,
                       DeviceTensor& v, DeviceTensor& g, DeviceTensor& pa, DeviceTensor& u) {
  GroupCalls calls;
  for (const Slice& sl : slices) {
    calls.updates.push_back({slice_of(p, sl), slice_of(m, sl), slice_of(v, sl), slice_of(g, sl), h.lr, h.beta1,
                             h.beta2, h.eps, sl.weight_decay, h.step, h.grad_scale});
    calls.applies.push_back({slice_of(pa, sl), slice_of(u, sl), h.lr, sl.weight_decay});
  }
  return calls;
}

TEST(AdamWCuda, GroupedUpdateAndApplyMatchTheCpuEntryByEntryInFewLaunches) {
  int64_t total = 0;
  const std::vector<Slice> slices = group_slices(total);
  size_t nonempty = 0;
  for (const Slice& sl : slices) nonempty += sl.numel > 0;
  ASSERT_EQ(nonempty, 148u);
  const Hyper& h = kHypers[1];  // step 2, clipping
  const State in = make_state(total, 25);
  HostTensor direction("direction", DType::kF32, {total});
  direction.FillNormal(Rng(25, "adamw-cuda/direction"), 0, 1e-2);

  // CPU: one single call per entry (the reference the grouped call must equal).
  State ref = in.Clone();
  HostTensor ref_applied = in.param.Clone("applied");
  for (const Slice& sl : slices) {
    adamw_update(ExecContext{}, {slice_of(ref.param, sl), slice_of(ref.m, sl), slice_of(ref.v, sl),
                                 slice_of(ref.grad, sl), h.lr, h.beta1, h.beta2, h.eps, sl.weight_decay, h.step,
                                 h.grad_scale});
    adam_apply(ExecContext{}, {slice_of(ref_applied, sl), slice_of(direction, sl), h.lr, sl.weight_decay});
  }

  // CUDA: one grouped call each.
  DeviceTensor p = DeviceTensor::Upload(in.param), m = DeviceTensor::Upload(in.m), v = DeviceTensor::Upload(in.v),
               g = DeviceTensor::Upload(in.grad), pa = DeviceTensor::Upload(in.param),
               u = DeviceTensor::Upload(direction);
  const GroupCalls calls = group_calls(slices, h, p, m, v, g, pa, u);
  const int64_t before = emu_counts_now().device_launches;
  adamw_update_group(cuda_ctx(), calls.updates);
  const int64_t between = emu_counts_now().device_launches;
  adam_apply_group(cuda_ctx(), calls.applies);
  const int64_t after = emu_counts_now().device_launches;
  adamw_update_group(cuda_ctx(), {});  // an empty list does nothing
  OM_CUDA_CHECK(cudaDeviceSynchronize());

  // Everything, gaps included (untouched on both sides), within the single calls' tolerance.
  const std::string name = "adamw cuda grouped, 150 entries";
  expect_all_ok({within_ulps(name, "param vs cpu", p.Download(), ref.param, kMaxUlps),
                 within_ulps(name, "m vs cpu", m.Download(), ref.m, kMaxUlps),
                 within_ulps(name, "v vs cpu", v.Download(), ref.v, kMaxUlps),
                 within_ulps(name, "applied param vs cpu", pa.Download(), ref_applied, kMaxUlps)});
  EXPECT_TRUE(bitwise_equal(g.Download(), in.grad));  // read only
  EXPECT_FALSE(bitwise_equal(ref.param, in.param));   // the update really ran
  if (before >= 0) {                                  // the emulator counts launches (tests/support/host_waits.h)
    EXPECT_EQ(between - before, expected_launches(nonempty, kAdamGroupMax)) << "adamw_update_group launches";
    EXPECT_EQ(after - between, expected_launches(nonempty, kAdamGroupMax)) << "adam_apply_group launches";
    EXPECT_EQ(emu_counts_now().device_launches, after) << "an empty group launched something";
  }
}

TEST(AdamWCuda, FusedPublishWritesTheCastOfTheUpdatedParamEntryByEntry) {
  // The group's slices, entry i publishing into bf16 (i % 3 == 0), f32 (i % 3 == 1) or nowhere, so one
  // launch mixes all three. Each value must hold cast(updated param), bit for bit (cast is exact
  // arithmetic on the param's bits, on either device: kernels/cast.h), and the state must equal a group
  // without values; a value's bytes outside the entries stay 0.
  int64_t total = 0;
  const std::vector<Slice> slices = group_slices(total);
  const Hyper& h = kHypers[0];
  const State in = make_state(total, 26);
  HostTensor direction("direction", DType::kF32, {total});
  direction.FillNormal(Rng(26, "adamw-cuda/direction"), 0, 1e-2);
  DeviceTensor p = DeviceTensor::Upload(in.param), m = DeviceTensor::Upload(in.m), v = DeviceTensor::Upload(in.v),
               g = DeviceTensor::Upload(in.grad), pa = DeviceTensor::Upload(in.param),
               u = DeviceTensor::Upload(direction);
  DeviceTensor vb("value bf16", DType::kBF16, {total}), vf("value f32", DType::kF32, {total}),
      ab("applied bf16", DType::kBF16, {total}), af("applied f32", DType::kF32, {total});
  GroupCalls calls = group_calls(slices, h, p, m, v, g, pa, u);
  for (size_t i = 0; i < slices.size(); ++i) {
    if (i % 3 == 2) continue;
    calls.updates[i].value = slice_of(i % 3 == 0 ? vb : vf, slices[i]);
    calls.applies[i].value = slice_of(i % 3 == 0 ? ab : af, slices[i]);
  }
  adamw_update_group(cuda_ctx(), calls.updates);
  adam_apply_group(cuda_ctx(), calls.applies);
  OM_CUDA_CHECK(cudaDeviceSynchronize());

  // The same group without values gives the same state.
  DeviceTensor p0 = DeviceTensor::Upload(in.param), m0 = DeviceTensor::Upload(in.m), v0 = DeviceTensor::Upload(in.v),
               pa0 = DeviceTensor::Upload(in.param);
  const GroupCalls plain = group_calls(slices, h, p0, m0, v0, g, pa0, u);
  adamw_update_group(cuda_ctx(), plain.updates);
  adam_apply_group(cuda_ctx(), plain.applies);
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  HostTensor param = p.Download(), applied = pa.Download();
  EXPECT_TRUE(bitwise_equal(param, p0.Download()));
  EXPECT_TRUE(bitwise_equal(m.Download(), m0.Download()));
  EXPECT_TRUE(bitwise_equal(v.Download(), v0.Download()));
  EXPECT_TRUE(bitwise_equal(applied, pa0.Download()));
  EXPECT_FALSE(bitwise_equal(param, in.param));  // the update really ran

  // Expected values: the CPU cast of the downloaded params over each publishing entry, 0 elsewhere.
  HostTensor want_vb("want bf16", DType::kBF16, {total}), want_vf("want f32", DType::kF32, {total}),
      want_ab("want applied bf16", DType::kBF16, {total}), want_af("want applied f32", DType::kF32, {total});
  for (size_t i = 0; i < slices.size(); ++i) {
    if (i % 3 == 2) continue;
    HostTensor& wv = i % 3 == 0 ? want_vb : want_vf;
    HostTensor& wa = i % 3 == 0 ? want_ab : want_af;
    cast(ExecContext{}, {slice_of(wv, slices[i]), slice_of(param, slices[i])});
    cast(ExecContext{}, {slice_of(wa, slices[i]), slice_of(applied, slices[i])});
  }
  EXPECT_TRUE(bitwise_equal(vb.Download(), want_vb)) << "adamw_update_group bf16 values";
  EXPECT_TRUE(bitwise_equal(vf.Download(), want_vf)) << "adamw_update_group f32 values";
  EXPECT_TRUE(bitwise_equal(ab.Download(), want_ab)) << "adam_apply_group bf16 values";
  EXPECT_TRUE(bitwise_equal(af.Download(), want_af)) << "adam_apply_group f32 values";
  EXPECT_GT(want_vb.max_abs(), 0.0);

  // A single call is a group of one: the same kernel, the same value.
  DeviceTensor one_p = DeviceTensor::Upload(in.param), one_m = DeviceTensor::Upload(in.m),
               one_v = DeviceTensor::Upload(in.v), one_value("one value", DType::kBF16, {total});
  adamw_update(cuda_ctx(), {one_p.view(), one_m.view(), one_v.view(), g.cview(), h.lr, h.beta1, h.beta2, h.eps, 0.1f,
                            h.step, h.grad_scale, one_value.view()});
  OM_CUDA_CHECK(cudaDeviceSynchronize());
  HostTensor want_one("want one", DType::kBF16, {total});
  cast(ExecContext{}, {want_one.view(), one_p.Download().view()});
  EXPECT_TRUE(bitwise_equal(one_value.Download(), want_one)) << "adamw_update value";
}

TEST(AdamWCudaDeathTest, MasterWeightsMustBeF32NamingTheTensor) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-exec the binary: no fork of a CUDA process
  DeviceTensor p("layers.0.mlp.w1", DType::kBF16, {8}), m("m", DType::kBF16, {8}), v("v", DType::kBF16, {8}),
      g("grad", DType::kBF16, {8});
  EXPECT_DEATH(adamw_update(cuda_ctx(), {p.view(), m.view(), v.view(), g.cview(), 1e-3f}),
               "adamw_update: the CUDA kernel updates f32 master weights and moments; 'layers.0.mlp.w1' is bf16");
}

}  // namespace
}  // namespace om
