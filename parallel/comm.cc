#include "parallel/comm.h"

#include <chrono>
#include <utility>

#include "core/check.h"
#include "core/profiler.h"
#include "parallel/watchdog.h"

namespace om {
namespace {

// Checks shared by every backend; the backend checks the device and the dtypes it supports.
void check_contiguous(const Comm& comm, const char* op, const std::string& what, bool contiguous) {
  OM_CHECK(contiguous, "Comm '%s' %s: %s is not contiguous", comm.name().c_str(), op, what.c_str());
}

bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto* pa = static_cast<const unsigned char*>(a);
  const auto* pb = static_cast<const unsigned char*>(b);
  return pa < pb + b_bytes && pb < pa + a_bytes;
}

// `small` either equals the chunk at `index` of `big` or does not overlap `big` at all.
void check_alias(const Comm& comm, const char* op, const void* big, size_t big_bytes, const void* small,
                 size_t small_bytes, int index) {
  if (!overlaps(big, big_bytes, small, small_bytes)) return;
  const void* chunk = static_cast<const unsigned char*>(big) + static_cast<size_t>(index) * small_bytes;
  OM_CHECK(small == chunk,
           "Comm '%s' %s: the (m)-element tensor overlaps the (size·m) one somewhere other than chunk %d "
           "(only that in-place form is allowed)",
           comm.name().c_str(), op, index);
}

// Adds the wall time of its scope to `seconds` (Comm::seconds_in_collectives), records the
// collective for the hang watchdog (parallel/watchdog.h) while it runs (for a stream-ordered backend:
// while it is enqueued), and times it for the op profiler as "comm:<comm>.<op>" in the comm's
// profile_context() with the message size (the full tensor; bytes / time is nccl-tests' algbw),
// core/profiler.h. A one-rank group communicates nothing: 0 bytes, so no rate is printed (its
// wall time is the host's enqueue of a device copy at most, which the copy's own row already counts).
class ScopedSeconds {
 public:
  ScopedSeconds(double& seconds, const Comm& comm, const char* op, uint64_t bytes)
      : seconds_(seconds),
        start_(std::chrono::steady_clock::now()),
        prof_name_(profiler::enabled() ? "comm:" + comm.name() + "." + op : std::string()),
        prof_(comm.profile_context(), prof_name_.c_str(), 0,
              comm.size() > 1 ? static_cast<double>(bytes) : 0.0) {
    collective_record::begin(comm.name(), op, bytes);
  }
  ~ScopedSeconds() {
    collective_record::end();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  ScopedSeconds(const ScopedSeconds&) = delete;
  ScopedSeconds& operator=(const ScopedSeconds&) = delete;

 private:
  double& seconds_;
  std::chrono::steady_clock::time_point start_;
  std::string prof_name_;  // outlives prof_ (declared before it)
  profiler::Scope prof_;
};

}  // namespace

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

uint64_t ring_all_reduce_bytes(uint64_t nbytes, int size) {
  return 2 * static_cast<uint64_t>(size - 1) * nbytes / static_cast<uint64_t>(size);
}

uint64_t ring_reduce_scatter_bytes(uint64_t full_nbytes, int size) {
  return static_cast<uint64_t>(size - 1) * full_nbytes / static_cast<uint64_t>(size);
}

uint64_t ring_all_gather_bytes(uint64_t full_nbytes, int size) {
  return static_cast<uint64_t>(size - 1) * full_nbytes / static_cast<uint64_t>(size);
}

uint64_t ring_broadcast_bytes(uint64_t nbytes, int size, int rank, int root) {
  const int last = (root + size - 1) % size;  // the end of the chain only receives
  return rank == last ? 0 : nbytes;
}

Comm::Comm(std::string name, int rank, int size) : name_(std::move(name)), rank_(rank), size_(size) {
  OM_CHECK(size >= 1 && rank >= 0 && rank < size, "Comm '%s': rank %d outside size %d", name_.c_str(), rank, size);
}

void Comm::all_reduce(TensorView buf, ReduceOp op) {
  check_not_deferred("all_reduce");
  check_contiguous(*this, "all_reduce", buf.ToString(), buf.is_contiguous());
  if (buf.numel() == 0) return;
  {
    ScopedSeconds timed(seconds_, *this, "all_reduce", buf.nbytes());
    do_all_reduce(buf, op);
  }
  bytes_sent_ += ring_all_reduce_bytes(buf.nbytes(), size_);
}

void Comm::all_reduce_deferred(TensorView buf, ReduceOp op) {
  check_contiguous(*this, "all_reduce", buf.ToString(), buf.is_contiguous());
  if (buf.numel() == 0) return;
  {
    ScopedSeconds timed(seconds_, *this, "all_reduce", buf.nbytes());
    issue_deferred([&] { do_all_reduce(buf, op); }, [&] { do_all_reduce_deferred(buf, op); });
  }
  bytes_sent_ += ring_all_reduce_bytes(buf.nbytes(), size_);
}

void Comm::issue_deferred(const std::function<void()>& plain, const std::function<void()>& deferred) {
  if (profiler::enabled()) {
    plain();  // an ordinary collective, timed alone: nothing to join
    return;
  }
  deferred();
  deferred_ = true;
}

void Comm::check_not_deferred(const char* op) const {
  OM_CHECK(!deferred_,
           "Comm '%s' %s: a deferred collective (reduce_scatter_deferred, all_reduce_deferred) is still "
           "outstanding on this Comm; call join_deferred() first",
           name_.c_str(), op);
}

bool Comm::check_reduce_scatter(ConstTensorView in, TensorView out) const {
  check_contiguous(*this, "reduce_scatter", in.ToString(), in.is_contiguous());
  check_contiguous(*this, "reduce_scatter", out.ToString(), out.is_contiguous());
  OM_CHECK(in.dtype == out.dtype && in.device == out.device && in.numel() == out.numel() * size_,
           "Comm '%s' reduce_scatter: in %s must be size(%d) x out %s, same dtype and device", name_.c_str(),
           in.ToString().c_str(), size_, out.ToString().c_str());
  if (out.numel() == 0) return false;
  check_alias(*this, "reduce_scatter", in.data, in.nbytes(), out.data, out.nbytes(), rank_);
  return true;
}

void Comm::reduce_scatter(ConstTensorView in, TensorView out) {
  check_not_deferred("reduce_scatter");
  if (!check_reduce_scatter(in, out)) return;
  {
    ScopedSeconds timed(seconds_, *this, "reduce_scatter", in.nbytes());
    do_reduce_scatter(in, out);
  }
  bytes_sent_ += ring_reduce_scatter_bytes(in.nbytes(), size_);
}

void Comm::reduce_scatter_deferred(ConstTensorView in, TensorView out) {
  if (!check_reduce_scatter(in, out)) return;
  {
    ScopedSeconds timed(seconds_, *this, "reduce_scatter", in.nbytes());
    issue_deferred([&] { do_reduce_scatter(in, out); }, [&] { do_reduce_scatter_deferred(in, out); });
  }
  bytes_sent_ += ring_reduce_scatter_bytes(in.nbytes(), size_);
}

void Comm::join_deferred() {
  if (!deferred_) return;
  do_join_deferred();
  deferred_ = false;
}

void Comm::all_gather(ConstTensorView in, TensorView out) {
  check_not_deferred("all_gather");
  check_contiguous(*this, "all_gather", in.ToString(), in.is_contiguous());
  check_contiguous(*this, "all_gather", out.ToString(), out.is_contiguous());
  OM_CHECK(in.dtype == out.dtype && in.device == out.device && out.numel() == in.numel() * size_,
           "Comm '%s' all_gather: out %s must be size(%d) x in %s, same dtype and device", name_.c_str(),
           out.ToString().c_str(), size_, in.ToString().c_str());
  if (in.numel() == 0) return;
  check_alias(*this, "all_gather", out.data, out.nbytes(), in.data, in.nbytes(), rank_);
  {
    ScopedSeconds timed(seconds_, *this, "all_gather", out.nbytes());
    do_all_gather(in, out);
  }
  bytes_sent_ += ring_all_gather_bytes(out.nbytes(), size_);
}

void Comm::broadcast(TensorView buf, int root) {
  check_not_deferred("broadcast");
  check_contiguous(*this, "broadcast", buf.ToString(), buf.is_contiguous());
  OM_CHECK(root >= 0 && root < size_, "Comm '%s' broadcast: root %d outside size %d", name_.c_str(), root, size_);
  if (buf.numel() == 0) return;
  {
    ScopedSeconds timed(seconds_, *this, "broadcast", buf.nbytes());
    do_broadcast(buf, root);
  }
  bytes_sent_ += ring_broadcast_bytes(buf.nbytes(), size_, rank_, root);
}

void Comm::barrier() {
  check_not_deferred("barrier");
  ScopedSeconds timed(seconds_, *this, "barrier", 0);
  do_barrier();
}

}  // namespace om
