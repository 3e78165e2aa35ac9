// The CUDA emulator's NCCL (cuda_emu/README.md): one-rank communicators, the calls parallel/nccl_comm.cc
// makes. With one rank every collective is a copy of the send buffer into the receive buffer (or nothing
// in place), queued like a kernel; the checks are NCCL's: device buffers of the right size, a valid root.
// More than one rank is refused (the emulated device is per process; multi-rank runs need GPUs).
#include <nccl.h>

#include <cstring>

#include "cuda_emu/emu.h"

struct ncclComm {
  int nranks = 1;
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

ncclResult_t copy(const char* what, const void* send, void* recv, size_t count, ncclDataType_t type, ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  const size_t bytes = count * type_size(type);
  if (type_size(type) == 0) return ncclInvalidArgument;
  if (bytes == 0) return ncclSuccess;
  if (!om_emu::device_accessible(send, bytes) || !om_emu::device_accessible(recv, bytes)) {
    om_emu::fail("%s: buffers (%p, %p, %zu bytes) must be device memory", what, send, recv, bytes);
  }
  if (send != recv) om_emu::enqueue([send, recv, bytes] { std::memmove(recv, send, bytes); }, what);
  return ncclSuccess;
}

}  // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  std::memset(id->internal, 0x5a, sizeof id->internal);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId, int rank) {
  if (comm == nullptr || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (nranks != 1) {
    om_emu::fail("ncclCommInitRank: %d ranks; the emulator has one-rank communicators only (run multi-rank GPU jobs on "
                 "GPUs)",
                 nranks);
  }
  *comm = new ncclComm;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  om_emu::flush();
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type, ncclRedOp_t, ncclComm_t comm,
                           cudaStream_t) {
  return copy("ncclAllReduce", send, recv, count, type, comm);
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t type, ncclRedOp_t,
                               ncclComm_t comm, cudaStream_t) {
  return copy("ncclReduceScatter", send, recv, recv_count, type, comm);
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t type, ncclComm_t comm,
                           cudaStream_t) {
  return copy("ncclAllGather", send, recv, send_count, type, comm);
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t) {
  if (root != 0) return ncclInvalidArgument;
  return copy("ncclBroadcast", send, recv, count, type, comm);
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    default: return "NCCL error (emulated)";
  }
}

}  // extern "C"
