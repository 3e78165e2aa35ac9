// Counter-based RNG: Philox4x32-10 (Salmon et al., SC'11). The numbers drawn at index i are a pure
// function of (seed, stream name, i): no state advances, so any thread, rank or layout that asks
// for element i gets the same value. This is what makes initialisation and OrthoAdam rotations
// layout-invariant (DESIGN.md invariant 3).
//   key     = seed (64 bits)
//   counter = (i low 32, i high 32, stream low 32, stream high 32), stream = FNV-1a-64(name)
// Uniform(i) uses word 0 of block i; UniformDouble(i) and NormalDouble(i) use all four words.
// Normal(i) is float(NormalDouble(i)), so float and double draws of element i agree.
// Thread safety: const methods only; share freely.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace om {

using PhiloxBlock = std::array<uint32_t, 4>;

// One Philox4x32-10 evaluation.
PhiloxBlock philox4x32_10(PhiloxBlock counter, std::array<uint32_t, 2> key);

// FNV-1a 64-bit hash of a stream name ("init/layers.3.attn.q.weight").
uint64_t rng_stream_id(std::string_view name);

class Rng {
 public:
  Rng(uint64_t seed, std::string_view stream);
  Rng(uint64_t seed, uint64_t stream_id) : seed_(seed), stream_(stream_id) {}

  PhiloxBlock Block(uint64_t i) const;
  float Uniform(uint64_t i) const;         // [0, 1), 24 random bits
  double UniformDouble(uint64_t i) const;  // [0, 1), 53 random bits
  double NormalDouble(uint64_t i) const;   // N(0, 1), Box-Muller on block i
  float Normal(uint64_t i) const { return static_cast<float>(NormalDouble(i)); }

  // out[j] = draw(offset + j) for j in [0, n). OpenMP-parallel; identical for any thread count.
  void FillUniform(float* out, int64_t n, uint64_t offset, float lo, float hi) const;
  void FillNormal(float* out, int64_t n, uint64_t offset, float mean, float stddev) const;
  void FillNormal(double* out, int64_t n, uint64_t offset, double mean, double stddev) const;

  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }

 private:
  uint64_t seed_;
  uint64_t stream_;
};

}  // namespace om
