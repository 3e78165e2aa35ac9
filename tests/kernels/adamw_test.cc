// AdamW: the long-double reference check (kernels/check/adamw_check.cc) plus the optimizer's own
// facts: decoupled decay, Adam's sign-like first step, grad_scale, determinism, argument errors; the
// grouped calls equal the single ones and refuse mixed steps and overlapping entries; the fused publish
// (`value`) writes what a cast after the step would.
#include <omp.h>

#include <bit>
#include <cmath>

#include "kernels/adamw.h"
#include "kernels/cast.h"
#include "kernels/check/checks.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

struct AdamState {
  HostTensor p, m, v;
  AdamState(DType dt, int64_t n) : p("param", dt, {n}), m("m", dt, {n}), v("v", dt, {n}) {}
  AdamWArgs args(const HostTensor& grad, float lr, int64_t step) {
    AdamWArgs a{p.view(), m.view(), v.view(), grad.view()};
    a.lr = lr;
    a.step = step;
    return a;
  }
};

TEST(AdamW, MatchesLongDoubleReferenceOverTenSteps) { expect_all_ok(check_adamw()); }

TEST(AdamW, DecoupledDecayShrinksParamsExactlyWithZeroGradient) {
  // lr * wd = 1/4 and integer params: p * 3/4 per step is exact in f64 for these 10 steps, so
  // "exactly (1 - lr*wd)" is a bit-exact statement. The moments stay zero: decay never enters them.
  const int64_t n = 6;
  AdamState s(DType::kF64, n);
  HostTensor g("grad", DType::kF64, {n});
  for (int64_t i = 0; i < n; ++i) s.p.set(i, 1024.0 * static_cast<double>(i - 2));
  HostTensor want = s.p.Clone("want");
  for (int64_t k = 1; k <= 10; ++k) {
    AdamWArgs a = s.args(g, 0.5f, k);
    a.weight_decay = 0.5f;
    adamw_update({}, a);
    for (int64_t i = 0; i < n; ++i) want.set(i, want.get(i) * 0.75);
    expect_all_ok({compare_tensors("adamw step " + std::to_string(k), "param * (1 - lr wd)", s.p, want, exact())});
  }
  EXPECT_EQ(s.m.max_abs(), 0.0);
  EXPECT_EQ(s.v.max_abs(), 0.0);
}

TEST(AdamW, FirstStepMovesEachParamByLrTimesSignOfGradient) {
  // At step 1, mh = g and vh = g^2, so with eps = 0 the step is lr * g/|g| = lr * sign(g) whatever
  // the gradient's magnitude (here 1e-6 .. 1e3).
  const int64_t n = 512;
  const float lr = 1e-3f;
  AdamState s(DType::kF64, n);
  s.p.FillNormal(Rng(9, "adamw/p"), 0, 1.0);
  HostTensor g("grad", DType::kF64, {n}), want("p - lr sign(g)", DType::kF64, {n});
  const Rng sign(9, "adamw/sign"), mag(9, "adamw/mag");
  for (int64_t i = 0; i < n; ++i) {
    const double gs = sign.UniformDouble(i) < 0.5 ? -1.0 : 1.0;
    g.set(i, gs * std::pow(10.0, -6.0 + 9.0 * mag.UniformDouble(i)));
    want.set(i, s.p.get(i) - static_cast<double>(lr) * gs);
  }
  AdamWArgs a = s.args(g, lr, 1);
  a.eps = 0.0f;
  adamw_update({}, a);
  // g/|g| passes through at most 16 roundings on its way to u = mh / sqrt(vh) (m, v, the two bias
  // corrections of a few ulp each, two divides, sqrt), so the step is off by <= 16 eps * lr (atol,
  // written as rule 2 with 16 terms of size lr); the final subtraction from p rounds once (rtol).
  expect_all_ok({compare_tensors("adamw step 1 eps=0 f64", "param vs p - lr sign(g)", s.p, want,
                                 for_reduction(DType::kF64, 16, lr))});
}

TEST(AdamW, GradScaleHalfEqualsHalvingTheGradient) {
  const int64_t n = 300;
  AdamState a(DType::kF32, n), b(DType::kF32, n);
  a.p.FillNormal(Rng(10, "adamw/p"), 0, 1.0);
  b.p = a.p.Clone();
  for (int64_t k = 1; k <= 3; ++k) {
    HostTensor g("grad", DType::kF32, {n}), half("grad / 2", DType::kF32, {n});
    g.FillNormal(Rng(10, "adamw/g"), static_cast<uint64_t>(k) * n, 1.0);
    for (int64_t i = 0; i < n; ++i) half.set(i, 0.5 * g.get(i));  // exact: a power-of-two scale
    AdamWArgs sa = a.args(g, 1e-2f, k);
    sa.grad_scale = 0.5f;
    sa.weight_decay = 0.1f;
    AdamWArgs sb = b.args(half, 1e-2f, k);
    sb.weight_decay = 0.1f;
    adamw_update({}, sa);
    adamw_update({}, sb);
  }
  expect_all_ok({compare_tensors("adamw grad_scale", "param", a.p, b.p, exact()),
                 compare_tensors("adamw grad_scale", "m", a.m, b.m, exact()),
                 compare_tensors("adamw grad_scale", "v", a.v, b.v, exact())});
}

TEST(AdamW, BitIdenticalForAnyThreadCount) {
  const int64_t n = 100003;
  HostTensor g("grad", DType::kF32, {n});
  g.FillNormal(Rng(12, "adamw/g"), 0, 1.0);
  AdamState one(DType::kF32, n), two(DType::kF32, n);
  one.p.FillNormal(Rng(12, "adamw/p"), 0, 1.0);
  two.p = one.p.Clone();
  const int saved = omp_get_max_threads();
  for (int64_t k = 1; k <= 2; ++k) {
    omp_set_num_threads(1);
    adamw_update({}, one.args(g, 1e-3f, k));
    omp_set_num_threads(2);
    adamw_update({}, two.args(g, 1e-3f, k));
  }
  omp_set_num_threads(saved);
  expect_all_ok({compare_tensors("adamw 1 vs 2 threads", "param", one.p, two.p, exact()),
                 compare_tensors("adamw 1 vs 2 threads", "v", one.v, two.v, exact())});
}

TEST(AdamW, DirectionThenApplyEqualsFusedUpdateBitForBit) {
  // OrthoAdam's two halves (kernels/adamw.h) with identity rotations must be adamw_update exactly:
  // same moments, same direction rounding, same parameter update. Three copies of one state run
  // 10 steps: fused; split with a separate direction buffer; split with the direction written over
  // (a copy of) the gradient. f32 with weight decay, grad_scale != 1 and gradients of magnitude
  // 1e-6 .. 10, so some elements have sqrt(vh) near eps and others far above it.
  const int64_t n = 4099;  // not a multiple of any vector width
  const float lr = 1e-2f, wd = 0.1f, scale = 0.75f;
  AdamState fused(DType::kF32, n), split(DType::kF32, n), in_place(DType::kF32, n);
  fused.p.FillNormal(Rng(13, "adamw/p"), 0, 1.0);
  split.p = fused.p.Clone();
  in_place.p = fused.p.Clone();
  const HostTensor p0 = fused.p.Clone("p0");
  const Rng noise(13, "adamw/g"), mag(13, "adamw/mag");
  for (int64_t k = 1; k <= 10; ++k) {
    HostTensor g("grad", DType::kF32, {n});
    for (int64_t i = 0; i < n; ++i)
      g.set(i, std::pow(10.0, -6.0 + 7.0 * mag.UniformDouble(i)) * noise.NormalDouble(static_cast<uint64_t>(k * n + i)));

    AdamWArgs fa = fused.args(g, lr, k);
    fa.weight_decay = wd;
    fa.grad_scale = scale;
    adamw_update({}, fa);

    HostTensor u("direction", DType::kF32, {n});
    AdamDirectionArgs da{u.view(), split.m.view(), split.v.view(), g.view()};
    da.step = k;
    da.grad_scale = scale;
    adam_direction({}, da);
    adam_apply({}, {split.p.view(), u.view(), lr, wd});

    HostTensor gu = g.Clone("grad, then direction");  // direction aliases grad
    AdamDirectionArgs ia{gu.view(), in_place.m.view(), in_place.v.view(), gu.view()};
    ia.step = k;
    ia.grad_scale = scale;
    adam_direction({}, ia);
    adam_apply({}, {in_place.p.view(), gu.view(), lr, wd});

    const std::string step = "adamw step " + std::to_string(k);
    expect_all_ok({compare_tensors(step, "split param vs fused", split.p, fused.p, exact()),
                   compare_tensors(step, "split m vs fused", split.m, fused.m, exact()),
                   compare_tensors(step, "split v vs fused", split.v, fused.v, exact()),
                   compare_tensors(step, "in-place direction vs separate", gu, u, exact()),
                   compare_tensors(step, "in-place param vs fused", in_place.p, fused.p, exact()),
                   compare_tensors(step, "in-place m vs fused", in_place.m, fused.m, exact()),
                   compare_tensors(step, "in-place v vs fused", in_place.v, fused.v, exact())});
  }
  // The steps moved every parameter (lr * |u| ~ 1e-2 per step), so "equal" above is not "untouched".
  int64_t moved = 0;
  for (int64_t i = 0; i < n; ++i) moved += fused.p.get(i) != p0.get(i);
  EXPECT_EQ(moved, n);
}

// Entry k of a grouped call: slice [offsets[k], offsets[k] + sizes[k]) of each of the state's tensors.
std::vector<AdamWArgs> slices_of(AdamState& st, HostTensor& g, const std::vector<int64_t>& offsets,
                                 const std::vector<int64_t>& sizes, float lr, int64_t step) {
  std::vector<AdamWArgs> list;
  for (size_t k = 0; k < offsets.size(); ++k) {
    const auto at = [&](HostTensor& t) {
      return make_view(t.data<float>() + offsets[k], DType::kF32, Shape{sizes[k]}, Device::Cpu(), t.name().c_str());
    };
    AdamWArgs a{at(st.p), at(st.m), at(st.v), at(g)};
    a.lr = lr;
    a.step = step;
    a.weight_decay = k % 2 == 0 ? 0.1f : 0.0f;
    list.push_back(a);
  }
  return list;
}

TEST(AdamW, GroupedCallsEqualTheSingleCallsBitForBit) {
  // Three entries (one empty) of one flat state, with a gap nobody owns: the group must do what the
  // single calls do, entry by entry, and leave the gap alone.
  const std::vector<int64_t> offsets = {0, 40, 40, 100}, sizes = {37, 0, 55, 3};
  AdamState grouped(DType::kF32, 110), single(DType::kF32, 110);
  grouped.p.FillNormal(Rng(14, "adamw/p"), 0, 1.0);
  single.p = grouped.p.Clone();
  HostTensor g("grad", DType::kF32, {110});
  g.FillNormal(Rng(14, "adamw/g"), 0, 1.0);
  for (int64_t k = 1; k <= 3; ++k) {
    const std::vector<AdamWArgs> list = slices_of(grouped, g, offsets, sizes, 1e-2f, k);
    adamw_update_group({}, list);
    for (const AdamWArgs& a : slices_of(single, g, offsets, sizes, 1e-2f, k)) adamw_update({}, a);
    std::vector<AdamApplyArgs> applies;
    for (const AdamWArgs& a : list) applies.push_back({a.m, a.grad, 1e-2f, a.weight_decay});  // m: any tensor
    adam_apply_group({}, applies);
    for (const AdamWArgs& a : slices_of(single, g, offsets, sizes, 1e-2f, k)) {
      adam_apply({}, {a.m, a.grad, 1e-2f, a.weight_decay});
    }
  }
  EXPECT_TRUE(bitwise_equal(grouped.p, single.p));
  EXPECT_TRUE(bitwise_equal(grouped.m, single.m));
  EXPECT_TRUE(bitwise_equal(grouped.v, single.v));
  EXPECT_EQ(grouped.m.get(97), 0.0);  // the gap [95, 100) is in no entry
  EXPECT_NE(grouped.m.get(0), 0.0);   // the entries really ran
  adamw_update_group({}, {});         // an empty list does nothing
}

TEST(AdamW, FusedPublishWritesTheCastOfTheUpdatedParam) {
  // kernels/adamw.h `value`: the state evolves exactly as without it, and value holds the updated param
  // as cast() writes it (f32: the bits; bf16: rounded to nearest even), for adamw_update and adam_apply,
  // single and grouped. One element is a NaN with a payload, so the NaN path of the cast is covered too.
  const int64_t n = 1031, half = 500;
  for (const DType vt : {DType::kF32, DType::kBF16}) {
    AdamState plain(DType::kF32, n), fused(DType::kF32, n);
    plain.p.FillNormal(Rng(15, "adamw/p"), 0, 1.0);
    plain.p.data<float>()[7] = std::bit_cast<float>(0xffc12345u);
    fused.p = plain.p.Clone();
    HostTensor value("value", vt, {n}), want("cast of param", vt, {n});
    const auto slice = [&](HostTensor& t, int64_t off, int64_t len) {
      return make_view(static_cast<char*>(t.view().data) + off * dtype_size(t.dtype()), t.dtype(), Shape{len},
                       Device::Cpu(), t.name().c_str());
    };
    const std::string what = "value " + std::string(dtype_name(vt));
    const auto expect_published = [&](const std::string& step) {
      cast({}, {want.view(), plain.p.view()});
      EXPECT_TRUE(bitwise_equal(fused.p, plain.p)) << step;
      EXPECT_TRUE(bitwise_equal(fused.m, plain.m)) << step;
      EXPECT_TRUE(bitwise_equal(fused.v, plain.v)) << step;
      EXPECT_TRUE(bitwise_equal(value, want)) << what << ", " << step;
    };
    for (int64_t k = 1; k <= 3; ++k) {
      HostTensor g("grad", DType::kF32, {n});
      g.FillNormal(Rng(15, "adamw/g"), static_cast<uint64_t>(k) * n, 1.0);
      AdamWArgs a = plain.args(g, 1e-2f, k), b = fused.args(g, 1e-2f, k);
      a.weight_decay = b.weight_decay = 0.1f;
      b.value = value.view();
      adamw_update({}, a);
      adamw_update({}, b);
      expect_published("adamw_update " + std::to_string(k));
      adam_apply({}, {plain.p.view(), g.view(), 1e-2f, 0.1f});
      adam_apply({}, {fused.p.view(), g.view(), 1e-2f, 0.1f, value.view()});
      expect_published("adam_apply " + std::to_string(k));
      // Grouped: two entries, each with its slice of value.
      std::vector<AdamWArgs> list = slices_of(fused, g, {0, half}, {half, n - half}, 1e-2f, k + 3);
      std::vector<AdamApplyArgs> applies;
      for (size_t e = 0; e < 2; ++e) {
        list[e].value = e == 0 ? slice(value, 0, half) : slice(value, half, n - half);
        applies.push_back({list[e].param, list[e].grad, 1e-2f, list[e].weight_decay, list[e].value});
      }
      adamw_update_group({}, list);
      for (const AdamWArgs& e : slices_of(plain, g, {0, half}, {half, n - half}, 1e-2f, k + 3)) adamw_update({}, e);
      expect_published("adamw_update_group " + std::to_string(k));
      adam_apply_group({}, applies);
      adam_apply({}, {slice(plain.p, 0, half), slice(g, 0, half), 1e-2f, list[0].weight_decay});
      adam_apply({}, {slice(plain.p, half, n - half), slice(g, half, n - half), 1e-2f, list[1].weight_decay});
      expect_published("adam_apply_group " + std::to_string(k));
    }
    EXPECT_TRUE(std::isnan(plain.p.get(7)));
    EXPECT_NE(plain.p.get(0), 0.0);
  }
}

TEST(AdamWDeathTest, FusedPublishNeedsItsOwnMemoryOfTheParamsSize) {
  HostTensor p("w", DType::kF32, {8}), m("w.m", DType::kF32, {8}), v("w.v", DType::kF32, {8}),
      g("w.grad", DType::kF32, {8});
  HostTensor short_value("w.value", DType::kBF16, {7}), f64_value("w.value", DType::kF64, {8});
  AdamWArgs a{p.view(), m.view(), v.view(), g.view(), 1e-3f};
  a.value = short_value.view();
  EXPECT_DEATH(adamw_update({}, a), "adamw_update: value 'w.value' has 7 elements but 'w' has 8");
  a.value = f64_value.view();
  EXPECT_DEATH(adamw_update({}, a), "adamw_update: value 'w.value' is f64; the fused publish writes f32 or bf16");
  a.value = m.view();
  EXPECT_DEATH(adamw_update({}, a), "adamw_update: value 'w.m' overlaps 'w.m'; the publish needs its own memory");
  EXPECT_DEATH(adam_apply({}, {p.view(), g.view(), 1e-3f, 0.0f, g.view()}),
               "adam_apply: value 'w.grad' overlaps 'w.grad'");
  HostTensor p64("w64", DType::kF64, {8}), m64("m", DType::kF64, {8}), v64("v", DType::kF64, {8}),
      g64("g", DType::kF64, {8});
  AdamWArgs b{p64.view(), m64.view(), v64.view(), g64.view(), 1e-3f};
  b.value = p.view();
  EXPECT_DEATH(adamw_update_group({}, std::span(&b, 1)),
               "adamw_update_group: the fused publish into 'w' casts f32 master weights; 'w64' is f64");
}

TEST(AdamWDeathTest, GroupedEntriesShareOneStep) {
  AdamState st(DType::kF32, 20);
  HostTensor g("grad", DType::kF32, {20});
  std::vector<AdamWArgs> list = slices_of(st, g, {0, 10}, {10, 10}, 1e-3f, 4);
  list[1].step = 5;
  EXPECT_DEATH(adamw_update_group({}, list), "adamw_update_group: entry 1 \\('param'\\) has .* step 5, .* but entry 0 "
                                             "\\('param'\\) has .* step 4,.*only weight_decay may differ");
  std::vector<AdamApplyArgs> applies = {{list[0].param, list[0].grad, 1e-3f}, {list[1].param, list[1].grad, 2e-3f}};
  EXPECT_DEATH(adam_apply_group({}, applies), "adam_apply_group: entry 1 \\('param'\\) has lr 0.002 but entry 0");
}

TEST(AdamWDeathTest, GroupedEntriesMustNotOverlap) {
  // Entry 1's param starts inside entry 0's: on a GPU both would update those elements at once.
  AdamState st(DType::kF32, 20);
  HostTensor g("grad", DType::kF32, {20});
  const std::vector<AdamWArgs> list = slices_of(st, g, {0, 8}, {10, 10}, 1e-3f, 1);
  EXPECT_DEATH(adamw_update_group({}, list),
               "adamw_update_group: entry 0's '(param|m|v)' \\(40 bytes\\) overlaps entry 1's '(param|m|v)' "
               "\\(40 bytes\\), and one of them is written");
  // Reading another entry's tensor is as bad when the other entry writes it.
  const std::vector<AdamApplyArgs> applies = {
      {list[0].param, list[0].grad, 1e-3f},
      {make_view(g.data<float>() + 12, DType::kF32, Shape{8}, Device::Cpu(), "other"),
       make_view(st.p.data<float>() + 2, DType::kF32, Shape{8}, Device::Cpu(), "reads entry 0"), 1e-3f}};
  EXPECT_DEATH(adam_apply_group({}, applies), "adam_apply_group: entry 0's 'param' \\(40 bytes\\) overlaps entry 1's "
                                              "'reads entry 0'");
}

TEST(AdamWDeathTest, MismatchedMomentIsNamed) {
  HostTensor p("layers.0.attn.q.weight", DType::kF32, {8}), m("layers.0.attn.q.weight.m", DType::kF32, {8}),
      v("layers.0.attn.q.weight.v", DType::kF32, {7}), g("layers.0.attn.q.weight.grad", DType::kF32, {8});
  EXPECT_DEATH(adamw_update({}, {p.view(), m.view(), v.view(), g.view(), 1e-3f}),
               "adamw_update: 'layers.0.attn.q.weight.v' has shape \\(7\\) but expected \\(8\\)");
}

TEST(AdamWDeathTest, StepZeroIsRejected) {
  HostTensor p("p", DType::kF32, {4}), m("m", DType::kF32, {4}), v("v", DType::kF32, {4}), g("g", DType::kF32, {4});
  AdamWArgs a{p.view(), m.view(), v.view(), g.view(), 1e-3f};
  a.step = 0;
  EXPECT_DEATH(adamw_update({}, a), "step is 0; it is 1-based");
}

}  // namespace
}  // namespace om
