// NcclComm on one GPU: a one-rank NCCL communicator (MPI_COMM_SELF, cuda:0), so each collective is
// the identity-like operation on device data. Runs under cuda_mpi_test_main (exit 77 without a GPU).
// Exactness: with one rank, all_reduce (sum or max) of x is x itself, reduce_scatter's single chunk
// is the sum of one term, and all_gather/broadcast are copies; no arithmetic rounds, so every result
// is compared bit for bit (no tolerance from kernels/check/tolerance.h applies). What this checks is
// the plumbing: the dtype mapping (bf16 included), in-place forms, device checks, the synchronous
// contract and the byte counter. Multi-rank NCCL numerics (sums not in rank order, compared with
// MpiComm under a reduction tolerance) need several GPUs and come with the CUDA trainer's issue.
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "parallel/nccl_comm.h"
#include "tests/support/device_tensor.h"
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

// The comm's stream has no pending work: the collective returned only after it finished.
void expect_stream_idle(const NcclComm& comm) {
  EXPECT_EQ(cudaStreamQuery(static_cast<cudaStream_t>(comm.stream().handle)), cudaSuccess);
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
      comm_.all_reduce(d.view(), op);
      expect_stream_idle(comm_);
      EXPECT_TRUE(same_bytes(d.Download(), x));
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
    comm_.reduce_scatter(in.cview(), out.view());
    EXPECT_TRUE(same_bytes(out.Download(), x));
    EXPECT_EQ(comm_.bytes_sent(), ring_reduce_scatter_bytes(x.view().nbytes(), 1));
    EXPECT_EQ(comm_.bytes_sent(), 0u);

    // In place: out is chunk rank() = 0 of in, i.e. the whole of it at size 1.
    TensorView whole = in.view();
    comm_.reduce_scatter(in.cview(), make_view(whole.data, dt, Shape{m}, whole.device, "shard_in_place"));
    expect_stream_idle(comm_);
    EXPECT_TRUE(same_bytes(in.Download(), x));
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
    comm_.all_gather(in.cview(), out.view());
    EXPECT_TRUE(same_bytes(out.Download(), x));
    EXPECT_EQ(comm_.bytes_sent(), ring_all_gather_bytes(out.view().nbytes(), 1));
    EXPECT_EQ(comm_.bytes_sent(), 0u);

    // In place (ZeRO's form): in is chunk 0 of out.
    TensorView whole = out.view();
    comm_.all_gather(make_view(static_cast<const void*>(whole.data), dt, Shape{m}, whole.device, "shard_in_place"),
                     whole);
    expect_stream_idle(comm_);
    EXPECT_TRUE(same_bytes(out.Download(), x));
  }
}

TEST_F(NcclCommTest, BroadcastAndBarrier) {
  const int64_t n = 2053;
  for (DType dt : kDTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const HostTensor x = pattern("weights", dt, n, 300000);
    DeviceTensor d = DeviceTensor::Upload(x);
    comm_.reset_bytes();
    comm_.broadcast(d.view(), 0);
    expect_stream_idle(comm_);
    EXPECT_TRUE(same_bytes(d.Download(), x));
    // Size 1: the root is also the chain's last rank, which only receives.
    EXPECT_EQ(comm_.bytes_sent(), ring_broadcast_bytes(x.view().nbytes(), 1, 0, 0));
    EXPECT_EQ(comm_.bytes_sent(), 0u);
  }
  comm_.barrier();
  comm_.barrier();  // the barrier's word stays usable across calls
  expect_stream_idle(comm_);
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

}  // namespace
}  // namespace om
