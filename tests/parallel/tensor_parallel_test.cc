// Megatron tensor-parallel layers against the single-process kernels (STYLE.md §9, Megatron
// _initialize_affine_weight_cpu): every rank builds the FULL logical weights and inputs from the keyed
// Rng (identical on all ranks), computes the unsharded reference with kernels/ in f64, then runs the tp
// layers in f32 on its own slices and compares outputs (after the all-reduces) and its slices of the
// gradients. Each layout with tp > 1 that divides the job is tested (np 2: tp2; np 4: tp2·dp2, tp4).
// Tolerances come from kernels/check/tolerance.h; each comparison says which rule and why. The f64
// reference's own error (~1e-16 relative) is negligible next to the f32 bounds.
// Only EXPECTs (expect_all_ok): an ASSERT failing on one rank would leave the others in a collective.
#include "parallel/tensor_parallel.h"

#include <mpi.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "parallel/process_groups.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 20261128;
constexpr int64_t kF32Bytes = 4;

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// ProcessGroups for every tp > 1 dividing the job (the same sequence on every rank).
std::vector<ProcessGroups> tp_layouts() {
  std::vector<ProcessGroups> layouts;
  const int n = world_size();
  for (int64_t tp = 2; tp <= n; ++tp) {
    if (n % tp != 0) continue;
    StatusOr<ProcessGroups> groups = ProcessGroups::Create(ParallelDims::Make(tp, n / tp, n).value());
    OM_CHECK(groups.ok(), "%s", groups.status().ToString().c_str());  // same outcome on every rank
    layouts.push_back(std::move(*groups));
  }
  return layouts;
}

std::string layout_name(const ProcessGroups& g) {
  return "tp" + std::to_string(g.dims().tp) + "·dp" + std::to_string(g.dims().dp) + " tp_rank " +
         std::to_string(g.tp_rank());
}

// A full logical f32 tensor drawn from the stream `name`: N(0, stddev²), or integers in [-4, 4].
HostTensor normal(const std::string& name, Shape shape, double stddev = 1.0) {
  HostTensor t(name, DType::kF32, shape);
  t.FillNormal(Rng(kSeed, name), 0, stddev);
  return t;
}
HostTensor small_integers(const std::string& name, Shape shape) {
  HostTensor t(name, DType::kF32, shape);
  const Rng rng(kSeed, name);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, std::floor(-4.0 + 9.0 * rng.UniformDouble(i)));
  return t;
}

HostTensor f64(const HostTensor& t) { return t.Converted(DType::kF64, t.name() + "_f64"); }

// This rank's shard of a full 2-D tensor.
HostTensor shard_of(const HostTensor& full, TpSplitAxis axis, const ProcessGroups& g) {
  Shape s = full.shape();
  s[axis == TpSplitAxis::kRows ? 0 : 1] /= g.dims().tp;
  HostTensor shard(full.name() + "_shard", full.dtype(), s);
  slice_tp_shard(full.cview(), shard.view(), axis, g.tp_rank(), static_cast<int>(g.dims().tp));
  return shard;
}

// Unsharded f64 reference of a linear layer W (O, C): y = x·Wᵀ, dx = dy·W, dW = dW0 + dyᵀ·x.
struct LinearReference {
  HostTensor y, dx, dweight;
  LinearReference(const HostTensor& x, const HostTensor& w, const HostTensor& dy, const HostTensor& dweight0)
      : y("y_ref", DType::kF64, {x.shape()[0], w.shape()[0]}),
        dx("dx_ref", DType::kF64, x.shape()),
        dweight(f64(dweight0)) {
    const HostTensor x64 = f64(x), w64 = f64(w), dy64 = f64(dy);
    matmul(ExecContext{}, {.c = y.view(), .a = x64.view(), .b = w64.view(), .trans_b = Transpose::kYes});
    matmul(ExecContext{}, {.c = dx.view(), .a = dy64.view(), .b = w64.view()});
    matmul(ExecContext{}, {.c = dweight.view(), .a = dy64.view(), .b = x64.view(), .trans_a = Transpose::kYes,
                           .mode = WriteMode::kAccumulate});
  }
};

// Rule 2 for a dot product of length `len` of factors bounded by the tensors' max |.|:
// sum |x_i·y_i| <= len · max|x| · max|y|.
Tolerance dot_tolerance(int64_t reduce_len, int64_t len, const HostTensor& a, const HostTensor& b) {
  return for_reduction(DType::kF32, reduce_len, static_cast<double>(len) * a.max_abs() * b.max_abs());
}

struct LinearShape {
  int64_t N, C, O;
};
constexpr LinearShape kLinear{6, 20, 16};  // C and O divisible by 4; tiny so the test runs in ms

// Column-parallel (integers = false: N(0,1) data, rule 2; true: integers in [-4, 4], rule 1).
void run_column_parallel(ProcessGroups& g, bool integers) {
  const auto [N, C, O] = kLinear;
  auto make = [integers](const std::string& n, Shape s) { return integers ? small_integers(n, s) : normal(n, s); };
  const HostTensor x = make("tp_test/col/x", {N, C}), w = make("tp_test/col/w", {O, C}),
                   dy = make("tp_test/col/dy", {N, O}), dw0 = make("tp_test/col/dw0", {O, C});
  const LinearReference ref(x, w, dy, dw0);
  const std::string op = std::string("column_parallel_linear ") + (integers ? "integers " : "") + layout_name(g);

  const HostTensor w_local = shard_of(w, TpSplitAxis::kRows, g), dy_local = shard_of(dy, TpSplitAxis::kColumns, g);
  HostTensor dw_local = shard_of(dw0, TpSplitAxis::kRows, g);  // non-zero: the accumulate (+=) path
  HostTensor y_local("y_local", DType::kF32, {N, O / g.dims().tp}), dx("dx", DType::kF32, {N, C});
  Comm& tp = g.tp();
  tp.reset_bytes();
  column_parallel_linear_forward(ExecContext{}, tp, {.y = y_local.view(), .x = x.view(), .weight = w_local.view()});
  const uint64_t fwd_bytes = tp.bytes_sent();
  column_parallel_linear_backward(ExecContext{}, tp, {.dx = dx.view(), .dweight = dw_local.view(), .dy = dy_local.view(),
                                                      .x = x.view(), .weight = w_local.view()});
  const uint64_t bwd_bytes = tp.bytes_sent() - fwd_bytes;

  // Rule 1: integers in [-4, 4] give products <= 16 and partial sums <= 16·max(C, O, N+1)·tp < 2^24,
  // exact in f32 in any order. Rule 2 otherwise: y is one dot product of length C, as unsharded;
  // dx = Σ over tp ranks of dot products of length O/tp: O/tp + tp roundings <= O + tp, terms
  // summing to <= O·max|dy|·max|w|; dW is dW0 plus a dot product of length N (N + 1 additions).
  const bool ex = integers;
  expect_all_ok({
      compare_tensors(op, "y (local slice)", y_local, shard_of(ref.y, TpSplitAxis::kColumns, g),
                      ex ? exact() : dot_tolerance(C, C, x, w)),
      compare_tensors(op, "dx (all-reduced)", dx, ref.dx, ex ? exact() : dot_tolerance(O + g.dims().tp, O, dy, w)),
      compare_tensors(op, "dweight (local rows, +=)", dw_local, shard_of(ref.dweight, TpSplitAxis::kRows, g),
                      ex ? exact()
                         : for_reduction(DType::kF32, N + 1, dw0.max_abs() + N * dy.max_abs() * x.max_abs())),
      check_fact(op, "forward sends nothing", fwd_bytes == 0, std::to_string(fwd_bytes)),
      check_fact(op, "backward sends one ring all-reduce of dx (N, C)",
                 bwd_bytes == ring_all_reduce_bytes(N * C * kF32Bytes, static_cast<int>(g.dims().tp)),
                 std::to_string(bwd_bytes)),
  });
}

void run_row_parallel(ProcessGroups& g, bool integers) {
  const auto [N, C, O] = kLinear;
  auto make = [integers](const std::string& n, Shape s) { return integers ? small_integers(n, s) : normal(n, s); };
  const HostTensor x = make("tp_test/row/x", {N, C}), w = make("tp_test/row/w", {O, C}),
                   dy = make("tp_test/row/dy", {N, O}), dw0 = make("tp_test/row/dw0", {O, C});
  const LinearReference ref(x, w, dy, dw0);
  const std::string op = std::string("row_parallel_linear ") + (integers ? "integers " : "") + layout_name(g);

  const HostTensor x_local = shard_of(x, TpSplitAxis::kColumns, g), w_local = shard_of(w, TpSplitAxis::kColumns, g);
  HostTensor dw_local = shard_of(dw0, TpSplitAxis::kColumns, g);
  HostTensor y("y", DType::kF32, {N, O}), dx_local("dx_local", DType::kF32, {N, C / g.dims().tp});
  Comm& tp = g.tp();
  tp.reset_bytes();
  row_parallel_linear_forward(ExecContext{}, tp, {.y = y.view(), .x = x_local.view(), .weight = w_local.view()});
  const uint64_t fwd_bytes = tp.bytes_sent();
  row_parallel_linear_backward(ExecContext{}, tp, {.dx = dx_local.view(), .dweight = dw_local.view(), .dy = dy.view(),
                                                   .x = x_local.view(), .weight = w_local.view()});
  const uint64_t bwd_bytes = tp.bytes_sent() - fwd_bytes;

  // Rule 1 as for the column case. Rule 2: y = Σ over tp ranks of dot products of length C/tp
  // (C/tp + tp <= C + tp roundings); dx is a dot product of length O and dW one of length N (+ dW0),
  // both as unsharded.
  const bool ex = integers;
  expect_all_ok({
      compare_tensors(op, "y (all-reduced)", y, ref.y, ex ? exact() : dot_tolerance(C + g.dims().tp, C, x, w)),
      compare_tensors(op, "dx (local slice)", dx_local, shard_of(ref.dx, TpSplitAxis::kColumns, g),
                      ex ? exact() : dot_tolerance(O, O, dy, w)),
      compare_tensors(op, "dweight (local columns, +=)", dw_local, shard_of(ref.dweight, TpSplitAxis::kColumns, g),
                      ex ? exact()
                         : for_reduction(DType::kF32, N + 1, dw0.max_abs() + N * dy.max_abs() * x.max_abs())),
      check_fact(op, "forward sends one ring all-reduce of y (N, O)",
                 fwd_bytes == ring_all_reduce_bytes(N * O * kF32Bytes, static_cast<int>(g.dims().tp)),
                 std::to_string(fwd_bytes)),
      check_fact(op, "backward sends nothing", bwd_bytes == 0, std::to_string(bwd_bytes)),
  });
}

TEST(TensorParallel, ColumnParallelLinearMatchesFullLinear) {
  for (ProcessGroups& g : tp_layouts()) run_column_parallel(g, /*integers=*/false);
}

TEST(TensorParallel, ColumnParallelLinearIsExactOnIntegers) {
  for (ProcessGroups& g : tp_layouts()) run_column_parallel(g, /*integers=*/true);
}

TEST(TensorParallel, RowParallelLinearMatchesFullLinear) {
  for (ProcessGroups& g : tp_layouts()) run_row_parallel(g, /*integers=*/false);
}

TEST(TensorParallel, RowParallelLinearIsExactOnIntegers) {
  for (ProcessGroups& g : tp_layouts()) run_row_parallel(g, /*integers=*/true);
}

// y = Row(Column(x)) with W1 (F, C), W2 (C, F): the Megatron MLP pair (activation omitted: it is
// element-wise on the local slice and does not change the communication).
TEST(TensorParallel, ColumnThenRowEqualsTwoLayerProduct) {
  const int64_t N = 5, C = 12, F = 24;
  const HostTensor x = normal("tp_test/mlp/x", {N, C}), w1 = normal("tp_test/mlp/w1", {F, C}),
                   w2 = normal("tp_test/mlp/w2", {C, F}), dy = normal("tp_test/mlp/dy", {N, C});
  // Reference: h = x·W1ᵀ, y = h·W2ᵀ; dh = dy·W2, dx = dh·W1, dW2 = dyᵀ·h, dW1 = dhᵀ·x.
  HostTensor h64("h64", DType::kF64, {N, F});
  HostTensor y_ref("y_ref", DType::kF64, {N, C}), dh_ref("dh_ref", DType::kF64, {N, F});
  HostTensor dw2_ref("dw2_ref", DType::kF64, {C, F}), dx_ref("dx_ref", DType::kF64, {N, C}),
      dw1_ref("dw1_ref", DType::kF64, {F, C});
  {
    const HostTensor x64 = f64(x), w1_64 = f64(w1), w2_64 = f64(w2), dy64 = f64(dy);
    const ExecContext ctx;
    matmul(ctx, {.c = h64.view(), .a = x64.view(), .b = w1_64.view(), .trans_b = Transpose::kYes});
    matmul(ctx, {.c = y_ref.view(), .a = h64.view(), .b = w2_64.view(), .trans_b = Transpose::kYes});
    matmul(ctx, {.c = dh_ref.view(), .a = dy64.view(), .b = w2_64.view()});
    matmul(ctx, {.c = dw2_ref.view(), .a = dy64.view(), .b = h64.view(), .trans_a = Transpose::kYes});
    matmul(ctx, {.c = dx_ref.view(), .a = dh_ref.view(), .b = w1_64.view()});
    matmul(ctx, {.c = dw1_ref.view(), .a = dh_ref.view(), .b = x64.view(), .trans_a = Transpose::kYes});
  }
  for (ProcessGroups& g : tp_layouts()) {
    const int64_t tp = g.dims().tp;
    const std::string op = "column→row MLP " + layout_name(g);
    const HostTensor w1_local = shard_of(w1, TpSplitAxis::kRows, g), w2_local = shard_of(w2, TpSplitAxis::kColumns, g);
    HostTensor h_local("h_local", DType::kF32, {N, F / tp}), y("y", DType::kF32, {N, C});
    HostTensor dh_local("dh_local", DType::kF32, {N, F / tp}), dx("dx", DType::kF32, {N, C});
    HostTensor dw1_local("dw1_local", DType::kF32, {F / tp, C}), dw2_local("dw2_local", DType::kF32, {C, F / tp});
    const ExecContext ctx;
    column_parallel_linear_forward(ctx, g.tp(), {.y = h_local.view(), .x = x.view(), .weight = w1_local.view()});
    row_parallel_linear_forward(ctx, g.tp(), {.y = y.view(), .x = h_local.view(), .weight = w2_local.view()});
    row_parallel_linear_backward(ctx, g.tp(), {.dx = dh_local.view(), .dweight = dw2_local.view(), .dy = dy.view(),
                                               .x = h_local.view(), .weight = w2_local.view()});
    column_parallel_linear_backward(ctx, g.tp(), {.dx = dx.view(), .dweight = dw1_local.view(),
                                                  .dy = dh_local.view(), .x = x.view(), .weight = w1_local.view()});
    // Rule 2 for two chained products: each output is a sum over paths (products of three factors);
    // every path picks up the roundings of both reductions, so reduce_len = the sum of both lengths
    // (the all-reduce adds tp more), and abs_sum <= (number of paths) · the factors' max |.|.
    //   y   = Σ_f Σ_c x·w1·w2        reduce C + F + tp,   paths C·F
    //   dh  = dy·W2 (local)         reduce C,            terms C
    //   dW2 = dyᵀ·h                  reduce N + C,        paths N·C
    //   dx  = Σ_f Σ_c dy·w2·w1      reduce C + F + tp,   paths C·F
    //   dW1 = dhᵀ·x                  reduce N + C,        paths N·C
    const double mx = x.max_abs(), m1 = w1.max_abs(), m2 = w2.max_abs(), mdy = dy.max_abs();
    expect_all_ok({
        compare_tensors(op, "y", y, y_ref, for_reduction(DType::kF32, C + F + tp, C * F * mx * m1 * m2)),
        compare_tensors(op, "dh (local slice)", dh_local, shard_of(dh_ref, TpSplitAxis::kColumns, g),
                        for_reduction(DType::kF32, C, C * mdy * m2)),
        compare_tensors(op, "dW2 (local columns)", dw2_local, shard_of(dw2_ref, TpSplitAxis::kColumns, g),
                        for_reduction(DType::kF32, N + C, N * C * mdy * mx * m1)),
        compare_tensors(op, "dx (all-reduced)", dx, dx_ref, for_reduction(DType::kF32, C + F + tp, C * F * mdy * m2 * m1)),
        compare_tensors(op, "dW1 (local rows)", dw1_local, shard_of(dw1_ref, TpSplitAxis::kRows, g),
                        for_reduction(DType::kF32, N + C, N * C * mdy * m2 * mx)),
    });
  }
}

// copy_to_tp_region_backward_overlapped: the weight gradient's work runs while the all-reduce is
// outstanding (between Comm::all_reduce_deferred and join_deferred, which is what lets NCCL overlap the
// two), and afterwards dx holds the sum over the tp ranks and nothing is left pending.
TEST(TensorParallel, BackwardAllReduceIsOutstandingWhileTheWeightGradientRuns) {
  for (ProcessGroups& g : tp_layouts()) {
    SCOPED_TRACE(layout_name(g));
    const int64_t tp = g.dims().tp;
    HostTensor dx("dx", DType::kF32, {3, 4});
    for (int64_t i = 0; i < dx.numel(); ++i) dx.set(i, static_cast<double>((g.tp_rank() + 1) * (i + 1)));
    bool ran = false, pending_inside = false;
    copy_to_tp_region_backward_overlapped(g.tp(), dx.view(), [&] {
      ran = true;
      pending_inside = g.tp().deferred_pending();
    });
    EXPECT_TRUE(ran);
    EXPECT_TRUE(pending_inside) << "the weight gradient ran outside the deferred all-reduce";
    EXPECT_FALSE(g.tp().deferred_pending());
    const double ranks = static_cast<double>(tp * (tp + 1) / 2);  // Σ (tp_rank + 1)
    for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_EQ(dx.get(i), ranks * static_cast<double>(i + 1)) << i;
  }
}

// Ids across the whole (padded) vocabulary, so every shard owns some; Vp = 64 divides by tp = 2, 4.
TEST(TensorParallel, VocabParallelEmbeddingMatchesFullEmbedding) {
  const int64_t N = 14, C = 6, Vp = 64;
  const HostTensor table = normal("tp_test/emb/table", {Vp, C}), dout = normal("tp_test/emb/dout", {N, C});
  HostTensor ids("ids", DType::kI32, {N});
  for (int64_t n = 0; n < N; ++n) ids.set(n, (n * 37 + 5) % Vp);
  ids.set(N - 1, ids.get(0));  // a repeated id: its gradient rows add up
  // Reference in f32: the same kernel on the whole table. Forward: each output row of the sharded
  // version is one table row plus zeros from the other ranks, so it is bit-identical (rule 1). Backward:
  // each shard row sums the same dout rows in the same (row) order as the unsharded kernel: exact.
  HostTensor out_ref("out_ref", DType::kF32, {N, C}), dtable_ref("dtable_ref", DType::kF32, {Vp, C});
  embedding_forward(ExecContext{}, {.out = out_ref.view(), .ids = ids.view(), .weight = table.view()});
  embedding_backward(ExecContext{}, {.dweight = dtable_ref.view(), .dout = dout.view(), .ids = ids.view()});
  for (ProcessGroups& g : tp_layouts()) {
    const std::string op = "vocab_parallel_embedding " + layout_name(g);
    const HostTensor local = shard_of(table, TpSplitAxis::kRows, g);
    HostTensor out("out", DType::kF32, {N, C}), dlocal("dtable_local", DType::kF32, local.shape());
    g.tp().reset_bytes();
    vocab_parallel_embedding_forward(ExecContext{}, g.tp(), {.out = out.view(), .ids = ids.view(), .weight = local.view()});
    const uint64_t fwd_bytes = g.tp().bytes_sent();
    vocab_parallel_embedding_backward(ExecContext{}, g.tp(), {.dweight = dlocal.view(), .dout = dout.view(), .ids = ids.view()});
    const uint64_t bwd_bytes = g.tp().bytes_sent() - fwd_bytes;
    expect_all_ok({
        compare_tensors(op, "out (all-reduced)", out, out_ref, exact()),
        compare_tensors(op, "dweight (local rows)", dlocal, shard_of(dtable_ref, TpSplitAxis::kRows, g), exact()),
        check_fact(op, "forward sends one ring all-reduce of out (N, C)",
                   fwd_bytes == ring_all_reduce_bytes(N * C * kF32Bytes, static_cast<int>(g.dims().tp)),
                   std::to_string(fwd_bytes)),
        check_fact(op, "backward sends nothing", bwd_bytes == 0, std::to_string(bwd_bytes)),
    });
  }
}

// V = 50 true ids padded to Vp = 64 (the last shard holds padding at tp 2 and 4, and at tp 4 shard 3
// is columns 48..63: two real ids and 14 padding). Padding logits are set huge: if they leaked into
// the max or the sum the loss would be off by ~1000.
TEST(TensorParallel, VocabParallelCrossEntropyMatchesFullCrossEntropy) {
  const int64_t N = 12, V = 50, Vp = 64;
  HostTensor logits = normal("tp_test/ce/logits", {N, Vp}, 3.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = V; j < Vp; ++j) logits.set(n * Vp + j, 1000.0);
  HostTensor targets("targets", DType::kI32, {N});
  int64_t counted = 0;
  for (int64_t n = 0; n < N; ++n) {
    const bool ignored = n % 5 == 3;
    targets.set(n, ignored ? kIgnoreTarget : (n * 13 + 2) % V);
    counted += ignored ? 0 : 1;
  }
  const float dloss = 1.0f / static_cast<float>(counted);

  // Reference: f64 cross-entropy over the whole padded row as one shard (vocab_size V masks padding).
  const HostTensor logits64 = f64(logits);
  HostTensor losses_ref("losses_ref", DType::kF64, {N}), max_ref("row_max_ref", DType::kF64, {N}),
      sum_ref("sum_exp_ref", DType::kF64, {N}), tl_ref("target_logit_ref", DType::kF64, {N}),
      dlogits_ref("dlogits_ref", DType::kF64, {N, Vp});
  const VocabShard full{0, V};
  cross_entropy_forward(ExecContext{}, {losses_ref.view(), max_ref.view(), sum_ref.view(), tl_ref.view(),
                                        logits64.view(), targets.view(), full});
  cross_entropy_backward(ExecContext{}, {dlogits_ref.view(), logits64.view(), targets.view(), max_ref.view(),
                                         sum_ref.view(), full, dloss});

  for (ProcessGroups& g : tp_layouts()) {
    const int64_t tp = g.dims().tp, Vl = Vp / tp;
    const std::string op = "vocab_parallel_cross_entropy " + layout_name(g);
    const HostTensor local = shard_of(logits, TpSplitAxis::kColumns, g);
    HostTensor losses("losses", DType::kF32, {N}), row_max("row_max", DType::kF32, {N}),
        sum_exp("sum_exp", DType::kF32, {N}), target_logit("target_logit", DType::kF32, {N}),
        dlogits("dlogits", DType::kF32, {N, Vl});
    g.tp().reset_bytes();
    vocab_parallel_cross_entropy_forward(ExecContext{}, g.tp(),
                                         {.losses = losses.view(), .row_max = row_max.view(), .sum_exp = sum_exp.view(),
                                          .target_logit = target_logit.view(), .logits = local.view(),
                                          .targets = targets.view(), .vocab_size = V});
    const uint64_t fwd_bytes = g.tp().bytes_sent();
    vocab_parallel_cross_entropy_backward(ExecContext{}, g.tp(),
                                          {.dlogits = dlogits.view(), .logits = local.view(), .targets = targets.view(),
                                           .row_max = row_max.view(), .sum_exp = sum_exp.view(), .vocab_size = V,
                                           .dloss = dloss});
    const uint64_t bwd_bytes = g.tp().bytes_sent() - fwd_bytes;
    // row_max (a max of inputs) and target_logit (one input plus zeros) are exact. sum_exp: each shard
    // sums its <= Vl terms in kCrossEntropySimdLanes f32 lanes (rule 4, as the unsharded f32 kernel in
    // kernels/check/cross_entropy_check.cc), and the all-reduce adds tp shard sums: tp more additions,
    // counted by passing reduce_len Vl + lanes·tp (ceil(reduce_len / lanes) then grows by tp). Its
    // relative error is the absolute error of log(sum_exp), so the loss has abs_sum 1; sum_exp itself
    // is compared with abs_sum = its largest reference value. dlogits: sum_exp's relative error, the
    // exp's ulps and 3 roundings (factor, product, subtraction) relative to dloss: term_ulps + 3.
    const int64_t lanes = cpu::kCrossEntropySimdLanes, reduce_len = Vl + lanes * tp;
    expect_all_ok({
        compare_tensors(op, "row_max (all-reduced MAX)", row_max, max_ref, exact()),
        compare_tensors(op, "target_logit (all-reduced)", target_logit, tl_ref, exact()),
        compare_tensors(op, "sum_exp (all-reduced)", sum_exp, sum_ref,
                        for_lane_reduction(DType::kF32, reduce_len, lanes, sum_ref.max_abs(), kExpF32Ulps)),
        compare_tensors(op, "losses", losses, losses_ref,
                        for_lane_reduction(DType::kF32, reduce_len, lanes, 1.0, kExpF32Ulps)),
        compare_tensors(op, "dlogits (local columns)", dlogits, shard_of(dlogits_ref, TpSplitAxis::kColumns, g),
                        for_lane_reduction(DType::kF32, reduce_len, lanes, dloss, kExpF32Ulps + 3.0)),
        check_fact(op, "forward sends three ring all-reduces of (N) and never the logits",
                   fwd_bytes == 3 * ring_all_reduce_bytes(N * kF32Bytes, static_cast<int>(tp)), std::to_string(fwd_bytes)),
        check_fact(op, "backward sends nothing", bwd_bytes == 0, std::to_string(bwd_bytes)),
    });
  }
}

// Shards of a tensor whose element (i, j) = 1000·i + j (exact in f32): the slice holds the expected
// coordinates, place_tp_shard from every rank's slice rebuilds the tensor, and the fused qkv (GQA:
// H = 8 query heads, Hkv = 4 key/value heads, D = 2: whole heads on each of up to 4 ranks) and gate_up shards hold [q_r; k_r; v_r] and
// [gate_r; up_r].
TEST(TensorParallel, ShardsHoldTheirLogicalCoordinates) {
  auto coords = [](int64_t rows, int64_t cols) {
    HostTensor t("coords", DType::kF32, {rows, cols});
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) t.set(i * cols + j, 1000.0 * i + j);
    return t;
  };
  for (ProcessGroups& g : tp_layouts()) {
    const int tp = static_cast<int>(g.dims().tp), r = g.tp_rank();
    const std::string op = "tp shards " + layout_name(g);
    const HostTensor full = coords(8, 12);
    int64_t bad = 0;
    for (TpSplitAxis axis : {TpSplitAxis::kRows, TpSplitAxis::kColumns}) {
      HostTensor rebuilt("rebuilt", DType::kF32, full.shape());
      for (int q = 0; q < tp; ++q) {
        HostTensor piece = shard_of(full, axis, g);  // shape only; refilled for rank q below
        slice_tp_shard(full.cview(), piece.view(), axis, q, tp);
        place_tp_shard(piece.cview(), rebuilt.view(), axis, q, tp);
      }
      const HostTensor mine = shard_of(full, axis, g);
      const int64_t rows = mine.shape()[0], cols = mine.shape()[1];
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t gi = axis == TpSplitAxis::kRows ? r * rows + i : i;
          const int64_t gj = axis == TpSplitAxis::kColumns ? r * cols + j : j;
          bad += mine.get(i * cols + j) != 1000.0 * gi + gj;
        }
      expect_all_ok({compare_tensors(op, "place_tp_shard of every slice", rebuilt, full, exact())});
    }
    // Fused layouts: segment s of the fused rows holds part r of that segment on rank r.
    const int64_t D = 2, C = 3;
    const std::vector<std::vector<int64_t>> fused = {{8 * D, 4 * D, 4 * D} /* qkv, GQA */, {8, 8} /* gate_up */};
    for (const std::vector<int64_t>& segments : fused) {
      int64_t total = 0;
      for (int64_t s : segments) total += s;
      const HostTensor w = coords(total, C);
      HostTensor shard("fused_shard", DType::kF32, {total / tp, C});
      slice_fused_tp_rows(w.cview(), shard.view(), segments, segments.size() == 3 ? D : 1, r, tp);
      int64_t row = 0, seg_start = 0;
      for (int64_t s : segments) {
        for (int64_t i = 0; i < s / tp; ++i, ++row)
          for (int64_t j = 0; j < C; ++j) bad += shard.get(row * C + j) != 1000.0 * (seg_start + r * (s / tp) + i) + j;
        seg_start += s;
      }
    }
    expect_all_ok({check_fact(op, "every shard element has its logical coordinates", bad == 0,
                              std::to_string(bad) + " wrong")});
  }
}

}  // namespace
}  // namespace om
