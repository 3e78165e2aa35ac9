// Fake quantisation (PAPER.md "Quantisation"): quantise to integers and back to float in place, so
// a float matmul then sees exactly the quantised values. Only the linear layers of a model are
// quantised (QKV, O, gate/up, down, LM head); the evaluator applies the weight functions to copies of
// their weights and the activation function to their inputs (model/llama.h ForwardProbe).
//
// Absmax (symmetric) int8:  s = max|x| / 127 over the group; q = clamp(round(x / s), −127, 127);
//                           x ← q · s   (a group of zeros stays zero: s = 0 is skipped)
// Zeropoint (asymmetric, min–max) int4: over the group lo = min x, hi = max x; s = (hi − lo) / 15;
//                           z = round(−lo / s); q = clamp(round(x / s) + z, 0, 15); x ← (q − z) · s
//                           (a constant group, hi = lo, is left unchanged: exact)
// round() is round-half-away-from-zero (std::round), in float arithmetic on the float inputs.
// Schemes (weights W (out, in) row-major; activations X (tokens, in)):
//   w8a8-coarse    W absmax int8 per tensor,          X absmax int8 per tensor (dynamic: per call)
//   w8a8-moderate  W absmax int8 per output channel,  X absmax int8 per tensor
//   w8a8-fine      W absmax int8 per output channel,  X absmax int8 per token (row)
//   w4             W zeropoint int4 per output row,   X unquantised
//   w4-g128        W zeropoint int4 per group of 128 consecutive inputs of a row, X unquantised
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace om {

enum class QuantScheme : uint8_t { kW8A8Coarse, kW8A8Moderate, kW8A8Fine, kW4, kW4G128 };

std::string_view quant_scheme_name(QuantScheme s);  // "w8a8-coarse", ...
// "w8a8-coarse,w4-g128" (or "all") → schemes, in the given order; InvalidArgument names --quant.
StatusOr<std::vector<QuantScheme>> parse_quant_list(std::string_view list);

// Weights: w (rows, cols) row-major, in place.
void fake_quant_weight(QuantScheme scheme, float* w, int64_t rows, int64_t cols);
// Activations: x (rows, cols) row-major, in place; a no-op for the weight-only schemes.
void fake_quant_activation(QuantScheme scheme, float* x, int64_t rows, int64_t cols);

// The building blocks (tests use them directly).
void absmax_int8(float* x, int64_t n);                                   // one group of n
void absmax_int8_rows(float* x, int64_t rows, int64_t cols);             // one group per row
void zeropoint_int4(float* x, int64_t n);                                // one group of n
void zeropoint_int4_groups(float* x, int64_t rows, int64_t cols, int64_t group);  // groups of ≤ `group` per row

}  // namespace om
