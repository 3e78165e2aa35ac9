// NcclComm: the Comm backend for CUDA tensors (f32, bf16, f64, i32, i64) over an NCCL communicator.
// CUDA builds only (OM_WITH_CUDA): include from CUDA-only .cc files.
//
// Construction is collective over an MPI communicator: rank 0 makes the ncclUniqueId, MPI_Bcast
// hands it to the others, and every rank calls ncclCommInitRank for its own CUDA device. The NCCL
// group therefore has the MPI group's ranks and size (the world, a tp or a dp group).
//
// Determinism: NCCL reduces with its own algorithms (ring or tree, chosen by message size, group
// size and topology), so sums are NOT folded in rank order. For a given algorithm and inputs every
// rank receives the same bits, but the bits differ from MpiComm's ((x_0 + x_1) + x_2) + … and may
// change with the NCCL version, the message size or NCCL_ALGO. The CPU path (MpiComm) is the
// reference; CUDA results are compared with it under a reduction tolerance, never bit for bit.
// Copies (all_gather, broadcast) and max are exact and order-independent.
//
// Stream-ordered semantics (no host wait): each collective is enqueued on the comm's stream and the
// call returns at once. The project's GPU work runs on the legacy default stream (Stream{}, no
// --default-stream per-thread), and the comm's stream is a blocking one, so
//   - the collective starts after every op issued to the legacy stream before it (its inputs are ready):
//     the legacy stream's implicit ordering with blocking streams;
//   - after it, the legacy stream waits for the collective's event (cudaStreamWaitEvent), so every later
//     op on the legacy stream, and a host wait on it (core/buffer.h synchronize, copy_bytes), sees the
//     result; and, that wait being an action on the legacy stream, every blocking stream (another
//     NcclComm's) waits for it in turn: the collectives of all NcclComms run one after another in issue
//     order, the same order on every rank (no cross-communicator deadlock).
// A caller's host code must not read the result before such a wait, and buffers the collective reads or
// writes may be released stream-ordered (cudaFreeAsync on the legacy stream) at once. barrier() alone
// still waits on the host (its purpose), counted by core/buffer.h synchronous_calls. Work on
// non-blocking streams is not ordered with the collectives, except on the stream set_compute_stream names
// (the model's CUDA-graph stream while it captures, model/llama_graph.cc: explicit events both ways).
// The deferred collectives (reduce_scatter_deferred, all_reduce_deferred: parallel/comm.h) are the
// exception: they run on a second, non-blocking stream of the comm's, after an event recorded on the
// compute stream (set_compute_stream's while a graph is captured, else the legacy stream), and nothing
// waits for them until join_deferred, when that compute stream waits for the deferred stream's event. So
// they overlap the kernels issued after them (dp: the rest of a backward; tp: the weight gradient's GEMM)
// and, unlike the rule above, may run at the same time as another NcclComm's collectives (the dp
// reduce-scatter beside the tp all-reduces of the same backward): every rank issues them in the same
// order, and NCCL kernels of two communicators may then be co-resident on a GPU, as PyTorch DDP and
// Megatron's overlapped gradient reduction run them beside tensor-parallel ones.
// The op profiler times the collectives on the comm's stream (profile_context); a hung peer shows as a
// host wait that does not end (the hang watchdog's idle rule, parallel/watchdog.h), not inside the call.
//
// Ownership: owns the ncclComm_t (ncclCommDestroy, after waiting for its stream), the cudaStream_t and
// the cudaEvent_t; the MPI communicator is only borrowed for the id exchange. Not copyable or movable, not thread-safe.
// Failures: NCCL and CUDA errors are fatal through OM_NCCL_CHECK / OM_CUDA_CHECK with rank and host;
// a tensor on another device (a CPU tensor, or another GPU) or of an unsupported dtype is an OM_CHECK
// naming the tensor.
// REQUIRES: MPI initialised; `device` visible and distinct per rank on a host (NCCL rejects two ranks
// of one communicator on the same GPU).
#pragma once

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <string>

#include "core/buffer.h"
#include "core/check.h"
#include "core/device.h"
#include "parallel/comm.h"

// Fatal on any NCCL result but ncclSuccess; the message names rank, host, the call and NCCL's text.
#define OM_NCCL_CHECK(expr) OM_CHECK_GEN(expr, ncclSuccess, ncclGetErrorString)

namespace om {

class NcclComm final : public Comm {
 public:
  // Collective over every rank of `mpi_comm`; `device` must be a CUDA device (OM_CHECK).
  NcclComm(MPI_Comm mpi_comm, Device device, std::string name);
  ~NcclComm() override;

  Device device() const { return device_; }
  ncclComm_t handle() const { return comm_; }
  // The stream the collectives run on (work may be pending there when a collective has returned).
  Stream stream() const { return Stream{stream_}; }
  ExecContext profile_context() const override { return ExecContext{device_, Stream{stream_}}; }
  // Another compute stream than the legacy default one (a CUDA-graph capture's): each collective then
  // starts after an event recorded on it and it waits for the collective's event; nothing touches the
  // legacy stream (which a capture forbids). Stream{} restores the legacy ordering above.
  void set_compute_stream(Stream stream) override { compute_ = static_cast<cudaStream_t>(stream.handle); }

 private:
  void do_all_reduce(TensorView buf, ReduceOp op) override;
  void do_reduce_scatter(ConstTensorView in, TensorView out) override;
  void do_all_gather(ConstTensorView in, TensorView out) override;
  void do_broadcast(TensorView buf, int root) override;
  void do_barrier() override;
  void do_reduce_scatter_deferred(ConstTensorView in, TensorView out) override;
  void do_all_reduce_deferred(TensorView buf, ReduceOp op) override;
  void do_join_deferred() override;
  // A deferred collective's start: deferred_stream_ waits for the compute stream's work so far (an event);
  // returns deferred_stream_.
  cudaStream_t fork_deferred();

  // Makes device_ current (before a collective is enqueued).
  void activate() const;
  // Before a collective is enqueued: with a compute stream set, stream_ waits for it (the legacy
  // stream's work is ordered before stream_ implicitly). After: the compute stream (legacy by default)
  // waits for the collective (the stream-ordered contract above).
  void order_before() const;
  void order_after() const;

  Device device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t done_ = nullptr;  // recorded after each collective on stream_ (no timing)
  cudaEvent_t ready_ = nullptr;  // recorded on compute_ before each collective (no timing)
  cudaStream_t compute_ = nullptr;  // set_compute_stream; nullptr: the legacy default stream
  cudaStream_t deferred_stream_ = nullptr;  // the deferred collectives' (non-blocking)
  cudaEvent_t deferred_done_ = nullptr;     // recorded on it by join_deferred
  Buffer barrier_word_;  // one int32 on device_, the payload of barrier()'s all_reduce
};

}  // namespace om
