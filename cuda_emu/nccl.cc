// The CUDA emulator's NCCL (cuda_emu/README.md): the calls parallel/nccl_comm.cc makes.
//   One rank: every collective is a copy of the send buffer into the receive buffer (or nothing in place),
//   queued like a kernel.
//   Several ranks (one process each, under mpirun, as on a GPU cluster): the communicator is an MPI
//   communicator over the same processes, in NCCL's rank order, and a collective runs when it is issued:
//   the queue is flushed (everything issued before it runs, as the stream would order it) and the MPI
//   collective moves the device bytes. Running at issue time is a legal schedule, since every rank issues
//   its collectives in one program order, the order a GPU job needs too; it means the emulator does not
//   show a missing stream dependency between a collective and later work (there is one queue).
//   Sums: f32, f64, i32, i64 as MPI sums (MPI's order, not NCCL's ring order; the project compares
//   multi-rank results under a reduction tolerance); bf16 sums each pair in f32 and rounds to bf16 (round to
//   nearest even), as NCCL's ring rounds at every hop.
// The checks are NCCL's: device buffers of the right size, a valid root, ranks in range.
#include <mpi.h>
#include <nccl.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_emu/emu.h"

struct ncclComm {
  int nranks = 1;
  int rank = 0;
  MPI_Comm mpi = MPI_COMM_NULL;  // nranks > 1: the processes of the communicator, MPI rank = NCCL rank
};

namespace {

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
    default: return 0;
  }
}

// ---- Multi-rank: MPI types and reductions -------------------------------------------------------------

float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t float_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// MPI user reductions over bf16 words (MPI has no bf16): inout[i] = in[i] (+ or max) inout[i].
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

void bf16_max(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = bf16_to_float(a[i]), y = bf16_to_float(b[i]);
    if (x > y || x != x) b[i] = a[i];
  }
}

MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    case ncclBfloat16: return MPI_UINT16_T;  // reduced by the bf16 ops above
    default: return MPI_DATATYPE_NULL;
  }
}

// The MPI op for `op` on `type`; MPI_OP_NULL for what the emulator does not reduce (f16, prod, min, avg).
MPI_Op mpi_op(ncclRedOp_t op, ncclDataType_t type) {
  if (type == ncclFloat16) return MPI_OP_NULL;
  if (type == ncclBfloat16) {
    static MPI_Op sum = MPI_OP_NULL, max = MPI_OP_NULL;
    if (sum == MPI_OP_NULL) {
      MPI_Op_create(bf16_sum, /*commute=*/1, &sum);
      MPI_Op_create(bf16_max, 1, &max);
    }
    return op == ncclSum ? sum : op == ncclMax ? max : MPI_OP_NULL;
  }
  return op == ncclSum ? MPI_SUM : op == ncclMax ? MPI_MAX : MPI_OP_NULL;
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) om_emu::fail("%s: MPI error %d", what, rc);
}

// Runs `collective` at its issue (see the top): the queue first, then the MPI exchange on the device bytes.
void run_now(std::function<void()> collective, const char* what, cudaStream_t stream) {
  om_emu::enqueue(std::move(collective), what, stream);
  om_emu::flush();
}

void device_buffers(const char* what, const void* send, size_t send_bytes, const void* recv, size_t recv_bytes) {
  if (!om_emu::device_accessible(send, send_bytes) || !om_emu::device_accessible(recv, recv_bytes)) {
    om_emu::fail("%s: buffers (%p: %zu bytes, %p: %zu bytes) must be device memory", what, send, send_bytes, recv,
                 recv_bytes);
  }
}

ncclResult_t copy(const char* what, const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm,
                  cudaStream_t stream) {
  if (comm == nullptr) return ncclInvalidArgument;
  const size_t bytes = count * type_size(type);
  if (type_size(type) == 0) return ncclInvalidArgument;
  if (bytes == 0) return ncclSuccess;
  device_buffers(what, send, bytes, recv, bytes);
  if (send != recv) om_emu::enqueue([send, recv, bytes] { std::memmove(recv, send, bytes); }, what, stream);
  return ncclSuccess;
}

// World-rank bookkeeping of ncclGetUniqueId / ncclCommInitRank for several ranks: the id carries the
// root's world rank and a serial number, which picks the MPI tag of that communicator's set-up messages.
struct IdPayload {
  uint32_t magic;
  int32_t root_world;
  int32_t serial;
};
constexpr uint32_t kIdMagic = 0x6f6d454du;  // "omEM"
constexpr int kTagBase = 31000;             // below MPI's guaranteed tag upper bound, 32767

bool mpi_running() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init != 0 && fin == 0;
}

int world_rank() {
  int r = 0;
  if (mpi_running()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// The communicator's processes in NCCL rank order: rank r tells the root (world rank from the id) its
// world rank; the root answers every member with the whole list; then MPI_Comm_create_group, which only
// the members call (as only the members call ncclCommInitRank).
MPI_Comm make_group(int nranks, int rank, const IdPayload& id) {
  const int tag = kTagBase + id.serial % 1000;
  std::vector<int> world_of(static_cast<size_t>(nranks), -1);
  world_of[static_cast<size_t>(rank)] = world_rank();
  if (world_rank() == id.root_world) {
    for (int i = 1; i < nranks; ++i) {
      int msg[2];
      check_mpi(MPI_Recv(msg, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "ncclCommInitRank");
      if (msg[0] < 0 || msg[0] >= nranks || world_of[static_cast<size_t>(msg[0])] != -1) {
        om_emu::fail("ncclCommInitRank: rank %d given twice or out of range (%d ranks)", msg[0], nranks);
      }
      world_of[static_cast<size_t>(msg[0])] = msg[1];
    }
    for (int r = 0; r < nranks; ++r) {
      if (world_of[static_cast<size_t>(r)] == id.root_world) continue;
      check_mpi(MPI_Send(world_of.data(), nranks, MPI_INT, world_of[static_cast<size_t>(r)], tag, MPI_COMM_WORLD),
                "ncclCommInitRank");
    }
  } else {
    int msg[2] = {rank, world_rank()};
    check_mpi(MPI_Send(msg, 2, MPI_INT, id.root_world, tag, MPI_COMM_WORLD), "ncclCommInitRank");
    check_mpi(MPI_Recv(world_of.data(), nranks, MPI_INT, id.root_world, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
              "ncclCommInitRank");
  }
  MPI_Group world_group = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm comm = MPI_COMM_NULL;
  check_mpi(MPI_Comm_group(MPI_COMM_WORLD, &world_group), "ncclCommInitRank");
  check_mpi(MPI_Group_incl(world_group, nranks, world_of.data(), &group), "ncclCommInitRank");
  check_mpi(MPI_Comm_create_group(MPI_COMM_WORLD, group, tag, &comm), "ncclCommInitRank");
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return comm;
}

// Argument checks shared by the multi-rank collectives (the caller has checked comm): the type, the
// element count, the send and receive buffers (send_count and recv_count elements).
ncclResult_t check_call(const char* what, size_t count, ncclDataType_t type, const void* send, size_t send_count,
                        const void* recv, size_t recv_count) {
  if (type_size(type) == 0) return ncclInvalidArgument;
  if (count > static_cast<size_t>(INT32_MAX)) om_emu::fail("%s: %zu elements; the emulator's MPI path takes < 2^31", what, count);
  if (send_count * recv_count != 0) {
    device_buffers(what, send, send_count * type_size(type), recv, recv_count * type_size(type));
  }
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  static int serial = 0;
  std::memset(id->internal, 0, sizeof id->internal);
  const IdPayload p{kIdMagic, world_rank(), serial++};
  std::memcpy(id->internal, &p, sizeof p);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (comm == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  IdPayload p;
  std::memcpy(&p, id.internal, sizeof p);
  if (p.magic != kIdMagic) return ncclInvalidArgument;  // not from ncclGetUniqueId
  auto* c = new ncclComm;
  c->nranks = nranks;
  c->rank = rank;
  if (nranks > 1) {
    if (!mpi_running()) {
      om_emu::fail("ncclCommInitRank: %d ranks need MPI (the emulator's NCCL runs over it): call MPI_Init first", nranks);
    }
    c->mpi = make_group(nranks, rank, p);
  }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  om_emu::flush();
  if (comm != nullptr && comm->mpi != MPI_COMM_NULL && mpi_running()) MPI_Comm_free(&comm->mpi);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr) return ncclInvalidArgument;
  if (comm->nranks == 1) return copy("ncclAllReduce", send, recv, count, type, comm, stream);
  if (const ncclResult_t r = check_call("ncclAllReduce", count, type, send, count, recv, count); r != ncclSuccess) {
    return r;
  }
  if (mpi_op(op, type) == MPI_OP_NULL) return ncclInvalidArgument;
  if (count == 0) return ncclSuccess;
  run_now([=] {
    const size_t bytes = count * type_size(type);
    std::vector<char> in(static_cast<const char*>(send), static_cast<const char*>(send) + bytes);
    check_mpi(MPI_Allreduce(in.data(), recv, static_cast<int>(count), mpi_type(type), mpi_op(op, type), comm->mpi),
              "ncclAllReduce");
  }, "ncclAllReduce", stream);
  return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t type, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr) return ncclInvalidArgument;
  if (comm->nranks == 1) return copy("ncclReduceScatter", send, recv, recv_count, type, comm, stream);
  const size_t n = static_cast<size_t>(comm->nranks);
  if (const ncclResult_t r = check_call("ncclReduceScatter", recv_count * n, type, send, recv_count * n, recv,
                                        recv_count);
      r != ncclSuccess) {
    return r;
  }
  if (mpi_op(op, type) == MPI_OP_NULL) return ncclInvalidArgument;
  if (recv_count == 0) return ncclSuccess;
  run_now([=] {
    const size_t bytes = recv_count * type_size(type);
    std::vector<char> in(static_cast<const char*>(send), static_cast<const char*>(send) + bytes * n), out(bytes);
    check_mpi(MPI_Reduce_scatter_block(in.data(), out.data(), static_cast<int>(recv_count), mpi_type(type),
                                       mpi_op(op, type), comm->mpi),
              "ncclReduceScatter");
    std::memcpy(recv, out.data(), bytes);
  }, "ncclReduceScatter", stream);
  return ncclSuccess;
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t stream) {
  if (comm == nullptr) return ncclInvalidArgument;
  if (comm->nranks == 1) return copy("ncclAllGather", send, recv, send_count, type, comm, stream);
  const size_t n = static_cast<size_t>(comm->nranks);
  if (const ncclResult_t r = check_call("ncclAllGather", send_count * n, type, send, send_count, recv,
                                        send_count * n);
      r != ncclSuccess) {
    return r;
  }
  if (send_count == 0) return ncclSuccess;
  run_now([=] {
    const size_t bytes = send_count * type_size(type);
    std::vector<char> in(static_cast<const char*>(send), static_cast<const char*>(send) + bytes);  // send may be in recv
    check_mpi(MPI_Allgather(in.data(), static_cast<int>(send_count), mpi_type(type), recv, static_cast<int>(send_count),
                            mpi_type(type), comm->mpi),
              "ncclAllGather");
  }, "ncclAllGather", stream);
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (comm == nullptr || root < 0 || root >= comm->nranks) return ncclInvalidArgument;
  if (comm->nranks == 1) return copy("ncclBroadcast", send, recv, count, type, comm, stream);
  // send is read on the root only (NCCL ignores it elsewhere).
  const bool is_root = comm->rank == root;
  if (const ncclResult_t r = check_call("ncclBroadcast", count, type, is_root ? send : recv, count, recv, count);
      r != ncclSuccess) {
    return r;
  }
  if (count == 0) return ncclSuccess;
  run_now([=] {
    if (is_root && send != recv) std::memmove(recv, send, count * type_size(type));
    check_mpi(MPI_Bcast(recv, static_cast<int>(count), mpi_type(type), root, comm->mpi), "ncclBroadcast");
  }, "ncclBroadcast", stream);
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    default: return "NCCL error (emulated)";
  }
}

}  // extern "C"
