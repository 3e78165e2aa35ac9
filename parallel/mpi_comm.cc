#include "parallel/mpi_comm.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace om {
namespace {

// The MPI datatype of a tensor; rejects devices and dtypes this backend does not handle.
MPI_Datatype mpi_type(const Comm& comm, const char* op, const BasicTensorView<const void*>& t) {
  OM_CHECK(t.device.kind == DeviceKind::kCpu, "MpiComm '%s' %s: tensor '%s' is on %s; MpiComm moves CPU tensors only",
           comm.name().c_str(), op, t.name, device_name(t.device).c_str());
  switch (t.dtype) {
    case DType::kF32: return MPI_FLOAT;
    case DType::kF64: return MPI_DOUBLE;
    case DType::kI32: return MPI_INT32_T;
    case DType::kI64: return MPI_INT64_T;
    default: break;
  }
  OM_CHECK(false, "MpiComm '%s' %s: tensor '%s' is %s; MpiComm supports f32, f64, i32, i64", comm.name().c_str(), op,
           t.name, dtype_name(t.dtype).data());
  return MPI_DATATYPE_NULL;
}

MPI_Datatype mpi_type(const Comm& comm, const char* op, const TensorView& t) {
  return mpi_type(comm, op, ConstTensorView(t));
}

int to_count(const Comm& comm, const char* op, int64_t n) {
  OM_CHECK(n <= std::numeric_limits<int>::max(), "MpiComm '%s' %s: %ld elements exceed MPI's int count",
           comm.name().c_str(), op, static_cast<long>(n));
  return static_cast<int>(n);
}

// out[j] = chunk_0[j] op chunk_1[j] op … op chunk_{n−1}[j], folded left in rank order. The loop runs
// chunk by chunk (so it vectorises over j) but each element still sees the association above:
// without -ffast-math the compiler may not reorder these float additions.
template <typename T>
void reduce_in_rank_order(const T* chunks, int n, int64_t m, ReduceOp op, T* out) {
  std::memcpy(out, chunks, static_cast<size_t>(m) * sizeof(T));
  for (int k = 1; k < n; ++k) {
    const T* c = chunks + static_cast<int64_t>(k) * m;
    if (op == ReduceOp::kSum) {
      for (int64_t j = 0; j < m; ++j) out[j] += c[j];
    } else {
      for (int64_t j = 0; j < m; ++j) {
        if constexpr (std::is_floating_point_v<T>) {
          if (c[j] > out[j] || std::isnan(c[j])) out[j] = c[j];  // a NaN anywhere stays NaN
        } else {
          if (c[j] > out[j]) out[j] = c[j];
        }
      }
    }
  }
}

void reduce_in_rank_order(DType dtype, const void* chunks, int n, int64_t m, ReduceOp op, void* out) {
  switch (dtype) {
    case DType::kF32:
      return reduce_in_rank_order(static_cast<const float*>(chunks), n, m, op, static_cast<float*>(out));
    case DType::kF64:
      return reduce_in_rank_order(static_cast<const double*>(chunks), n, m, op, static_cast<double*>(out));
    case DType::kI32:
      return reduce_in_rank_order(static_cast<const int32_t*>(chunks), n, m, op, static_cast<int32_t*>(out));
    case DType::kI64:
      return reduce_in_rank_order(static_cast<const int64_t*>(chunks), n, m, op, static_cast<int64_t*>(out));
    default: OM_CHECK(false, "reduce_in_rank_order: unsupported dtype %s", dtype_name(dtype).data());
  }
}

}  // namespace

int mpi_comm_rank(MPI_Comm comm) {
  int r = 0;
  OM_MPI_CHECK(MPI_Comm_rank(comm, &r));
  return r;
}

int mpi_comm_size(MPI_Comm comm) {
  int n = 0;
  OM_MPI_CHECK(MPI_Comm_size(comm, &n));
  return n;
}

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(len)) + " (" + std::to_string(code) + ")";
}

MpiComm::MpiComm(MPI_Comm comm, std::string name, CommOwnership ownership)
    : Comm(std::move(name), mpi_comm_rank(comm), mpi_comm_size(comm)), comm_(comm), ownership_(ownership) {
  // Errors come back as codes (and so through OM_MPI_CHECK with rank and host) instead of MPI's own
  // abort. Only on communicators we own: a borrowed one (MPI_COMM_WORLD) keeps its handler.
  if (ownership_ == CommOwnership::kOwned) OM_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
}

MpiComm::~MpiComm() {
  if (ownership_ != CommOwnership::kOwned || comm_ == MPI_COMM_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  // After MPI_Finalize nothing may be freed; the process is ending and MPI has released it.
  if (!finalized) MPI_Comm_free(&comm_);
}

void* MpiComm::scratch(size_t bytes) {
  const size_t words = (bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t);
  if (scratch_.size() < words) scratch_.resize(words);
  return scratch_.data();
}

void MpiComm::do_all_reduce(TensorView buf, ReduceOp op) {
  const MPI_Datatype type = mpi_type(*this, "all_reduce", buf);
  const int n = size(), r = rank();
  const int64_t numel = buf.numel();
  to_count(*this, "all_reduce", numel);
  // Chunk k has ⌊N/n⌋ elements plus one for k < N mod n; chunks may be empty when N < n.
  std::vector<int> counts(n), displs(n), recv_counts(n), recv_displs(n);
  for (int k = 0, off = 0; k < n; ++k) {
    counts[k] = static_cast<int>(numel / n + (k < numel % n ? 1 : 0));
    displs[k] = off;
    off += counts[k];
  }
  const int mine = counts[r];
  for (int k = 0; k < n; ++k) {
    recv_counts[k] = mine;
    recv_displs[k] = k * mine;
  }
  const size_t elem = dtype_size(buf.dtype);
  void* chunks = scratch(static_cast<size_t>(mine) * n * elem);
  // Rank r collects chunk r of every rank, sums them in rank order into its own chunk of buf, then
  // every rank gathers the reduced chunks. buf is read by the all-to-all before it is overwritten.
  OM_MPI_CHECK(MPI_Alltoallv(buf.data, counts.data(), displs.data(), type, chunks, recv_counts.data(),
                             recv_displs.data(), type, comm_));
  if (mine > 0) {
    reduce_in_rank_order(buf.dtype, chunks, n, mine, op, static_cast<unsigned char*>(buf.data) + displs[r] * elem);
  }
  OM_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf.data, counts.data(), displs.data(), type, comm_));
}

void MpiComm::do_reduce_scatter(ConstTensorView in, TensorView out) {
  const MPI_Datatype type = mpi_type(*this, "reduce_scatter", in);
  mpi_type(*this, "reduce_scatter", out);
  const int m = to_count(*this, "reduce_scatter", out.numel());
  to_count(*this, "reduce_scatter", in.numel());
  void* chunks = scratch(in.nbytes());
  // The all-to-all finishes reading `in` before `out` (possibly chunk rank() of `in`) is written.
  OM_MPI_CHECK(MPI_Alltoall(in.data, m, type, chunks, m, type, comm_));
  reduce_in_rank_order(in.dtype, chunks, size(), m, ReduceOp::kSum, out.data);
}

void MpiComm::do_all_gather(ConstTensorView in, TensorView out) {
  const MPI_Datatype type = mpi_type(*this, "all_gather", in);
  mpi_type(*this, "all_gather", out);
  const int m = to_count(*this, "all_gather", in.numel());
  to_count(*this, "all_gather", out.numel());
  const void* own_chunk = static_cast<const unsigned char*>(out.data) + static_cast<size_t>(rank()) * in.nbytes();
  // In place (ZeRO: the shard already sits in the full buffer): MPI forbids aliased send/receive
  // buffers, so say MPI_IN_PLACE.
  const void* send = in.data == own_chunk ? MPI_IN_PLACE : in.data;
  OM_MPI_CHECK(MPI_Allgather(send, m, type, out.data, m, type, comm_));
}

void MpiComm::do_broadcast(TensorView buf, int root) {
  const MPI_Datatype type = mpi_type(*this, "broadcast", buf);
  OM_MPI_CHECK(MPI_Bcast(buf.data, to_count(*this, "broadcast", buf.numel()), type, root, comm_));
}

void MpiComm::do_barrier() { OM_MPI_CHECK(MPI_Barrier(comm_)); }

}  // namespace om
