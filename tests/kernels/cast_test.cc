// cast (kernels/cast.h) on the CPU: f32 -> bf16 round-to-nearest-even known answers (ties, overflow,
// signed zeros, subnormals, NaN), agreement with an independent nearest-even derivation on
// structured and random bit patterns, the half-ulp error bound on random normals, the exact
// bf16 -> f32 widening and round trip of all 65536 bf16 patterns, same-dtype copies, and the
// validation messages; cast_group equals each entry's cast and refuses overlapping entries.
// Tolerances: every comparison is exact (rule 1) except the half-ulp bound, which is the definition
// of round-to-nearest (derived where it is asserted).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cast.h"
#include "kernels/check/tolerance.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bf16 tensors hold raw bits (HostTensor::data<uint16_t> would check for kU16).
uint16_t* bf16_bits(HostTensor& t) { return static_cast<uint16_t*>(t.view().data); }

// f32 -> bf16 through the op (the dispatcher, so validation runs too), on raw f32 bit patterns.
std::vector<uint16_t> to_bf16(const std::vector<uint32_t>& f32_bits) {
  const int64_t n = static_cast<int64_t>(f32_bits.size());
  HostTensor in("in", DType::kF32, {n}), out("out", DType::kBF16, {n});
  std::memcpy(in.view().data, f32_bits.data(), f32_bits.size() * 4);
  cast(ExecContext{}, {out.view(), in.view()});
  return std::vector<uint16_t>(bf16_bits(out), bf16_bits(out) + n);
}

bool is_nan_bf16(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

// Round to nearest, ties to even, derived from the two bf16 neighbours of a finite x instead of
// core/dtype.h's carry trick: lo = x truncated toward zero (the high 16 bits), hi = the next bf16 away
// from zero (lo + 1 in magnitude; past 0x7f7f that is 2^128, where an unbounded exponent would put
// it, and the result is then inf). Distances are exact in double: x, lo and hi are multiples of x's
// f32 ulp less than 2^17 ulps apart.
uint16_t nearest_even_reference(uint32_t x_bits) {
  const uint16_t lo = static_cast<uint16_t>(x_bits >> 16);
  if ((x_bits & 0xffffu) == 0) return lo;  // x is a bf16 value
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  const double x = std::fabs(static_cast<double>(float_of(x_bits)));
  auto magnitude = [](uint16_t b) { return std::fabs(static_cast<double>(float_of(static_cast<uint32_t>(b) << 16))); };
  const double lo_v = magnitude(lo);
  const double hi_v = (hi & 0x7fffu) == 0x7f80u ? std::ldexp(1.0, 128) : magnitude(hi);
  const double d_lo = x - lo_v, d_hi = hi_v - x;
  if (d_lo < d_hi) return lo;
  if (d_hi < d_lo) return hi;
  return (lo & 1u) == 0 ? lo : hi;  // a tie: the even significand
}

TEST(Cast, F32ToBf16KnownAnswers) {
  // bf16 keeps the top 16 bits of an f32: 8 significant bits, so 1 has neighbours 1 - 2^-8 (0x3f7f)
  // and 1 + 2^-7 (0x3f81). Each row is derived by hand from that spacing.
  struct Row {
    uint32_t in;
    uint16_t want;
    const char* why;
  };
  const Row rows[] = {
      {0x3f800000u, 0x3f80u, "1 is a bf16"},
      {0x3f808000u, 0x3f80u, "1 + 2^-8: tie between 1 (even) and 1 + 2^-7 (odd) -> 1"},
      {0x3f818000u, 0x3f82u, "1 + 3*2^-8: tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even) -> 1 + 2^-6"},
      {0x3f808001u, 0x3f81u, "1 + 2^-8 + 2^-23: just past the tie -> up"},
      {0x3f807fffu, 0x3f80u, "1 + 2^-8 - 2^-23: just below the tie -> down"},
      {0x3fffffffu, 0x4000u, "2 - 2^-23: rounds up across the exponent to 2"},
      {0xbf808000u, 0xbf80u, "-(1 + 2^-8): ties to even by magnitude, sign kept"},
      {0xbf818000u, 0xbf82u, "-(1 + 3*2^-8) -> -(1 + 2^-6)"},
      {0x40490fdbu, 0x4049u, "pi (low half 0x0fdb < 0x8000) -> 3.140625"},
      {0x7f7f0000u, 0x7f7fu, "the largest bf16 is exact"},
      {0x7f7f7fffu, 0x7f7fu, "below the midpoint between the largest bf16 and 2^128 -> stays finite"},
      {0x7f7f8000u, 0x7f80u, "the midpoint itself: 0x7f7f is odd, so the tie goes to 2^128 = inf"},
      {0x7f7fffffu, 0x7f80u, "the largest f32 -> +inf"},
      {0xff7fffffu, 0xff80u, "the most negative f32 -> -inf"},
      {0x7f800000u, 0x7f80u, "+inf"},
      {0xff800000u, 0xff80u, "-inf"},
      {0x00000000u, 0x0000u, "+0"},
      {0x80000000u, 0x8000u, "-0 keeps its sign"},
      {0x00000001u, 0x0000u, "the smallest f32 subnormal 2^-149 -> +0"},
      {0x80000001u, 0x8000u, "-2^-149 -> -0"},
      {0x00010000u, 0x0001u, "the smallest bf16 subnormal 2^-133 is exact"},
      {0x00008000u, 0x0000u, "2^-134: tie between 0 (even) and 2^-133 -> 0"},
      {0x00008001u, 0x0001u, "just past 2^-134 -> 2^-133"},
      {0x00018000u, 0x0002u, "3*2^-134: tie between 2^-133 (odd) and 2^-132 (even) -> 2^-132"},
      {0x007fffffu, 0x0080u, "the largest f32 subnormal rounds up to the smallest normal 2^-126"},
      {0x807f8000u, 0x8080u, "a negative subnormal tie to even -> -2^-126"},
  };
  std::vector<uint32_t> in;
  for (const Row& r : rows) in.push_back(r.in);
  const std::vector<uint16_t> got = to_bf16(in);
  for (size_t i = 0; i < std::size(rows); ++i) {
    EXPECT_EQ(got[i], rows[i].want) << std::hex << "f32 0x" << rows[i].in << ": " << rows[i].why;
    EXPECT_EQ(nearest_even_reference(rows[i].in), rows[i].want) << "the test's reference disagrees: " << rows[i].why;
  }
}

TEST(Cast, F32ToBf16NanStaysAQuietNanOfTheSameSign) {
  // Quiet and signalling NaNs, both signs, payloads in the high and in the low (truncated) half.
  const std::vector<uint32_t> nans = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,
                                      0x7fa12345u, 0x7fbfffffu, 0xfff0000fu, 0x7fffffffu};
  const std::vector<uint16_t> got = to_bf16(nans);
  for (size_t i = 0; i < nans.size(); ++i) {
    EXPECT_TRUE(is_nan_bf16(got[i])) << std::hex << "f32 0x" << nans[i] << " -> bf16 0x" << got[i];
    EXPECT_NE(got[i] & 0x0040u, 0u) << std::hex << "f32 0x" << nans[i] << " -> 0x" << got[i] << " is not quiet";
    EXPECT_EQ(static_cast<uint32_t>(got[i] >> 15), nans[i] >> 31) << std::hex << "0x" << nans[i] << " lost its sign";
  }
}

TEST(Cast, F32ToBf16IsNearestEvenOnStructuredAndRandomBitPatterns) {
  // Every sign/exponent/top-mantissa combination (all 65536 high halves) with the low halves where
  // rounding decides (exact, just above, below, at and past the tie, all ones), then 2^20 random
  // patterns. NaNs are left to the test above (their result is not a rounding).
  std::vector<uint32_t> in;
  for (uint32_t hi = 0; hi < 65536; ++hi)
    for (uint32_t low : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) in.push_back(hi << 16 | low);
  const Rng rng(8, "cast/random_bits");
  for (uint64_t i = 0; i < (uint64_t{1} << 20); ++i) in.push_back(rng.Block(i)[0]);
  std::erase_if(in, [](uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; });
  const std::vector<uint16_t> got = to_bf16(in);
  int64_t bad = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const uint16_t want = nearest_even_reference(in[i]);
    if (got[i] != want && ++bad <= 5)
      ADD_FAILURE() << std::hex << "f32 0x" << in[i] << " -> 0x" << got[i] << ", nearest even is 0x" << want;
  }
  EXPECT_EQ(bad, 0) << "of " << in.size() << " patterns";
}

TEST(Cast, F32ToBf16ErrorIsAtMostHalfAnUlpOnRandomNormals) {
  // Round to nearest with p = 8 significant bits: |rn(x) - x| <= half the spacing 2^(e-7) of
  // [2^e, 2^(e+1)), so |rn(x) - x| / |x| <= 2^-8 = dtype_eps(bf16) / 2 (eps = 2^-7 is the spacing at
  // 1). That is the bound, not a tolerance: truncation (up to 2^-7) or any other mis-rounding fails it.
  // The bound is attained up to a factor 0.99 on 2^20 samples (x just above a power of two with its
  // low bits near the tie), so the check below is tight rather than vacuous.
  const int64_t n = int64_t{1} << 20;
  HostTensor x("x", DType::kF32, {n}), y("y", DType::kBF16, {n});
  Rng(9, "cast/normals").FillNormal(x.data<float>(), n, 0, 0.0f, 1.0f);
  cast(ExecContext{}, {y.view(), x.view()});
  const double bound = dtype_eps(DType::kBF16) / 2;
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x.get(i);
    if (xi != 0.0) worst = std::max(worst, std::fabs(y.get(i) - xi) / std::fabs(xi));
  }
  EXPECT_LE(worst, bound) << "largest relative error " << worst;
  EXPECT_GT(worst, 0.99 * bound) << "the samples never came near the bound";
}

TEST(Cast, Bf16ToF32IsExactAndEveryBitPatternRoundTrips) {
  const int64_t n = 65536;
  HostTensor b("b", DType::kBF16, {n}), f("f", DType::kF32, {n}), back("back", DType::kBF16, {n});
  for (int64_t i = 0; i < n; ++i) bf16_bits(b)[i] = static_cast<uint16_t>(i);
  cast(ExecContext{}, {f.view(), b.view()});
  cast(ExecContext{}, {back.view(), f.view()});
  int64_t not_widened = 0, not_round_tripped = 0;
  for (int64_t i = 0; i < n; ++i) {
    // Widening is the bits shifted into the high half: exact for numbers, payload-preserving for NaNs.
    not_widened += bits_of(f.data<float>()[i]) != static_cast<uint32_t>(i) << 16;
    const uint16_t r = bf16_bits(back)[i];
    if (is_nan_bf16(static_cast<uint16_t>(i))) {
      // A NaN comes back a NaN of the same sign, quiet (identical if it was quiet already).
      const bool quiet_in = (i & 0x0040) != 0;
      not_round_tripped += !is_nan_bf16(r) || (r >> 15) != (i >> 15) || (r & 0x0040u) == 0 || (quiet_in && r != i);
    } else {
      not_round_tripped += r != i;  // every other bf16 value is an f32 value, so it rounds to itself
    }
  }
  EXPECT_EQ(not_widened, 0);
  EXPECT_EQ(not_round_tripped, 0);
}

TEST(Cast, SameDtypeIsAByteCopyAndShapesMayDiffer) {
  // A (2, 3) tensor into a (6) one, with a NaN payload and -0 that arithmetic could disturb.
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF64}) {
    HostTensor in("in", dt, {2, 3}), out("out", dt, {6});
    in.FillNormal(Rng(10, "cast/copy"), 0, 3.0);
    in.set(1, -0.0);
    in.set(4, std::numeric_limits<double>::quiet_NaN());
    cast(ExecContext{}, {out.view(), in.view()});
    EXPECT_EQ(std::memcmp(out.view().data, in.view().data, in.view().nbytes()), 0) << dtype_name(dt);
  }
  // Conversions ignore shapes too: (3, 1) f32 -> (3) bf16.
  HostTensor in("in", DType::kF32, {3, 1}), out("out", DType::kBF16, {3});
  in.set(0, 1.0);
  in.set(1, -2.5);
  in.set(2, 0.1);
  cast(ExecContext{}, {out.view(), in.view()});
  EXPECT_EQ(out.get(0), 1.0);
  EXPECT_EQ(out.get(1), -2.5);
  EXPECT_EQ(bf16_bits(out)[2], 0x3dcdu);  // 0.1f = 0x3dcccccd: low half 0xcccd > 0x8000 -> up
}

TEST(Cast, EmptyTensorsAreANoOp) {
  HostTensor in("in", DType::kF32, {0, 4}), out("out", DType::kBF16, {0});
  cast(ExecContext{}, {out.view(), in.view()});
}

TEST(Cast, GroupedCastIsEachEntrysCast) {
  // Mixed dtype pairs and an empty entry in one call: each output as its own cast would write it.
  HostTensor a("a", DType::kF32, {5}), b("b", DType::kBF16, {3}), c("c", DType::kF64, {2}), e("e", DType::kF32, {0});
  a.FillNormal(Rng(11, "cast/group/a"), 0, 3.0);
  b.FillNormal(Rng(11, "cast/group/b"), 0, 3.0);
  c.FillNormal(Rng(11, "cast/group/c"), 0, 3.0);
  HostTensor a_out("a.bf16", DType::kBF16, {5}), b_out("b.f32", DType::kF32, {3}), c_out("c.copy", DType::kF64, {2}),
      e_out("e.out", DType::kBF16, {0});
  cast_group(ExecContext{}, std::vector<CastArgs>{{a_out.view(), a.view()},
                                                  {b_out.view(), b.view()},
                                                  {c_out.view(), c.view()},
                                                  {e_out.view(), e.view()}});
  HostTensor a_want("a.want", DType::kBF16, {5}), b_want("b.want", DType::kF32, {3});
  cast(ExecContext{}, {a_want.view(), a.view()});
  cast(ExecContext{}, {b_want.view(), b.view()});
  EXPECT_TRUE(bitwise_equal(a_out, a_want));
  EXPECT_TRUE(bitwise_equal(b_out, b_want));
  EXPECT_TRUE(bitwise_equal(c_out, c));
  EXPECT_NE(a_out.get(0), 0.0);  // written
}

TEST(CastDeathTest, GroupedEntriesMustNotOverlap) {
  // Entry 1 reads what entry 0 writes: sequential on a CPU, a race on a GPU, so refused on both.
  HostTensor x("x", DType::kF32, {8}), y("y", DType::kF32, {8}), z("z", DType::kF32, {8});
  EXPECT_DEATH(cast_group(ExecContext{}, std::vector<CastArgs>{{y.view(), x.view()}, {z.view(), y.view()}}),
               "cast_group: entry 0's 'y' \\(32 bytes\\) overlaps entry 1's 'y' \\(32 bytes\\), and one of them is "
               "written");
  // Each entry is checked as a cast on its own, named by the grouped call.
  HostTensor i32("ids", DType::kI32, {8});
  EXPECT_DEATH(cast_group(ExecContext{}, std::vector<CastArgs>{{y.view(), x.view()}, {z.view(), i32.view()}}),
               "cast_group: no CPU conversion from i32 \\('ids'");
}

TEST(CastDeathTest, NumelMismatchNamesBothTensors) {
  HostTensor in("layers.0.attn.q.weight", DType::kF32, {4, 8});
  HostTensor out("layers.0.attn.q.weight.bf16", DType::kBF16, {4, 4});
  EXPECT_DEATH(cast(ExecContext{}, {out.view(), in.view()}),
               "cast: 'out' \\('layers.0.attn.q.weight.bf16' bf16 \\(4, 4\\)\\) has 16 elements but 'in' "
               "\\('layers.0.attn.q.weight' f32 \\(4, 8\\)\\) has 32");
}

TEST(CastDeathTest, UnsupportedConversionsNameTheDtypes) {
  HostTensor f32("master", DType::kF32, {4}), f64("wide", DType::kF64, {4}), i32("ids", DType::kI32, {4});
  EXPECT_DEATH(cast(ExecContext{}, {f64.view(), f32.view()}),
               "cast: no CPU conversion from f32 \\('master', 4 elements\\) to f64 \\('wide'\\)");
  EXPECT_DEATH(cast(ExecContext{}, {f32.view(), i32.view()}), "cast: no CPU conversion from i32 \\('ids'");
}

TEST(CastDeathTest, OverlappingOutputIsRefused) {
  // A bf16 view over the first half of an f32 buffer: converting in place would overwrite inputs.
  HostTensor buf("buf", DType::kF32, {8});
  const TensorView half = make_view(buf.view().data, DType::kBF16, Shape{8}, Device::Cpu(), "buf.bf16");
  EXPECT_DEATH(cast(ExecContext{}, {half, buf.view()}), "cast: output 'buf.bf16' overlaps input 'buf'");
}

}  // namespace
}  // namespace om
