// LocalComm: the group of one process. Every collective is the identity on its data (a copy where
// input and output differ), sends no bytes and needs no MPI. It lets single-process code run the same
// path as a parallel layout (the trainer's optimizer at dp = 1, tests without mpirun).
// The copy is stream-ordered on the device's default stream (copy_async), where every op of this
// project runs, so later ops see it without the host waiting; a host read goes through copy_bytes,
// which waits. On the CPU it is a memcpy, done on return.
#pragma once

#include <string>

#include "parallel/comm.h"

namespace om {

class LocalComm final : public Comm {
 public:
  explicit LocalComm(std::string name = "local") : Comm(std::move(name), 0, 1) {}

 private:
  void do_all_reduce(TensorView, ReduceOp) override {}
  void do_reduce_scatter(ConstTensorView in, TensorView out) override { copy_if_distinct(in, out); }
  void do_all_gather(ConstTensorView in, TensorView out) override { copy_if_distinct(in, out); }
  void do_broadcast(TensorView, int) override {}
  void do_barrier() override {}

  static void copy_if_distinct(ConstTensorView in, TensorView out) {
    if (in.data == out.data) return;
    const Device d = out.device.kind == DeviceKind::kCpu ? in.device : out.device;
    copy_async(ExecContext{d, Stream{}}, out.data, out.device, in.data, in.device, out.nbytes());
  }
};

}  // namespace om
