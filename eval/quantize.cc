// Fake quantisation (eval/quantize.h). Every formula is evaluated in float on the float inputs,
// exactly as the header writes it (x / s, not x * (1 / s): the two differ in the last bit and would
// move round-half cases). Rows are independent and each group is computed by one thread in index
// order, so results do not depend on the OpenMP thread count; the per-tensor max is a max-reduction,
// which is exact in any order. Inputs are expected finite: a NaN stays NaN (and one at the start
// of a zeropoint group makes the whole group NaN).
#include "eval/quantize.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/check.h"

namespace om {
namespace {

constexpr float kInt8Max = 127.0f;  // symmetric int8: q in [-127, 127] (-128 unused, as in LLM.int8)
constexpr float kInt4Max = 15.0f;   // asymmetric int4: q in [0, 15]

struct SchemeName {
  QuantScheme scheme;
  std::string_view name;
};
// The header's order; "all" expands to this list.
constexpr std::array<SchemeName, 5> kSchemes = {{
    {QuantScheme::kW8A8Coarse, "w8a8-coarse"},
    {QuantScheme::kW8A8Moderate, "w8a8-moderate"},
    {QuantScheme::kW8A8Fine, "w8a8-fine"},
    {QuantScheme::kW4, "w4"},
    {QuantScheme::kW4G128, "w4-g128"},
}};
constexpr int64_t kGroup128 = 128;

std::string valid_names() {
  std::string s;
  for (const SchemeName& e : kSchemes) {
    s += std::string(e.name);
    s += ", ";
  }
  return s + "all";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One absmax element: clamp(round(x / s), -127, 127) * s, s > 0. With s = max|x| / 127 the clamp
// never binds for normal floats (fl(x / s) <= 127 (1 + u)^2 < 127.5), but it is the definition.
inline float absmax_element(float x, float s) { return std::clamp(std::round(x / s), -kInt8Max, kInt8Max) * s; }

float max_abs(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

std::string_view quant_scheme_name(QuantScheme s) {
  for (const SchemeName& e : kSchemes)
    if (e.scheme == s) return e.name;
  OM_CHECK(false, "unknown QuantScheme %d", static_cast<int>(s));
  return {};
}

StatusOr<std::vector<QuantScheme>> parse_quant_list(std::string_view list) {
  const std::string_view whole = trim(list);
  if (whole.empty())
    return Status::InvalidArgument("--quant: empty list; give a comma-separated list of " + valid_names());
  if (whole == "all") {
    std::vector<QuantScheme> all;
    for (const SchemeName& e : kSchemes) all.push_back(e.scheme);
    return all;
  }
  std::vector<QuantScheme> out;
  size_t begin = 0;
  while (true) {
    const size_t comma = whole.find(',', begin);
    const std::string_view item = trim(whole.substr(begin, comma == std::string_view::npos ? comma : comma - begin));
    if (item == "all")
      return Status::InvalidArgument("--quant '" + std::string(list) + "': 'all' must stand alone; valid names: " +
                                     valid_names());
    const SchemeName* found = nullptr;
    for (const SchemeName& e : kSchemes)
      if (e.name == item) found = &e;
    if (found == nullptr)
      return Status::InvalidArgument("--quant '" + std::string(list) + "': unknown scheme '" + std::string(item) +
                                     "'; valid names: " + valid_names());
    if (std::find(out.begin(), out.end(), found->scheme) != out.end())
      return Status::InvalidArgument("--quant '" + std::string(list) + "': scheme '" + std::string(item) +
                                     "' given twice; valid names: " + valid_names());
    out.push_back(found->scheme);
    if (comma == std::string_view::npos) break;
    begin = comma + 1;
  }
  return out;
}

void absmax_int8(float* x, int64_t n) {
  OM_CHECK(n >= 0, "absmax_int8: n = %lld", static_cast<long long>(n));
  // One group, possibly a whole tensor: both passes are split across threads. The max is exact in
  // any order; the second pass is element-wise.
  float m = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  const float s = m / kInt8Max;
  if (s == 0.0f) return;  // all zeros (or max|x| / 127 underflows): nothing to do, and no 0 / 0
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = absmax_element(x[i], s);
}

void absmax_int8_rows(float* x, int64_t rows, int64_t cols) {
  OM_CHECK(rows >= 0 && cols >= 0, "absmax_int8_rows: shape (%lld, %lld)", static_cast<long long>(rows),
           static_cast<long long>(cols));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    const float s = max_abs(row, cols) / kInt8Max;
    if (s == 0.0f) continue;  // an all-zero row stays zero
    for (int64_t c = 0; c < cols; ++c) row[c] = absmax_element(row[c], s);
  }
}

void zeropoint_int4(float* x, int64_t n) {
  OM_CHECK(n >= 0, "zeropoint_int4: n = %lld", static_cast<long long>(n));
  if (n == 0) return;
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  const float s = (hi - lo) / kInt4Max;
  // A constant group (hi = lo, a single element included) is exact as it is. s also underflows to 0
  // when hi - lo is a few subnormals; such a group is constant to float resolution: left unchanged.
  if (s == 0.0f) return;
  const float z = std::round(-lo / s);
  // round(x / s) and z are integer-valued floats: their sum and q - z are exact while |z| < 2^24
  // (|z| <= 15 whenever lo <= 0 <= hi), so the only roundings are x / s, -lo / s and (q - z) * s.
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::clamp(std::round(x[i] / s) + z, 0.0f, kInt4Max);
    x[i] = (q - z) * s;
  }
}

void zeropoint_int4_groups(float* x, int64_t rows, int64_t cols, int64_t group) {
  OM_CHECK(rows >= 0 && cols >= 0 && group > 0, "zeropoint_int4_groups: shape (%lld, %lld), group %lld",
           static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(group));
  // Groups start at column 0 of every row; the last group of a row has cols % group elements when
  // group does not divide cols (cols 300, group 128: 128, 128, 44). No group spans two rows.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += group) zeropoint_int4(row + c0, std::min(group, cols - c0));
  }
}

void fake_quant_weight(QuantScheme scheme, float* w, int64_t rows, int64_t cols) {
  switch (scheme) {
    case QuantScheme::kW8A8Coarse: absmax_int8(w, rows * cols); return;
    case QuantScheme::kW8A8Moderate:
    case QuantScheme::kW8A8Fine: absmax_int8_rows(w, rows, cols); return;
    case QuantScheme::kW4: zeropoint_int4_groups(w, rows, cols, std::max<int64_t>(cols, 1)); return;
    case QuantScheme::kW4G128: zeropoint_int4_groups(w, rows, cols, kGroup128); return;
  }
  OM_CHECK(false, "fake_quant_weight: unknown QuantScheme %d", static_cast<int>(scheme));
}

void fake_quant_activation(QuantScheme scheme, float* x, int64_t rows, int64_t cols) {
  switch (scheme) {
    case QuantScheme::kW8A8Coarse:
    case QuantScheme::kW8A8Moderate: absmax_int8(x, rows * cols); return;
    case QuantScheme::kW8A8Fine: absmax_int8_rows(x, rows, cols); return;
    case QuantScheme::kW4:
    case QuantScheme::kW4G128: return;  // weight-only: activations stay in float
  }
  OM_CHECK(false, "fake_quant_activation: unknown QuantScheme %d", static_cast<int>(scheme));
}

}  // namespace om
