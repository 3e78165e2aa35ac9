// LocalComm: the group of one process. Every collective is the identity on its data (a copy where
// input and output differ), sends no bytes and needs no MPI. It lets single-process code run the same
// path as a parallel layout (the trainer's optimizer at dp = 1, tests without mpirun).
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
    if (in.data != out.data) copy_bytes(out.data, out.device, in.data, in.device, out.nbytes());
  }
};

}  // namespace om
