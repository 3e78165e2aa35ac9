#include "parallel/parallel_dims.h"

#include <limits>
#include <string>

#include "core/check.h"

namespace om {

StatusOr<ParallelDims> ParallelDims::Make(int64_t tp, int64_t dp, int64_t world_size) {
  if (world_size < 1 || world_size > std::numeric_limits<int>::max()) {
    return Status::InvalidArgument(format_message("world_size(%ld) must be in [1, %d] (the number of processes)",
                                                  static_cast<long>(world_size), std::numeric_limits<int>::max()));
  }
  if (tp < 1) {
    return Status::InvalidArgument(
        format_message("--tp %ld must be >= 1 (world_size(%ld))", static_cast<long>(tp), static_cast<long>(world_size)));
  }
  if (dp == -1) {
    // Inferred dp: the only failure is a tp that does not divide the job.
    if (world_size % tp != 0) {
      return Status::InvalidArgument(format_message(
          "world_size(%ld) is not divisible by tp(%ld), so dp cannot be inferred: start a multiple of --tp %ld "
          "processes or change --tp",
          static_cast<long>(world_size), static_cast<long>(tp), static_cast<long>(tp)));
    }
    dp = world_size / tp;
  }
  if (dp < 1) {
    return Status::InvalidArgument(format_message("--dp %ld must be >= 1, or -1 to infer world_size(%ld) / tp(%ld)",
                                                  static_cast<long>(dp), static_cast<long>(world_size),
                                                  static_cast<long>(tp)));
  }
  int64_t product = 0;
  const bool overflow = __builtin_mul_overflow(tp, dp, &product);
  if (overflow || product != world_size) {
    return Status::InvalidArgument(format_message(
        "tp(%ld) * dp(%ld) = %s != world_size(%ld): choose --tp and --dp whose product is the number of "
        "processes (mpirun -np / srun -n)",
        static_cast<long>(tp), static_cast<long>(dp), overflow ? "(overflow)" : std::to_string(product).c_str(),
        static_cast<long>(world_size)));
  }
  ParallelDims d;
  d.tp = tp;
  d.dp = dp;
  d.world_size = world_size;
  return d;
}

Status ParallelDims::ValidateModel(int64_t n_heads, int64_t ffn, int64_t vocab_size) const {
  // Column-parallel QKV keeps whole heads on a rank (attention needs every channel of a head).
  if (n_heads % tp != 0) {
    return Status::InvalidArgument(format_message(
        "--num-attention-heads %ld is not divisible by --tp %ld: each tp rank must own whole heads; choose a --tp "
        "that divides %ld",
        static_cast<long>(n_heads), static_cast<long>(tp), static_cast<long>(n_heads)));
  }
  // gate/up are split by columns and down by rows of the same F axis.
  if (ffn % tp != 0) {
    return Status::InvalidArgument(format_message(
        "--ffn-hidden-size %ld is not divisible by --tp %ld: each tp rank owns ffn / tp columns of gate/up and "
        "rows of down; choose a --tp that divides %ld",
        static_cast<long>(ffn), static_cast<long>(tp), static_cast<long>(ffn)));
  }
  if (vocab_size < 1) {
    return Status::InvalidArgument(
        format_message("--vocab-size %ld must be positive (tp(%ld))", static_cast<long>(vocab_size), static_cast<long>(tp)));
  }
  return Status::Ok();
}

int64_t ParallelDims::padded_vocab(int64_t vocab_size) const {
  OM_CHECK(vocab_size >= 1, "padded_vocab(%ld): vocab_size must be positive", static_cast<long>(vocab_size));
  const int64_t multiple = 128 * tp;
  return (vocab_size + multiple - 1) / multiple * multiple;
}

int ParallelDims::tp_rank(int rank) const {
  OM_CHECK(rank >= 0 && rank < world_size, "rank %d outside world_size(%ld)", rank, static_cast<long>(world_size));
  return static_cast<int>(rank % tp);
}

int ParallelDims::dp_rank(int rank) const {
  OM_CHECK(rank >= 0 && rank < world_size, "rank %d outside world_size(%ld)", rank, static_cast<long>(world_size));
  return static_cast<int>(rank / tp);
}

int ParallelDims::rank(int tp_rank, int dp_rank) const {
  OM_CHECK(tp_rank >= 0 && tp_rank < tp && dp_rank >= 0 && dp_rank < dp,
           "(tp_rank %d, dp_rank %d) outside tp(%ld) x dp(%ld)", tp_rank, dp_rank, static_cast<long>(tp),
           static_cast<long>(dp));
  return static_cast<int>(dp_rank * tp + tp_rank);
}

}  // namespace om
