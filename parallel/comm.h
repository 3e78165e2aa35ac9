// Comm: collectives over a fixed group of ranks (the world, a tp group or a dp group), with one
// virtual call per collective and none per element. Backends: MpiComm (CPU tensors, blocking: the
// result is there when the call returns; parallel/mpi_comm.h) and NcclComm (CUDA tensors,
// stream-ordered: the result is there for any later work on the GPU and after the host's next wait for
// the device; parallel/nccl_comm.h).
// Contract for every collective: all ranks of the group call it in the same order with the same
// dtype and shapes (a rank's count differing is undefined behaviour in the backend, as in MPI/NCCL).
// Tensors are contiguous and on the backend's device. A zero-element call is a no-op on every backend.
// Ownership: a Comm owns its backend communicator (see the backend); it is neither copyable nor
// movable (ProcessGroups holds Comms by pointer) and not thread-safe: one collective at a time.
//
// Bytes sent (bytes_sent / reset_bytes): each collective adds the bytes this rank sends under the
// ring algorithm (the model NCCL uses and nccl-tests' busbw reports; n = size(), B = bytes named):
//   all_reduce(buf)             2(n−1)/n · B,  B = bytes of buf          (reduce-scatter + all-gather rings)
//   reduce_scatter(in, out)     (n−1)/n  · B,  B = bytes of in (n·out)   (n−1 chunks of out's size)
//   all_gather(in, out)         (n−1)/n  · B,  B = bytes of out (n·in)   (n−1 chunks of in's size)
//   broadcast(buf, root)        B on every rank except the ring's last, (root + n − 1) mod n
//                               (a pipelined chain root → root+1 → …; the last rank only receives)
//   barrier                     0 (no payload)
// These are the per-rank link volumes the ZeRO-1 analysis uses (DESIGN.md), so tests can compare a
// step's traffic with the analytic formula. The counter is a model, not a measurement: a backend may
// move more or fewer bytes (MpiComm's all_reduce sends exactly the model's bytes when n divides the
// element count). When n does not divide it, all_reduce counts floor(2(n−1)·B / n).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/device.h"
#include "core/tensor.h"

namespace om {

enum class ReduceOp : uint8_t { kSum, kMax };
std::string_view reduce_op_name(ReduceOp op);  // "sum", "max"

// The cost model above, per rank, in bytes; shared by Comm and by tests/benchmarks.
uint64_t ring_all_reduce_bytes(uint64_t nbytes, int size);
uint64_t ring_reduce_scatter_bytes(uint64_t full_nbytes, int size);  // full = the (n·m) input
uint64_t ring_all_gather_bytes(uint64_t full_nbytes, int size);      // full = the (n·m) output
uint64_t ring_broadcast_bytes(uint64_t nbytes, int size, int rank, int root);

class Comm {
 public:
  virtual ~Comm() = default;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }  // this process's rank in the group, 0 ≤ rank < size
  int size() const { return size_; }
  const std::string& name() const { return name_; }  // "world", "tp", "dp": in every error message

  // buf ← op over ranks of buf, in place. Every rank receives the same bits (see the backend for
  // the summation order).
  void all_reduce(TensorView buf, ReduceOp op);                  // buf: (N) any shape
  // Rank r receives the sum over ranks of chunk r of `in`, where `in` is size() consecutive chunks
  // of out.numel() elements. `out` may alias chunk r of `in` (in place), nothing else.
  void reduce_scatter(ConstTensorView in, TensorView out);       // in: (size·m)  out: (m)
  // out = concatenation over ranks r = 0..size−1 of rank r's `in`. `in` may alias chunk rank() of
  // `out` (the in-place form ZeRO uses), nothing else.
  void all_gather(ConstTensorView in, TensorView out);           // in: (m)  out: (size·m)
  // buf on every rank ← buf on `root`.
  void broadcast(TensorView buf, int root);                      // buf: (N)
  void barrier();
  // reduce_scatter that does not hold up the caller's later device work (ZeRO-1's gradient buckets,
  // --overlap-grad-reduce): a stream-ordered backend runs it on a stream of its own, after the work
  // issued before it on the compute stream, and the compute stream does not wait for it until
  // join_deferred(), so the backward's kernels run meanwhile. A blocking backend runs reduce_scatter
  // (complete on return; join_deferred does nothing). Under the op profiler it is reduce_scatter too
  // (each op timed alone). Until join_deferred: `in` and `out` must not be touched, and any other
  // collective on this Comm is an error (OM_CHECK naming the Comm); several deferred calls may queue.
  void reduce_scatter_deferred(ConstTensorView in, TensorView out);
  // all_reduce under the same contract (the tensor-parallel backward's input gradient, all-reduced beside
  // the weight gradient's GEMM: parallel/tensor_parallel.h copy_to_tp_region_backward_overlapped). On a
  // stream-ordered backend it forks from the compute stream (set_compute_stream's, so also inside a
  // CUDA-graph capture) and join_deferred joins it back there.
  void all_reduce_deferred(TensorView buf, ReduceOp op);
  void join_deferred();  // later work on the compute stream (and a host wait on it) sees every deferred result
  bool deferred_pending() const { return deferred_; }

  uint64_t bytes_sent() const { return bytes_sent_; }
  void reset_bytes() { bytes_sent_ = 0; }
  // Cumulative wall time (steady clock) this rank spent inside the backend hooks since the last
  // reset: for a blocking backend the transfer plus waiting for the slowest rank, for a stream-ordered
  // one the host's enqueue only (the op profiler has the device time); checks and zero-element calls
  // not counted. For benchmarks (a step's communication share, bench/parallel/); it changes no behaviour.
  double seconds_in_collectives() const { return seconds_; }
  void reset_seconds() { seconds_ = 0.0; }
  // Where the op profiler (core/profiler.h) times this Comm's collectives: the host's wall clock (a CPU
  // context, the default: blocking backends), or the device and stream a stream-ordered backend runs
  // them on (device time between two events around the collective).
  virtual ExecContext profile_context() const { return ExecContext{Device::Cpu(), Stream{}}; }
  // The stream the caller's device work runs on, for a stream-ordered backend: its collectives start
  // after the work issued there and that stream's later work waits for them, with events (NcclComm;
  // a no-op for blocking backends). The default, Stream{}, is the legacy default stream, ordered as
  // parallel/nccl_comm.h says. Llama sets its CUDA-graph stream while capturing (model/llama_graph.cc),
  // so the tp collectives join the capture, and Stream{} again after.
  virtual void set_compute_stream(Stream stream) { (void)stream; }

 protected:
  Comm(std::string name, int rank, int size);

  // Backend hooks, called after the checks above (contiguity, dtype/shape agreement, aliasing,
  // root range) and never with zero elements. The public methods add the byte counts.
  virtual void do_all_reduce(TensorView buf, ReduceOp op) = 0;
  virtual void do_reduce_scatter(ConstTensorView in, TensorView out) = 0;
  virtual void do_all_gather(ConstTensorView in, TensorView out) = 0;
  virtual void do_broadcast(TensorView buf, int root) = 0;
  virtual void do_barrier() = 0;
  // Defaults: blocking backends (a deferred collective is an ordinary one).
  virtual void do_reduce_scatter_deferred(ConstTensorView in, TensorView out) { do_reduce_scatter(in, out); }
  virtual void do_all_reduce_deferred(TensorView buf, ReduceOp op) { do_all_reduce(buf, op); }
  virtual void do_join_deferred() {}

 private:
  std::string name_;
  int rank_ = 0;
  int size_ = 1;
  uint64_t bytes_sent_ = 0;
  double seconds_ = 0.0;
  bool deferred_ = false;  // a deferred collective not joined yet

  bool check_reduce_scatter(ConstTensorView in, TensorView out) const;  // false: nothing to move
  void check_not_deferred(const char* op) const;
  // The deferred collectives' issue: `plain` under the op profiler (each op timed alone), else `deferred`,
  // which then awaits join_deferred.
  void issue_deferred(const std::function<void()>& plain, const std::function<void()>& deferred);
};

}  // namespace om
