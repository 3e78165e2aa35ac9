// Deterministic cross-row reductions for the CPU reference.
// Rows are grouped into fixed blocks of kReduceBlockRows; each block is summed serially (one
// thread), then the block partials are summed in block order. The grouping never depends on the
// thread count, so results are bit-identical for any OMP_NUM_THREADS.
#pragma once

#include <cstdint>

namespace om::cpu {

inline constexpr int64_t kReduceBlockRows = 64;

inline int64_t reduce_block_count(int64_t rows) { return (rows + kReduceBlockRows - 1) / kReduceBlockRows; }

}  // namespace om::cpu
