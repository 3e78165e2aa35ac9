// Exact collective checks shared by the MPI tests (STYLE.md §9, nccl-tests "verifiable"): every rank
// contributes a small-integer pattern of its WORLD rank, the expected result is computed locally from
// the group's member list, and results are compared exactly (|values| < 2^10, so every partial sum is
// exact in f32, f64, i32 and i64 and any summation order gives the same bits).
// `members[g]` is the world rank of group rank g; the caller derives it from the layout, not from MPI.
// Only EXPECTs: an ASSERT failing on one rank would leave the others waiting in a collective.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/check/host_tensor.h"
#include "parallel/comm.h"

namespace om::test {

inline constexpr DType kCommDTypes[] = {DType::kF32, DType::kF64, DType::kI32, DType::kI64};

// What world rank w contributes at element i: distinct per rank and element, signed, |v| ≤ 6w + 18.
inline double sum_pattern(int w, int64_t i) { return (w + 1) * static_cast<double>(i % 13 - 6) + static_cast<double>(i % 7); }
// For max: a permutation-like pattern so the maximum comes from different ranks at different i.
inline double max_pattern(int w, int64_t i) { return static_cast<double>((w * 7 + i * 3) % 11) - 5.0; }

inline HostTensor pattern_tensor(const char* name, DType dtype, int64_t n, int world_rank, int64_t offset,
                                 double (*pattern)(int, int64_t)) {
  HostTensor t(name, dtype, Shape{n});
  for (int64_t i = 0; i < n; ++i) t.set(i, pattern(world_rank, offset + i));
  return t;
}

// Counts the elements of `t` that differ from expected(i); reports the first few.
template <typename Expected>
int64_t count_mismatches(const HostTensor& t, Expected expected, const std::string& what) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.get(i) != expected(i)) {
      if (bad < 3) ADD_FAILURE() << what << ": element " << i << " is " << t.get(i) << ", expected " << expected(i);
      ++bad;
    }
  }
  return bad;
}

inline std::string label(const Comm& comm, const char* op, DType dtype, int64_t n) {
  return "comm '" + comm.name() + "' (size " + std::to_string(comm.size()) + ") " + op + " " +
         std::string(dtype_name(dtype)) + " n=" + std::to_string(n);
}

// all_reduce sum and max, reduce_scatter (out of place and in place), all_gather (out of place and in
// place) and broadcast from two roots (one non-zero when size > 1), in every supported dtype, with
// lengths that are and are not multiples of the group size (and shorter than it); plus the bytes each
// call adds to bytes_sent, from the ring formulas re-derived here.
inline void check_collectives(Comm& comm, const std::vector<int>& members) {
  const int n = comm.size(), me = comm.rank();
  ASSERT_EQ(static_cast<int>(members.size()), n);  // same on every rank: safe to ASSERT
  const int world_rank = members[static_cast<size_t>(me)];
  const uint64_t un = static_cast<uint64_t>(n);

  for (DType dtype : kCommDTypes) {
    const uint64_t es = dtype_size(dtype);
    for (int64_t len : {int64_t{1}, int64_t{n}, int64_t{37}, int64_t{8 * n + 3}}) {
      for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
        auto pattern = op == ReduceOp::kSum ? sum_pattern : max_pattern;
        HostTensor buf = pattern_tensor("all_reduce_buf", dtype, len, world_rank, 0, pattern);
        comm.reset_bytes();
        comm.all_reduce(buf.view(), op);
        const std::string what = label(comm, op == ReduceOp::kSum ? "all_reduce(sum)" : "all_reduce(max)", dtype, len);
        EXPECT_EQ(count_mismatches(buf, [&](int64_t i) {
                    double acc = pattern(members[0], i);
                    for (int g = 1; g < n; ++g)
                      acc = op == ReduceOp::kSum ? acc + pattern(members[g], i) : std::max(acc, pattern(members[g], i));
                    return acc;
                  }, what), 0) << what;
        EXPECT_EQ(comm.bytes_sent(), 2 * (un - 1) * (static_cast<uint64_t>(len) * es) / un) << what;
      }
    }

    for (int64_t m : {int64_t{1}, int64_t{5}}) {
      // reduce_scatter: rank g receives Σ over members of chunk g, i.e. elements [g·m, (g+1)·m).
      HostTensor in = pattern_tensor("rs_in", dtype, n * m, world_rank, 0, sum_pattern);
      HostTensor out("rs_out", dtype, Shape{m});
      out.Fill(-99);
      comm.reset_bytes();
      comm.reduce_scatter(in.cview(), out.view());
      auto expected_chunk = [&](int64_t k) {
        double acc = 0;
        for (int g = 0; g < n; ++g) acc += sum_pattern(members[g], me * m + k);
        return acc;
      };
      std::string what = label(comm, "reduce_scatter", dtype, n * m);
      EXPECT_EQ(count_mismatches(out, expected_chunk, what), 0) << what;
      EXPECT_EQ(comm.bytes_sent(), (un - 1) * static_cast<uint64_t>(n * m) * es / un) << what;

      // In place: out is chunk rank() of in (how ZeRO reduces its gradient shard).
      HostTensor inplace = pattern_tensor("rs_inplace", dtype, n * m, world_rank, 0, sum_pattern);
      TensorView own = make_view(static_cast<unsigned char*>(inplace.view().data) + me * m * es, dtype, Shape{m},
                                 Device::Cpu(), "rs_inplace_chunk");
      comm.reduce_scatter(inplace.cview(), own);
      HostTensor own_copy("rs_inplace_chunk", dtype, Shape{m});
      for (int64_t k = 0; k < m; ++k) own_copy.set(k, inplace.get(me * m + k));
      what = label(comm, "reduce_scatter(in place)", dtype, n * m);
      EXPECT_EQ(count_mismatches(own_copy, expected_chunk, what), 0) << what;

      // all_gather: out = [members[0]'s in, members[1]'s in, ...].
      HostTensor gin = pattern_tensor("ag_in", dtype, m, world_rank, 100, sum_pattern);
      HostTensor gout("ag_out", dtype, Shape{n * m});
      gout.Fill(-99);
      comm.reset_bytes();
      comm.all_gather(gin.cview(), gout.view());
      auto expected_gather = [&](int64_t j) { return sum_pattern(members[static_cast<size_t>(j / m)], 100 + j % m); };
      what = label(comm, "all_gather", dtype, n * m);
      EXPECT_EQ(count_mismatches(gout, expected_gather, what), 0) << what;
      EXPECT_EQ(comm.bytes_sent(), (un - 1) * static_cast<uint64_t>(n * m) * es / un) << what;

      // In place: this rank's input already sits in its chunk of the output.
      HostTensor gfull("ag_full", dtype, Shape{n * m});
      gfull.Fill(-99);
      for (int64_t k = 0; k < m; ++k) gfull.set(me * m + k, sum_pattern(world_rank, 100 + k));
      ConstTensorView gown = make_view(static_cast<const unsigned char*>(gfull.cview().data) + me * m * es, dtype,
                                       Shape{m}, Device::Cpu(), "ag_own_chunk");
      comm.all_gather(gown, gfull.view());
      what = label(comm, "all_gather(in place)", dtype, n * m);
      EXPECT_EQ(count_mismatches(gfull, expected_gather, what), 0) << what;
    }

    for (int root : {n - 1, 1 % n}) {
      const int64_t len = 11;
      const int root_world = members[static_cast<size_t>(root)];
      HostTensor buf("bcast", dtype, Shape{len});
      if (me == root) {
        for (int64_t i = 0; i < len; ++i) buf.set(i, sum_pattern(root_world, i));
      } else {
        buf.Fill(-99);
      }
      comm.reset_bytes();
      comm.broadcast(buf.view(), root);
      const std::string what = label(comm, "broadcast", dtype, len) + " root " + std::to_string(root);
      EXPECT_EQ(count_mismatches(buf, [&](int64_t i) { return sum_pattern(root_world, i); }, what), 0) << what;
      // The chain root → root+1 → … ends at (root + n − 1) mod n, which only receives.
      const uint64_t expected_bytes = (me == (root + n - 1) % n) ? 0 : static_cast<uint64_t>(len) * es;
      EXPECT_EQ(comm.bytes_sent(), expected_bytes) << what;
    }
  }
  comm.reset_bytes();
  comm.barrier();
  EXPECT_EQ(comm.bytes_sent(), 0u);
}

}  // namespace om::test
