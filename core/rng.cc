#include "core/rng.h"

#include <cmath>
#include <numbers>

#include "core/portable_normal.h"

namespace om {

PhiloxBlock philox4x32_10(PhiloxBlock c, std::array<uint32_t, 2> k) {
  // One definition for host and device code (core/portable_normal.h).
  const portable::Words out = portable::philox(portable::Words{{c[0], c[1], c[2], c[3]}}, k[0], k[1]);
  return {out.w[0], out.w[1], out.w[2], out.w[3]};
}

uint64_t rng_stream_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : name) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

Rng::Rng(uint64_t seed, std::string_view stream) : seed_(seed), stream_(rng_stream_id(stream)) {}

PhiloxBlock Rng::Block(uint64_t i) const {
  PhiloxBlock ctr = {static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(stream_),
                     static_cast<uint32_t>(stream_ >> 32)};
  return philox4x32_10(ctr, {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

float Rng::Uniform(uint64_t i) const { return static_cast<float>(Block(i)[0] >> 8) * 0x1.0p-24f; }

static double u53(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 21) ^ (lo >> 11);  // 53 bits
  return static_cast<double>(bits & ((1ull << 53) - 1)) * 0x1.0p-53;
}

double Rng::UniformDouble(uint64_t i) const {
  PhiloxBlock b = Block(i);
  return u53(b[0], b[1]);
}

double Rng::NormalDouble(uint64_t i) const {
  PhiloxBlock b = Block(i);
  double u1 = 1.0 - u53(b[0], b[1]);  // (0, 1]: log is finite
  double u2 = u53(b[2], b[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void Rng::FillUniform(float* out, int64_t n, uint64_t offset, float lo, float hi) const {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) out[j] = lo + (hi - lo) * Uniform(offset + static_cast<uint64_t>(j));
}

void Rng::FillNormal(float* out, int64_t n, uint64_t offset, float mean, float stddev) const {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) out[j] = mean + stddev * Normal(offset + static_cast<uint64_t>(j));
}

void Rng::FillNormal(double* out, int64_t n, uint64_t offset, double mean, double stddev) const {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) out[j] = mean + stddev * NormalDouble(offset + static_cast<uint64_t>(j));
}

}  // namespace om
