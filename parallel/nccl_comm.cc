#include "parallel/nccl_comm.h"

#include <utility>

#include "core/cuda_check.h"
#include "parallel/mpi_comm.h"

namespace om {
namespace {

// The NCCL datatype of a tensor; rejects tensors off the comm's device and dtypes NCCL does not
// reduce here. Runs before any CUDA call, so a misuse fails with this message alone.
ncclDataType_t nccl_type(const NcclComm& comm, const char* op, const BasicTensorView<const void*>& t) {
  OM_CHECK(t.device == comm.device(), "NcclComm '%s' %s: tensor '%s' is on %s; this NcclComm moves tensors on %s only",
           comm.name().c_str(), op, t.name, device_name(t.device).c_str(), device_name(comm.device()).c_str());
  switch (t.dtype) {
    case DType::kF32: return ncclFloat32;
    case DType::kBF16: return ncclBfloat16;
    case DType::kF64: return ncclFloat64;
    case DType::kI32: return ncclInt32;
    case DType::kI64: return ncclInt64;
    default: break;
  }
  OM_CHECK(false, "NcclComm '%s' %s: tensor '%s' is %s; NcclComm supports f32, bf16, f64, i32, i64", comm.name().c_str(),
           op, t.name, dtype_name(t.dtype).data());
  return ncclFloat32;
}

ncclDataType_t nccl_type(const NcclComm& comm, const char* op, const TensorView& t) {
  return nccl_type(comm, op, ConstTensorView(t));
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kSum ? ncclSum : ncclMax; }

size_t to_count(int64_t n) { return static_cast<size_t>(n); }

}  // namespace

NcclComm::NcclComm(MPI_Comm mpi_comm, Device device, std::string name)
    : Comm(std::move(name), mpi_comm_rank(mpi_comm), mpi_comm_size(mpi_comm)), device_(device) {
  OM_CHECK(device.kind == DeviceKind::kCuda, "NcclComm '%s': device %s is not a CUDA device", this->name().c_str(),
           device_name(device).c_str());
  OM_CUDA_CHECK(cudaSetDevice(device_.index));
  // The id names the communicator; any rank could make it, all must agree on one.
  ncclUniqueId id{};
  if (rank() == 0) OM_NCCL_CHECK(ncclGetUniqueId(&id));
  OM_MPI_CHECK(MPI_Bcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, 0, mpi_comm));
  OM_NCCL_CHECK(ncclCommInitRank(&comm_, size(), id, rank()));
  // Default flags: a blocking stream, ordered after the legacy default stream (see the header).
  OM_CUDA_CHECK(cudaStreamCreate(&stream_));
  OM_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  OM_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  // The deferred collectives' stream, made here rather than on first use: that use may be inside a
  // CUDA-graph capture (the tp backward's all_reduce_deferred).
  OM_CUDA_CHECK(cudaStreamCreateWithFlags(&deferred_stream_, cudaStreamNonBlocking));
  OM_CUDA_CHECK(cudaEventCreateWithFlags(&deferred_done_, cudaEventDisableTiming));
  barrier_word_ = Buffer::Allocate(device_, sizeof(int32_t), "nccl barrier");
  barrier_word_.Zero();
}

NcclComm::~NcclComm() {
  // Collectives may still be in flight (stream-ordered): wait for them, then destroy (not abort).
  if (stream_ != nullptr) {
    cudaSetDevice(device_.index);
    OM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  if (deferred_stream_ != nullptr) OM_CUDA_CHECK(cudaStreamSynchronize(deferred_stream_));
  if (comm_ != nullptr) OM_NCCL_CHECK(ncclCommDestroy(comm_));
  if (done_ != nullptr) OM_CUDA_CHECK(cudaEventDestroy(done_));
  if (ready_ != nullptr) OM_CUDA_CHECK(cudaEventDestroy(ready_));
  if (stream_ != nullptr) OM_CUDA_CHECK(cudaStreamDestroy(stream_));
  if (deferred_done_ != nullptr) OM_CUDA_CHECK(cudaEventDestroy(deferred_done_));
  if (deferred_stream_ != nullptr) OM_CUDA_CHECK(cudaStreamDestroy(deferred_stream_));
}

void NcclComm::activate() const { OM_CUDA_CHECK(cudaSetDevice(device_.index)); }

void NcclComm::order_before() const {
  if (compute_ == nullptr) return;
  OM_CUDA_CHECK(cudaEventRecord(ready_, compute_));
  OM_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
}

void NcclComm::order_after() const {
  OM_CUDA_CHECK(cudaEventRecord(done_, stream_));
  OM_CUDA_CHECK(cudaStreamWaitEvent(compute_ != nullptr ? compute_ : cudaStreamLegacy, done_, 0));
}

void NcclComm::do_all_reduce(TensorView buf, ReduceOp op) {
  const ncclDataType_t type = nccl_type(*this, "all_reduce", buf);
  activate();
  order_before();
  OM_NCCL_CHECK(ncclAllReduce(buf.data, buf.data, to_count(buf.numel()), type, nccl_op(op), comm_, stream_));
  order_after();
}

void NcclComm::do_reduce_scatter(ConstTensorView in, TensorView out) {
  const ncclDataType_t type = nccl_type(*this, "reduce_scatter", in);
  nccl_type(*this, "reduce_scatter", out);
  activate();
  order_before();
  // `out` == chunk rank() of `in` is NCCL's own in-place form; the base class rejects other overlaps.
  OM_NCCL_CHECK(ncclReduceScatter(in.data, out.data, to_count(out.numel()), type, ncclSum, comm_, stream_));
  order_after();
}

cudaStream_t NcclComm::fork_deferred() {
  activate();
  // After everything issued so far to the compute stream: with none set, the legacy stream, which itself
  // follows every blocking stream's earlier work (stream_'s collectives included); while a graph is
  // captured, the capturing stream (the deferred stream then joins the capture until join_deferred).
  OM_CUDA_CHECK(cudaEventRecord(ready_, compute_ != nullptr ? compute_ : cudaStreamLegacy));
  OM_CUDA_CHECK(cudaStreamWaitEvent(deferred_stream_, ready_, 0));
  return deferred_stream_;
}

void NcclComm::do_reduce_scatter_deferred(ConstTensorView in, TensorView out) {
  const ncclDataType_t type = nccl_type(*this, "reduce_scatter", in);
  nccl_type(*this, "reduce_scatter", out);
  const cudaStream_t s = fork_deferred();
  OM_NCCL_CHECK(ncclReduceScatter(in.data, out.data, to_count(out.numel()), type, ncclSum, comm_, s));
}

void NcclComm::do_all_reduce_deferred(TensorView buf, ReduceOp op) {
  const ncclDataType_t type = nccl_type(*this, "all_reduce", buf);
  const cudaStream_t s = fork_deferred();
  OM_NCCL_CHECK(ncclAllReduce(buf.data, buf.data, to_count(buf.numel()), type, nccl_op(op), comm_, s));
}

void NcclComm::do_join_deferred() {
  activate();
  OM_CUDA_CHECK(cudaEventRecord(deferred_done_, deferred_stream_));
  OM_CUDA_CHECK(cudaStreamWaitEvent(compute_ != nullptr ? compute_ : cudaStreamLegacy, deferred_done_, 0));
}

void NcclComm::do_all_gather(ConstTensorView in, TensorView out) {
  const ncclDataType_t type = nccl_type(*this, "all_gather", in);
  nccl_type(*this, "all_gather", out);
  activate();
  order_before();
  // `in` == chunk rank() of `out` (ZeRO's in-place form) is NCCL's in-place all-gather.
  OM_NCCL_CHECK(ncclAllGather(in.data, out.data, to_count(in.numel()), type, comm_, stream_));
  order_after();
}

void NcclComm::do_broadcast(TensorView buf, int root) {
  const ncclDataType_t type = nccl_type(*this, "broadcast", buf);
  activate();
  order_before();
  OM_NCCL_CHECK(ncclBroadcast(buf.data, buf.data, to_count(buf.numel()), type, root, comm_, stream_));
  order_after();
}

void NcclComm::do_barrier() {
  // NCCL has no barrier: a one-int all_reduce completes on a rank only after every rank has joined
  // it, and the host waits for that (a counted wait, core/buffer.h synchronous_calls).
  activate();
  order_before();
  OM_NCCL_CHECK(ncclAllReduce(barrier_word_.data(), barrier_word_.data(), 1, ncclInt32, ncclSum, comm_, stream_));
  order_after();
  synchronize(ExecContext{device_, Stream{stream_}});
}

}  // namespace om
