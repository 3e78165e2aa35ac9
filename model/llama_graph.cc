// CUDA graphs for the training step's micro-batch (model/llama.h, ForwardBackward).
//
// Ordering. The eager work runs on ctx_'s stream (the legacy default stream, which the optimizer, the
// trainer's copies and every host wait use too). A graph is captured on, and launched on, a stream of
// the model's own, created non-blocking (so a capture never picks up an implicit dependency on the
// default stream); each launch is bracketed by two joins: the graph's stream waits for everything issued
// on the default stream before (the input copies, ZeroGrad, the last optimizer step), and the default
// stream waits for the graph before anything issued after (the loss copy, CheckFinite, ReduceGradients).
// So a replay sits in the default stream's order exactly where the eager work would: no host wait is
// added, and the graph's kernels are the eager path's (the same launches with the same arguments, in
// the same order), so its results are the same bits (tests/cuda/llama_graph_test.cc).
// Tensor parallel: while capturing, the tp Comm orders its collectives after and before the graph's stream
// with events (Comm::set_compute_stream), so they are captured too (NCCL collectives can be), in the
// same order on every tp rank; a replay runs them without the host calling the Comm (so the Comm's byte
// and time counters, and the hang watchdog's record, see only eager micro-batches).
// What is baked into a graph: every device address (the arenas, and the scratch the kernels allocate
// stream-ordered: a graph's memory nodes), the micro-batch size B and the loss gradient dloss; the
// tokens and targets are read from the arena at each replay (Upload copies them in first).
#include <cstring>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/check.h"
#include "core/device.h"
#include "core/profiler.h"
#include "model/llama.h"

namespace om {

struct Llama::CudaGraphs {
  struct Entry {
    int64_t batch = 0;
    uint32_t dloss_bits = 0;
    void* exec = nullptr;  // the instantiated graph, from the kind's second micro-batch on
    uint64_t used = 0;     // the last micro-batch of this kind (least recently used goes first)
  };
  int device = 0;
  void* stream = nullptr;  // captures and launches (non-blocking)
  void* event = nullptr;   // the joins with the default stream
  std::vector<Entry> entries;
  uint64_t tick = 0;
  GraphCounts counts;

  explicit CudaGraphs(int device_index)
      : device(device_index),
        stream(device_memory::cuda_stream_create(device_index)),
        event(device_memory::cuda_sync_event_create()) {}
  ~CudaGraphs() {
    // A graph may still be running: wait for it before its memory goes (a teardown, not a step).
    device_memory::cuda_stream_synchronize(device, stream);
    for (Entry& e : entries) Drop(e);
    device_memory::cuda_event_destroy(event);
    device_memory::cuda_stream_destroy(stream);
  }
  CudaGraphs(const CudaGraphs&) = delete;
  CudaGraphs& operator=(const CudaGraphs&) = delete;

  static void Drop(Entry& e) {
    if (e.exec != nullptr) device_memory::cuda_graph_destroy(e.exec);
    e.exec = nullptr;
  }

  // The entry of kind (B, dloss); a new kind replaces the least recently used when kMaxCudaGraphs are
  // kept. Sets *fresh when the kind was not kept (its micro-batch then runs eagerly).
  Entry& Find(int64_t batch, float dloss, bool* fresh) {
    uint32_t bits = 0;
    std::memcpy(&bits, &dloss, sizeof bits);
    ++tick;
    *fresh = false;
    for (Entry& e : entries) {
      if (e.batch == batch && e.dloss_bits == bits) {
        e.used = tick;
        return e;
      }
    }
    *fresh = true;
    if (entries.size() < static_cast<size_t>(kMaxCudaGraphs)) {
      entries.push_back(Entry{batch, bits, nullptr, tick});
      return entries.back();
    }
    Entry* lru = &entries.front();
    for (Entry& e : entries) lru = e.used < lru->used ? &e : lru;
    // Its last replay may still be running on the graph's stream: a rare wait (a fifth kind of micro-batch).
    device_memory::cuda_stream_synchronize(device, stream);
    Drop(*lru);
    *lru = Entry{batch, bits, nullptr, tick};
    return *lru;
  }
};

void Llama::CudaGraphsDelete::operator()(CudaGraphs* g) const { delete g; }

void Llama::set_cuda_graphs(bool on) {
  if (!on) {
    graphs_.reset();
    return;
  }
  OM_CHECK(device_.kind == DeviceKind::kCuda, "Llama: CUDA graphs need a CUDA model; this one is on %s",
           device_name(device_).c_str());
  if (graphs_ == nullptr) graphs_.reset(new CudaGraphs(device_.index));
}

Llama::GraphCounts Llama::graph_counts() const { return graphs_ != nullptr ? graphs_->counts : GraphCounts{}; }

void Llama::ForwardBackward(ConstTensorView tokens, ConstTensorView targets, TensorView losses, float loss_scale) {
  if (probe_ != nullptr) {  // a probe sees Forward's work as Forward does it
    if (graphs_ != nullptr) ++graphs_->counts.eager;
    Forward(tokens, targets, losses);
    Backward(loss_scale);
    return;
  }
  Upload(tokens, targets, losses);
  const int64_t B = batch_;
  const float dloss = LossGradient(loss_scale);
  const bool graphed = graphs_ != nullptr && !grad_ready_ && !profiler::enabled() && !cuda_sync_debug();
  bool fresh = true;  // eager: no graphs, or a kind's first micro-batch (the warm-up)
  CudaGraphs::Entry* e = graphed ? &graphs_->Find(B, dloss, &fresh) : nullptr;
  if (fresh) {
    if (graphs_ != nullptr) ++graphs_->counts.eager;
    ForwardBackwardCompute(B, dloss);
  } else {
    CudaGraphs& g = *graphs_;
    if (e->exec == nullptr) {
      const ExecContext eager = ctx_;
      ctx_.stream = Stream{g.stream};
      if (tp_ != nullptr) tp_->set_compute_stream(ctx_.stream);  // its collectives join the capture
      device_memory::cuda_graph_begin_capture(g.stream);
      ForwardBackwardCompute(B, dloss);
      std::string error;
      e->exec = device_memory::cuda_graph_end_capture(g.stream, &error);
      if (tp_ != nullptr) tp_->set_compute_stream(Stream{});
      ctx_ = eager;
      OM_CHECK(e->exec != nullptr,
               "Llama: capturing a micro-batch (B = %ld) into a CUDA graph failed: %s. Run without --cuda-graphs",
               static_cast<long>(B), error.c_str());
      ++g.counts.captures;
    }
    device_memory::cuda_stream_join(g.event, ctx_.stream.handle, g.stream);
    device_memory::cuda_graph_launch(e->exec, g.stream);
    device_memory::cuda_stream_join(g.event, g.stream, ctx_.stream.handle);
    ++g.counts.launches;
  }
  CopyLosses(losses);
}

}  // namespace om
