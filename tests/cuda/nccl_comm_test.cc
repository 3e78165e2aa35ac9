// NcclComm on one GPU: a one-rank NCCL communicator (MPI_COMM_SELF, cuda:0), so each collective is
// the identity-like operation on device data. Runs under cuda_mpi_test_main (exit 77 without a GPU).
// Exactness: with one rank, all_reduce (sum or max) of x is x itself, reduce_scatter's single chunk
// is the sum of one term, and all_gather/broadcast are copies; no arithmetic rounds, so every result
// is compared bit for bit (no tolerance from kernels/check/tolerance.h applies). What this checks is
// the plumbing: the dtype mapping (bf16 included), in-place forms, device checks, the stream-ordered
// contract (no host wait; the result read in stream order) and the byte counter. Several ranks: the
// NcclCommWorld tests at the end.
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "parallel/nccl_comm.h"
#include "tests/support/device_tensor.h"
#include "tests/support/host_waits.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

const std::vector<DType> kDTypes = {DType::kF32, DType::kBF16, DType::kF64, DType::kI32, DType::kI64};

// Distinct, non-zero values (so a zeroed or stale output cannot pass), rounded to `dtype`.
HostTensor pattern(const std::string& name, DType dtype, int64_t n, uint64_t offset) {
  HostTensor t(name, dtype, Shape{n});
  t.FillUniform(Rng(1234, "nccl_comm_test"), offset, -1000.0, 1000.0);
  return t;
}

bool same_bytes(const HostTensor& a, const HostTensor& b) {
  const ConstTensorView va = a.view(), vb = b.view();
  return va.dtype == vb.dtype && va.nbytes() == vb.nbytes() && std::memcmp(va.data, vb.data, va.nbytes()) == 0;
}

// The stream-ordered contract (parallel/nccl_comm.h): `collective` returns without a host wait
// (core/buffer.h synchronous_calls unchanged), and its result is what an async copy issued after it on
// the legacy default stream reads once the host waits for that stream alone (as the trainer reads its
// losses), not the whole device.
template <typename F>
void expect_no_host_wait(F&& collective) {
  const HostWaits before = host_waits_now();
  collective();
  const HostWaits after = host_waits_now();
  EXPECT_EQ(after.counted, before.counted) << "the collective made the host wait";
  EXPECT_EQ(after.runtime, before.runtime) << "the collective made the host wait (a CUDA runtime wait)";
}

HostTensor read_in_stream_order(const DeviceTensor& d) {
  const ConstTensorView v = d.cview();
  Buffer pinned = Buffer::AllocatePinned(v.nbytes(), "read-back");
  const ExecContext legacy{v.device, Stream{}};
  copy_async(legacy, pinned.data(), Device::Cpu(), v.data, v.device, v.nbytes());
  synchronize(legacy);
  HostTensor out(v.name, v.dtype, v.shape);
  std::memcpy(out.view().data, pinned.data(), v.nbytes());
  return out;
}

class NcclCommTest : public testing::Test {
 protected:
  NcclComm comm_{MPI_COMM_SELF, Device::Cuda(0), "self"};
};

TEST_F(NcclCommTest, OneRankOnTheGivenDevice) {
  EXPECT_EQ(comm_.rank(), 0);
  EXPECT_EQ(comm_.size(), 1);
  EXPECT_EQ(comm_.name(), "self");
  EXPECT_EQ(comm_.device(), Device::Cuda(0));
  EXPECT_NE(comm_.handle(), nullptr);
  EXPECT_NE(comm_.stream().handle, nullptr);
}

TEST_F(NcclCommTest, AllReduceSumAndMaxKeepTheBitsOfEveryDType) {
  const int64_t n = 4099;  // odd: no vector-width multiple
  for (DType dt : kDTypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + std::string(reduce_op_name(op)));
      const HostTensor x = pattern("grads", dt, n, 0);
      DeviceTensor d = DeviceTensor::Upload(x);
      comm_.reset_bytes();
      expect_no_host_wait([&] { comm_.all_reduce(d.view(), op); });
      EXPECT_TRUE(same_bytes(read_in_stream_order(d), x));
      EXPECT_EQ(comm_.bytes_sent(), ring_all_reduce_bytes(x.view().nbytes(), 1));
      EXPECT_EQ(comm_.bytes_sent(), 0u);
    }
  }
}

TEST_F(NcclCommTest, ReduceScatterOutOfPlaceAndInPlace) {
  const int64_t m = 1031;
  for (DType dt : kDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const HostTensor x = pattern("grads", dt, m, 100000);
    DeviceTensor in = DeviceTensor::Upload(x);
    DeviceTensor out("shard", dt, Shape{m});
    comm_.reset_bytes();
    expect_no_host_wait([&] { comm_.reduce_scatter(in.cview(), out.view()); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(out), x));
    EXPECT_EQ(comm_.bytes_sent(), ring_reduce_scatter_bytes(x.view().nbytes(), 1));
    EXPECT_EQ(comm_.bytes_sent(), 0u);

    // In place: out is chunk rank() = 0 of in, i.e. the whole of it at size 1.
    TensorView whole = in.view();
    expect_no_host_wait(
        [&] { comm_.reduce_scatter(in.cview(), make_view(whole.data, dt, Shape{m}, whole.device, "shard_in_place")); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(in), x));
  }
}

TEST_F(NcclCommTest, AllGatherOutOfPlaceAndInPlace) {
  const int64_t m = 517;
  for (DType dt : kDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const HostTensor x = pattern("shard", dt, m, 200000);
    DeviceTensor in = DeviceTensor::Upload(x);
    DeviceTensor out("params", dt, Shape{m});
    comm_.reset_bytes();
    expect_no_host_wait([&] { comm_.all_gather(in.cview(), out.view()); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(out), x));
    EXPECT_EQ(comm_.bytes_sent(), ring_all_gather_bytes(out.view().nbytes(), 1));
    EXPECT_EQ(comm_.bytes_sent(), 0u);

    // In place (ZeRO's form): in is chunk 0 of out.
    TensorView whole = out.view();
    expect_no_host_wait([&] {
      comm_.all_gather(make_view(static_cast<const void*>(whole.data), dt, Shape{m}, whole.device, "shard_in_place"),
                       whole);
    });
    EXPECT_TRUE(same_bytes(read_in_stream_order(out), x));
  }
}

TEST_F(NcclCommTest, BroadcastAndBarrier) {
  const int64_t n = 2053;
  for (DType dt : kDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const HostTensor x = pattern("weights", dt, n, 300000);
    DeviceTensor d = DeviceTensor::Upload(x);
    comm_.reset_bytes();
    expect_no_host_wait([&] { comm_.broadcast(d.view(), 0); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(d), x));
    // Size 1: the root is also the chain's last rank, which only receives.
    EXPECT_EQ(comm_.bytes_sent(), ring_broadcast_bytes(x.view().nbytes(), 1, 0, 0));
    EXPECT_EQ(comm_.bytes_sent(), 0u);
  }
  // The barrier is the one call that waits on the host (its purpose), once per call.
  const uint64_t before = synchronous_calls();
  comm_.barrier();
  comm_.barrier();  // the barrier's word stays usable across calls
  EXPECT_EQ(synchronous_calls() - before, 2u);
  EXPECT_EQ(comm_.bytes_sent(), 0u);
}

TEST_F(NcclCommTest, ZeroElementsIsANoOp) {
  DeviceTensor empty("empty", DType::kF32, Shape{0});
  comm_.all_reduce(empty.view(), ReduceOp::kSum);
  comm_.broadcast(empty.view(), 0);
  EXPECT_EQ(comm_.bytes_sent(), 0u);
}

// Death tests fork: the comm and its CUDA context live in the parent, and the child dies in the
// device/dtype OM_CHECK before touching CUDA.
TEST_F(NcclCommTest, CpuTensorIsFatalAndNamed) {
  HostTensor host("cpu_grads", DType::kF32, Shape{8});
  EXPECT_DEATH(comm_.all_reduce(host.view(), ReduceOp::kSum),
               "NcclComm 'self' all_reduce: tensor 'cpu_grads' is on cpu; this NcclComm moves tensors on cuda:0");
  HostTensor full("cpu_full", DType::kF32, Shape{8});
  EXPECT_DEATH(comm_.broadcast(full.view(), 0), "tensor 'cpu_full' is on cpu");
}

TEST_F(NcclCommTest, UnsupportedDTypeIsFatalAndNamed) {
  DeviceTensor u("token_ids", DType::kU32, Shape{8});
  EXPECT_DEATH(comm_.all_reduce(u.view(), ReduceOp::kSum),
               "tensor 'token_ids' is u32; NcclComm supports f32, bf16, f64, i32, i64");
}

// ---- Several ranks ------------------------------------------------------------------------------------
// ctest also runs this binary under `mpirun -np 2` with --gtest_filter=NcclCommWorld.* (rank r on cuda:r;
// on the emulator OM_EMU_DEVICES=2, cuda_emu/README.md), where NCCL really sums across ranks. The data
// are small integers (|value| <= 8, so |sum| <= 8·size <= 128 for up to 16 ranks): every partial sum is
// exact in f32, bf16 (8 significant bits), f64, i32 and i64 whatever order NCCL adds in (rule 1), so
// the results are compared bit for bit with sums computed here in double.
double value_of(int rank, int64_t i) { return static_cast<double>((i * 7 + rank * 3) % 17) - 8.0; }

HostTensor rank_pattern(const std::string& name, DType dtype, int rank, int64_t n, int64_t first = 0) {
  HostTensor t(name, dtype, Shape{n});
  for (int64_t i = 0; i < n; ++i) t.set(i, value_of(rank, first + i));
  return t;
}

class NcclCommWorld : public testing::Test {
 protected:
  void SetUp() override {
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    if (size_ < 2) GTEST_SKIP() << "one process: run under mpirun -np 2 (ctest's cuda_nccl_comm_test_np2)";
    comm_ = std::make_unique<NcclComm>(MPI_COMM_WORLD, Device::Cuda(rank_), "world");
  }
  Device device() const { return Device::Cuda(rank_); }
  int size_ = 1, rank_ = 0;
  std::unique_ptr<NcclComm> comm_;
};

TEST_F(NcclCommWorld, AllReduceSumsAndMaxesAcrossRanks) {
  const int64_t n = 4099;
  for (DType dt : kDTypes) {
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + std::string(reduce_op_name(op)));
      DeviceTensor d = DeviceTensor::Upload(rank_pattern("grads", dt, rank_, n), device());
      HostTensor want("grads", dt, Shape{n});
      for (int64_t i = 0; i < n; ++i) {
        double v = op == ReduceOp::kSum ? 0.0 : value_of(0, i);
        for (int r = 0; r < size_; ++r) v = op == ReduceOp::kSum ? v + value_of(r, i) : std::max(v, value_of(r, i));
        want.set(i, v);
      }
      expect_no_host_wait([&] { comm_->all_reduce(d.view(), op); });
      EXPECT_TRUE(same_bytes(read_in_stream_order(d), want));
    }
  }
}

TEST_F(NcclCommWorld, ReduceScatterAllGatherAndBroadcastAcrossRanks) {
  const int64_t m = 1031;
  for (DType dt : kDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    // reduce_scatter: rank r gets the sum over ranks of chunk r.
    DeviceTensor in = DeviceTensor::Upload(rank_pattern("grads", dt, rank_, m * size_), device());
    DeviceTensor shard("shard", dt, Shape{m}, device());
    HostTensor want_shard("shard", dt, Shape{m});
    for (int64_t j = 0; j < m; ++j) {
      double v = 0.0;
      for (int r = 0; r < size_; ++r) v += value_of(r, rank_ * m + j);
      want_shard.set(j, v);
    }
    expect_no_host_wait([&] { comm_->reduce_scatter(in.cview(), shard.view()); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(shard), want_shard));

    // all_gather in ZeRO's in-place form: chunk r of `full` is rank r's own.
    HostTensor mine = rank_pattern("params", dt, rank_, m, 5000);
    HostTensor start("params", dt, Shape{m * size_}), want_full("params", dt, Shape{m * size_});
    for (int r = 0; r < size_; ++r) {
      for (int64_t j = 0; j < m; ++j) {
        start.set(r * m + j, r == rank_ ? mine.get(j) : 99.0);  // stale elsewhere: must be overwritten
        want_full.set(r * m + j, value_of(r, 5000 + j));
      }
    }
    DeviceTensor full = DeviceTensor::Upload(start, device());
    TensorView whole = full.view();
    const ConstTensorView own = make_view(static_cast<const void*>(static_cast<const char*>(whole.data) +
                                                                   rank_ * m * static_cast<int64_t>(dtype_size(dt))),
                                          dt, Shape{m}, whole.device, "params_own");
    expect_no_host_wait([&] { comm_->all_gather(own, whole); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(full), want_full));

    // broadcast from the last rank.
    const int root = size_ - 1;
    DeviceTensor b = DeviceTensor::Upload(rank_pattern("weights", dt, rank_, m, 9000), device());
    expect_no_host_wait([&] { comm_->broadcast(b.view(), root); });
    EXPECT_TRUE(same_bytes(read_in_stream_order(b), rank_pattern("weights", dt, root, m, 9000)));
  }
  const uint64_t before = synchronous_calls();
  comm_->barrier();
  EXPECT_EQ(synchronous_calls() - before, 1u);
}

// The deferred collectives (parallel/comm.h; the tp backward's all-reduce, ZeRO-1's bucket reduce-scatter)
// start after the legacy stream's earlier work (here: the copy that writes their input) and are joined
// before its later work (the read-back), without a host wait. On the emulator this runs in both orders of
// its non-blocking streams (cuda_emu/README.md): held back until waited for (a missing join reads the
// unreduced input), and queued as early as its waits allow (a missing fork reads the input before the copy).
TEST_F(NcclCommWorld, DeferredCollectivesStartAfterEarlierWorkAndJoinBeforeLaterWork) {
  const int64_t m = 1031;
  const DType dt = DType::kF32;
  for (bool early : {false, true}) {
#if OM_CUDA_EMULATION
    const bool was = om_emu::set_early_streams(early);
#else
    if (early) break;  // a GPU has one schedule
#endif
    SCOPED_TRACE(early ? "early order" : "late order");
    const DeviceTensor src = DeviceTensor::Upload(rank_pattern("grads", dt, rank_, m * size_), device());
    DeviceTensor x("x", dt, Shape{m * size_}, device()), shard("shard", dt, Shape{m}, device());
    HostTensor want_sum("x", dt, Shape{m * size_}), want_shard("shard", dt, Shape{m});  // rank r: chunk r
    for (int64_t i = 0; i < m * size_; ++i) {
      double v = 0.0;
      for (int r = 0; r < size_; ++r) v += value_of(r, i);
      want_sum.set(i, v);
    }
    for (int64_t j = 0; j < m; ++j) want_shard.set(j, want_sum.get(rank_ * m + j));
    const ExecContext legacy{device(), Stream{}};
    expect_no_host_wait([&] {
      copy_async(legacy, x.view().data, device(), src.cview().data, device(), src.cview().nbytes());
      comm_->all_reduce_deferred(x.view(), ReduceOp::kSum);
      comm_->join_deferred();
    });
    EXPECT_TRUE(same_bytes(read_in_stream_order(x), want_sum)) << "all_reduce_deferred";
    expect_no_host_wait([&] {
      copy_async(legacy, x.view().data, device(), src.cview().data, device(), src.cview().nbytes());
      comm_->reduce_scatter_deferred(x.cview(), shard.view());
      comm_->join_deferred();
    });
    EXPECT_TRUE(same_bytes(read_in_stream_order(shard), want_shard)) << "reduce_scatter_deferred";
#if OM_CUDA_EMULATION
    om_emu::set_early_streams(was);
#endif
  }
}

}  // namespace
}  // namespace om
