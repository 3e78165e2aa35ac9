// ZeRO-1 DistributedOptimizer under mpirun (2, 4, 8 ranks). Every rank builds the same parameters:
//   w1 (7, 13) decay | b1 (5) no decay | w2 (3, 4) decay | g (1) no decay     N = 109
// With block B = 3 the optimizer units are w1 rows [0,3) [3,6) [6,7) (39, 39, 13 elements), b1 [0,3)
// [3,5) (3, 2), w2 (12), g (1): seven units of unequal size, so shards are uneven and padded and some
// ranks own nothing at dp 8.
// Each rank's gradient is its own deterministic draw. The reference, computed locally on every rank, is
// the single-process optimizer (om::AdamW, or for OrthoAdam the same optimizer over a LocalComm) given
// the mean gradient, summed in f32 in rank order and multiplied by 1/dp: exactly the arithmetic of
// MpiComm's reduce_scatter and the optimizer (mpi_comm.h); the Adam kernels are element-wise and each
// unit is rotated by one thread, so parameters are compared bit for bit.
// Only EXPECTs on values (an ASSERT on one rank would strand the others in a collective).
#include "optim/distributed_optimizer.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "kernels/check/host_tensor.h"
#include "kernels/check/tolerance.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "parallel/local_comm.h"
#include "parallel/mpi_comm.h"
#include "parallel/process_groups.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

constexpr uint64_t kSeed = 1234;
constexpr int kSteps = 5;

struct ParamSpec {
  const char* name;
  Shape shape;
  bool weight_decay;
};

const std::vector<ParamSpec>& specs() {
  static const std::vector<ParamSpec> s = {
      {"w1", Shape{7, 13}, true}, {"b1", Shape{5}, false}, {"w2", Shape{3, 4}, true}, {"g", Shape{1}, false}};
  return s;
}

// Values and gradients in two arenas with the model's layout (256-byte gaps between tensors).
struct TestModel {
  Arena values, grads;
  std::vector<Parameter> params;
  int64_t numel = 0;
};

// Initial values depend on `tag` only (one tag per model replica), never on the rank.
TestModel make_model(const std::string& tag, const std::vector<ParamSpec>& layout = specs()) {
  size_t bytes = 0;
  for (const ParamSpec& s : layout) bytes += Arena::BytesFor(DType::kF32, s.shape);
  TestModel m;
  m.values = Arena(Device::Cpu(), bytes, "test values");
  m.grads = Arena(Device::Cpu(), bytes, "test grads");
  for (const ParamSpec& s : layout) {
    Parameter p;
    p.name = s.name;
    p.value = m.values.Carve(s.name, DType::kF32, s.shape);
    p.grad = m.grads.Carve(std::string(s.name) + ".grad", DType::kF32, s.shape);
    p.weight_decay = s.weight_decay;
    p.blocks = {whole_tensor_block(s.name, s.shape)};
    Rng(kSeed, "init/" + tag + "/" + s.name).FillNormal(p.value.data_as<float>(), p.value.numel(), 0, 0.0f, 0.5f);
    m.numel += p.value.numel();
    m.params.push_back(p);
  }
  return m;
}

// Replica `replica`'s gradient of parameter i at `step`: distinct per replica, step and parameter.
void fill_grad(const std::string& tag, int replica, int step, size_t i, float* out) {
  const ParamSpec& s = specs()[i];
  const std::string stream = "grad/" + tag + "/" + s.name + "/step" + std::to_string(step) + "/replica" +
                             std::to_string(replica);
  Rng(kSeed, stream).FillNormal(out, s.shape.numel(), 0, 0.0f, 1.0f + static_cast<float>(replica));
}

void fill_own_grads(TestModel& m, const std::string& tag, int replica, int step) {
  for (size_t i = 0; i < m.params.size(); ++i) fill_grad(tag, replica, step, i, m.params[i].grad.data_as<float>());
}

// The mean over `replicas` with the reduce_scatter's rounding: ((g_0 + g_1) + g_2) + … in f32, × 1/n.
void fill_mean_grads(TestModel& m, const std::string& tag, int replicas, int step) {
  const float inv = 1.0f / static_cast<float>(replicas);
  for (size_t i = 0; i < m.params.size(); ++i) {
    float* acc = m.params[i].grad.data_as<float>();
    const int64_t n = m.params[i].grad.numel();
    fill_grad(tag, 0, step, i, acc);
    std::vector<float> g(static_cast<size_t>(n));
    for (int r = 1; r < replicas; ++r) {
      fill_grad(tag, r, step, i, g.data());
      for (int64_t k = 0; k < n; ++k) acc[k] = acc[k] + g[static_cast<size_t>(k)];
    }
    for (int64_t k = 0; k < n; ++k) acc[k] *= inv;
  }
}

int64_t count_bit_mismatches(const float* a, const float* b, int64_t n, const std::string& what) {
  int64_t bad = 0;
  for (int64_t k = 0; k < n; ++k) {
    if (std::memcmp(&a[k], &b[k], sizeof(float)) != 0) {
      if (bad < 3) ADD_FAILURE() << what << ": element " << k << " is " << a[k] << ", expected " << b[k];
      ++bad;
    }
  }
  return bad;
}

void expect_params_bitwise_equal(const TestModel& got, const TestModel& want, const std::string& what) {
  for (size_t i = 0; i < got.params.size(); ++i) {
    const Parameter& p = got.params[i];
    EXPECT_EQ(count_bit_mismatches(p.value.data_as<const float>(), want.params[i].value.data_as<const float>(),
                                   p.value.numel(), what + " " + p.name),
              0);
  }
}

// Every rank of `comm` holds the bits of rank 0 (broadcast rank 0's copy, compare).
void expect_identical_across_ranks(Comm& comm, const TestModel& m) {
  for (const Parameter& p : m.params) {
    HostTensor root("root_copy", DType::kF32, p.value.shape);
    std::memcpy(root.data<float>(), p.value.data, p.value.nbytes());
    comm.broadcast(root.view(), 0);
    EXPECT_EQ(count_bit_mismatches(p.value.data_as<const float>(), root.data<float>(), p.value.numel(),
                                   "rank " + std::to_string(comm.rank()) + " vs rank 0: " + p.name),
              0);
  }
}

// The norm is Σ g² in f64 summed in another order (per shard, then across ranks) than
// global_grad_norm (per tensor, in parameter order), on identical f32 gradients. Each f64 sum of N
// terms is within N·eps64·Σg² of the exact one, and sqrt halves relative errors, so
// |norm − ref| ≤ N·eps64·norm: rule 2 with reduce_len = N and abs_sum = the norm.
Tolerance norm_tolerance(int64_t numel, double ref_norm) { return for_reduction(DType::kF64, numel, ref_norm); }

void expect_near_tol(double got, double want, const Tolerance& tol, const std::string& what) {
  EXPECT_LE(std::fabs(got - want), tol.atol + tol.rtol * std::fabs(want))
      << what << ": " << got << " vs " << want << " (" << tol.rule << ")";
}

constexpr int64_t kBlock = 3;

OptimizerConfig test_config(OptimizerKind kind = OptimizerKind::kAdamW) {
  OptimizerConfig c;
  c.adam.beta1 = 0.9f;
  c.adam.beta2 = 0.95f;
  c.adam.eps = 1e-8f;
  c.adam.weight_decay = 0.1f;
  c.kind = kind;
  c.block = kBlock;
  c.seed = kSeed;
  return c;
}

// The single-process reference: AdamW itself, or OrthoAdam over a LocalComm (dp = 1).
struct Reference {
  LocalComm local{"dp"};
  std::unique_ptr<AdamW> adamw;
  std::unique_ptr<DistributedOptimizer> ortho;
  Reference(TestModel& m, const OptimizerConfig& c) {
    if (c.kind == OptimizerKind::kAdamW) {
      adamw = std::make_unique<AdamW>(m.params, c.adam);
    } else {
      ortho = std::make_unique<DistributedOptimizer>(m.params, c, local);
    }
  }
  void Step(float lr, float coef = 1.0f) {
    if (adamw) return adamw->Step(lr, coef);
    ortho->ReduceGradients();
    ortho->Step(lr, coef);
  }
};

float lr_at(int step) { return 1e-2f / static_cast<float>(step + 1); }

// kSteps of ZeRO-1 over `dp` against the local single-process reference; `tag` names the replica set.
// bucket > 0: --overlap-grad-reduce with buckets of that many elements, every parameter reported final
// (GradientsReady) one by one from the last, as the backward does, before ReduceGradients.
void run_equivalence(Comm& dp, const std::string& tag, OptimizerKind kind, int64_t bucket = 0) {
  TestModel dist = make_model(tag), ref = make_model(tag), initial = make_model(tag);
  OptimizerConfig config = test_config(kind);
  config.grad_bucket = bucket;
  DistributedOptimizer opt(dist.params, config, dp);
  EXPECT_EQ(opt.overlaps(), bucket > 0 && dp.size() > 1);
  Reference ref_opt(ref, test_config(kind));
  for (int k = 0; k < kSteps; ++k) {
    fill_own_grads(dist, tag, dp.rank(), k);
    fill_mean_grads(ref, tag, dp.size(), k);
    for (size_t i = dist.params.size(); i-- > 0;) opt.GradientsReady(i, 1);
    const double norm = opt.ReduceGradients();
    const double ref_norm = global_grad_norm(ref.params);
    expect_near_tol(norm, ref_norm, norm_tolerance(dist.numel, ref_norm), "grad norm at step " + std::to_string(k));
    EXPECT_EQ(opt.grad_norm(), norm);
    opt.Step(lr_at(k));
    ref_opt.Step(lr_at(k));
    EXPECT_EQ(opt.step(), k + 1);
    expect_params_bitwise_equal(dist, ref, tag + " step " + std::to_string(k + 1));
  }
  // The run moved every parameter (a no-op optimizer would otherwise pass against itself).
  for (size_t i = 0; i < dist.params.size(); ++i) {
    const float* now = dist.params[i].value.data_as<const float>();
    const float* then = initial.params[i].value.data_as<const float>();
    for (int64_t k = 0; k < dist.params[i].value.numel(); ++k) EXPECT_NE(now[k], then[k]) << dist.params[i].name;
  }
  expect_identical_across_ranks(dp, dist);
}

TEST(DistributedOptimizer, MatchesSingleProcessAdamWOnMeanGradientBitwise) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  run_equivalence(dp, "world", OptimizerKind::kAdamW);
}

TEST(DistributedOptimizer, OrthoAdamMatchesSingleProcessOrthoAdamBitwise) {
  // Whichever rank owns a unit rotates it with the same matrices and the same single-threaded GEMMs.
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  run_equivalence(dp, "world-ortho", OptimizerKind::kOrthoAdam);
}

TEST(DistributedOptimizer, OverlappedBucketsMatchSingleProcessBitwise) {
  // Buckets of >= 10 elements: {g, w2} and {b1, w1}; of 1: every parameter alone. The units are shared
  // out per bucket, the reduced shard is its own buffer, and the update is the same bits.
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  for (int64_t bucket : {int64_t{10}, int64_t{1}}) {
    run_equivalence(dp, "world-b" + std::to_string(bucket), OptimizerKind::kAdamW, bucket);
    run_equivalence(dp, "world-ortho-b" + std::to_string(bucket), OptimizerKind::kOrthoAdam, bucket);
  }
}

TEST(DistributedOptimizer, OverlapReducesABucketOnceAllItsParametersAreReportedInBucketOrder) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  TestModel m = make_model("order");
  OptimizerConfig config = test_config();
  config.grad_bucket = 10;  // bucket 0 = parameters [2, 4) (w2, g), bucket 1 = [0, 2) (w1, b1)
  DistributedOptimizer opt(m.params, config, dp);
  ASSERT_EQ(opt.buckets(), 2u);
  const int n = dp.size();
  for (int step = 0; step < 2; ++step) {
    fill_own_grads(m, "order", dp.rank(), step);
    dp.reset_bytes();
    opt.GradientsReady(0, 1);  // w1: its bucket comes second, and b1 is missing
    EXPECT_EQ(dp.bytes_sent(), 0u);
    opt.GradientsReady(3, 1);  // g: w2 is missing
    EXPECT_EQ(dp.bytes_sent(), 0u);
    opt.GradientsReady(2, 1);  // bucket 0 complete: reduced (w2 and g, padded per rank to S_0)
    const uint64_t first = dp.bytes_sent();
    EXPECT_EQ(first, ring_reduce_scatter_bytes(4 * static_cast<uint64_t>(n * opt.plan().bucket_size[0]), n));
    EXPECT_TRUE(dp.deferred_pending());  // not joined yet (MpiComm: complete already, but the contract holds)
    opt.GradientsReady(1, 1);  // bucket 1 complete
    const uint64_t both =
        first + ring_reduce_scatter_bytes(4 * static_cast<uint64_t>(n * opt.plan().bucket_size[1]), n);
    EXPECT_EQ(dp.bytes_sent(), both);
    opt.ReduceGradients();  // nothing left to reduce: the join, then the norm's all_reduce only
    EXPECT_FALSE(dp.deferred_pending());
    EXPECT_EQ(dp.bytes_sent(), both + ring_all_reduce_bytes(2 * sizeof(double), n));
    opt.Step(1e-3f);
    EXPECT_EQ(opt.last_step_bytes_sent(), dp.bytes_sent());  // the buckets issued before ReduceGradients count
  }
}

// The bf16 model's layout: w1 and w2 bf16 values (matrices), b1 and g f32 (gains); every gradient f32.
// Initial values: the f32 draws of make_model rounded to bf16 (so both dtypes start from one model).
TestModel make_mixed_model(const std::string& tag) {
  const TestModel f32 = make_model(tag);
  const auto dtype_of = [](const Parameter& p) { return p.value.shape.ndim == 2 ? DType::kBF16 : DType::kF32; };
  size_t value_bytes = 0, grad_bytes = 0;
  for (const Parameter& p : f32.params) {
    value_bytes += Arena::BytesFor(dtype_of(p), p.value.shape);
    grad_bytes += Arena::BytesFor(DType::kF32, p.value.shape);
  }
  TestModel m;
  m.values = Arena(Device::Cpu(), value_bytes, "mixed values");
  m.grads = Arena(Device::Cpu(), grad_bytes, "mixed grads");
  for (const Parameter& src : f32.params) {
    Parameter p = src;
    const DType dt = dtype_of(src);
    p.value = m.values.Carve(src.name, dt, src.value.shape);
    p.grad = m.grads.Carve(src.name + ".grad", DType::kF32, src.value.shape);
    for (int64_t k = 0; k < src.value.numel(); ++k) {
      const float x = src.value.data_as<const float>()[k];
      if (dt == DType::kBF16) {
        static_cast<uint16_t*>(p.value.data)[k] = float_to_bf16_bits(x);
      } else {
        p.value.data_as<float>()[k] = x;
      }
    }
    m.numel += p.value.numel();
    m.params.push_back(p);
  }
  return m;
}

int64_t count_byte_mismatches(const TestModel& got, const TestModel& want) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.params.size(); ++i) {
    const Parameter& p = got.params[i];
    if (std::memcmp(p.value.data, want.params[i].value.data, p.value.nbytes()) != 0) {
      ADD_FAILURE() << p.name << " (" << dtype_name(p.value.dtype) << ") differs from the dp = 1 optimizer";
      ++bad;
    }
  }
  return bad;
}

TEST(DistributedOptimizer, Bf16ValuesGatherInTheirOwnDtypesBitwiseAsDpOfOne) {
  // optim/distributed_optimizer.h Precision: at dp > 1 with bf16 values the weights are all-gathered in
  // their own dtypes (bf16 rounded on the owning rank) instead of as f32 and rounded after; rounding
  // is element-wise, so every value's bits equal those of the dp = 1 optimizer on the mean gradient
  // (which casts its f32 master directly), for AdamW and OrthoAdam, and the all_gather sends
  // ring_all_gather_bytes(dp·SB) with SB the PublishLayout's shard bytes.
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  const int n = dp.size();
  for (OptimizerKind kind : {OptimizerKind::kAdamW, OptimizerKind::kOrthoAdam}) {
    const std::string tag = kind == OptimizerKind::kAdamW ? "mixed" : "mixed-ortho";
    TestModel dist = make_mixed_model(tag), ref = make_mixed_model(tag), initial = make_mixed_model(tag);
    LocalComm local("dp");
    DistributedOptimizer opt(dist.params, test_config(kind), dp), ref_opt(ref.params, test_config(kind), local);
    const uint64_t S = static_cast<uint64_t>(opt.shard_size()), SB = static_cast<uint64_t>(opt.publish_shard_bytes());
    EXPECT_GT(SB, 0u) << "bf16 values at dp > 1 gather in their own dtypes";
    EXPECT_EQ(ref_opt.publish_shard_bytes(), 0) << "dp = 1 publishes from the master";
    const uint64_t expected = ring_reduce_scatter_bytes(n * S * 4, n) + ring_all_gather_bytes(n * SB, n) +
                              ring_all_reduce_bytes(16, n);
    for (int k = 0; k < kSteps; ++k) {
      fill_own_grads(dist, tag, dp.rank(), k);
      fill_mean_grads(ref, tag, n, k);
      opt.ReduceGradients();
      ref_opt.ReduceGradients();
      opt.Step(lr_at(k));
      ref_opt.Step(lr_at(k));
      EXPECT_EQ(opt.last_step_bytes_sent(), expected) << tag << " step " << k;
      EXPECT_EQ(count_byte_mismatches(dist, ref), 0) << tag << " step " << k + 1;
    }
    for (size_t i = 0; i < dist.params.size(); ++i) {
      EXPECT_NE(std::memcmp(dist.params[i].value.data, initial.params[i].value.data, dist.params[i].value.nbytes()), 0)
          << tag << ": " << dist.params[i].name << " never moved";
    }
  }
}

TEST(DistributedOptimizer, DpOfOneIsAdamW) {
  // MPI_COMM_SELF: one shard holds everything, no padding, nothing sent; the mean is the rank's own
  // gradient (× 1/1 is exact).
  MpiComm self(MPI_COMM_SELF, "dp", CommOwnership::kBorrowed);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  TestModel dist = make_model("self"), ref = make_model("self");
  DistributedOptimizer opt(dist.params, test_config(), self);
  AdamW ref_opt(ref.params, test_config().adam);
  EXPECT_EQ(opt.padded_numel(), dist.numel);
  for (int k = 0; k < kSteps; ++k) {
    fill_own_grads(dist, "self", rank, k);
    fill_own_grads(ref, "self", rank, k);
    opt.ReduceGradients();
    opt.Step(lr_at(k));
    ref_opt.Step(lr_at(k));
    EXPECT_EQ(opt.last_step_bytes_sent(), 0u);
  }
  expect_params_bitwise_equal(dist, ref, "dp=1");
}

// Parameters whose f32 gradients fill whole 256-byte blocks (64 floats; the last one need not): carved
// back to back, the gradients lie as a dp = 1 shard would.
TestModel make_blocked_model(const std::string& tag) {
  const std::vector<ParamSpec> blocked = {
      {"w1", Shape{8, 16}, true}, {"b1", Shape{64}, false}, {"w2", Shape{4, 48}, true}, {"g", Shape{3}, false}};
  return make_model(tag, blocked);
}

TEST(DistributedOptimizer, DpOfOneStepsGradientsThatLieAsTheShardInPlace) {
  // dp = 1 AdamW over gradients laid out as its shard: no flat gradient buffer (4 bytes per parameter
  // less), no copy, and the bits of the copy and of AdamW. One gradient moved off its place brings the
  // copy back; OrthoAdam, which rotates its shard in place, always keeps it.
  LocalComm local("dp");
  TestModel in_place = make_blocked_model("inplace"), copied = make_blocked_model("inplace"),
            ref = make_blocked_model("inplace");
  Buffer elsewhere = Buffer::Allocate(Device::Cpu(), copied.params[1].grad.nbytes(), "moved grad");
  copied.params[1].grad.data = elsewhere.data();
  size_t live = Buffer::live_bytes(DeviceKind::kCpu);
  DistributedOptimizer a(in_place.params, test_config(), local);
  const size_t in_place_bytes = Buffer::live_bytes(DeviceKind::kCpu) - live;
  live = Buffer::live_bytes(DeviceKind::kCpu);
  DistributedOptimizer b(copied.params, test_config(), local);
  const size_t copy_bytes = Buffer::live_bytes(DeviceKind::kCpu) - live;
  EXPECT_TRUE(a.gradients_in_place());
  EXPECT_EQ(a.grad_shard().data, in_place.params[0].grad.data);
  EXPECT_FALSE(b.gradients_in_place());
  EXPECT_EQ(copy_bytes, in_place_bytes + 4 * static_cast<size_t>(a.shard_size()));
  EXPECT_EQ(a.buffer_bytes(), 12 * static_cast<size_t>(a.shard_size()));  // master, m, v: no flat buffer at all
  EXPECT_EQ(b.buffer_bytes(), 16 * static_cast<size_t>(a.shard_size()));  // and the flat gradient
  AdamW ref_opt(ref.params, test_config().adam);
  for (int k = 0; k < kSteps; ++k) {
    for (TestModel* m : {&in_place, &copied, &ref}) {
      for (const Parameter& p : m->params) {
        Rng(kSeed, "grad/inplace/" + std::to_string(k) + "/" + p.name)
            .FillNormal(p.grad.data_as<float>(), p.grad.numel(), 0, 0.0f, 1.0f);
      }
    }
    const double norm = a.ReduceGradients();
    EXPECT_EQ(norm, b.ReduceGradients());
    EXPECT_GT(norm, 0.0);
    a.Step(lr_at(k));
    b.Step(lr_at(k));
    ref_opt.Step(lr_at(k));
  }
  expect_params_bitwise_equal(in_place, ref, "dp=1 in place vs AdamW");
  expect_params_bitwise_equal(copied, ref, "dp=1 copied vs AdamW");

  TestModel rotated = make_blocked_model("inplace");
  const DistributedOptimizer ortho(rotated.params, test_config(OptimizerKind::kOrthoAdam), local);
  EXPECT_FALSE(ortho.gradients_in_place());
}

TEST(DistributedOptimizer, IndependentDpGroupsOfATpLayout) {
  // tp = 2: two dp groups step concurrently, each over its own tp-local "replica" (different values
  // and gradients per tp rank); each must match its own reference. At 2 ranks dp = 1.
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  StatusOr<ParallelDims> dims = ParallelDims::Make(2, -1, world);
  ASSERT_TRUE(dims.ok()) << dims.status().ToString();  // same on every rank
  StatusOr<ProcessGroups> groups = ProcessGroups::Create(*dims);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  run_equivalence(groups->dp(), "tp" + std::to_string(groups->tp_rank()), OptimizerKind::kAdamW);
  run_equivalence(groups->dp(), "ortho-tp" + std::to_string(groups->tp_rank()), OptimizerKind::kOrthoAdam);
}

TEST(DistributedOptimizer, TpNormCountsEveryLogicalElementOnce) {
  // tp = 2 with the tp Comm: b1 and g are replicated over tp (identical gradients on both tp ranks,
  // like the model's norm gains), w1 and w2 are tp-local (different per tp rank). The world's norm²
  // is Σ_t ‖mean_d g_local(t, d)‖² + ‖mean_d g_replicated(d)‖²: replicated ones counted once.
  // Integer gradients in [-3, 3]: the dp means (sum of ≤ 4 integers × 1/dp, dp a power of two) and
  // every square and sum are exact in f32/f64, so the norm must match bit for bit.
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  StatusOr<ParallelDims> dims = ParallelDims::Make(2, -1, world);
  ASSERT_TRUE(dims.ok()) << dims.status().ToString();  // same on every rank
  StatusOr<ProcessGroups> groups = ProcessGroups::Create(*dims);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  const int tp_rank = groups->tp_rank(), dp_rank = groups->dp_rank(), dp = static_cast<int>(dims->dp);
  const std::vector<bool> replicated = {false, true, false, true};  // w1, b1, w2, g
  auto grad = [&](size_t i, int t, int d, int64_t k) {
    const Rng rng(kSeed, std::string("tpnorm/") + specs()[i].name + "/tp" + std::to_string(replicated[i] ? 0 : t) +
                             "/dp" + std::to_string(d));
    return std::floor(-3.0 + 7.0 * rng.UniformDouble(static_cast<uint64_t>(k)));
  };
  TestModel m = make_model("tpnorm");
  for (size_t i = 0; i < m.params.size(); ++i) {
    float* g = m.params[i].grad.data_as<float>();
    for (int64_t k = 0; k < m.params[i].grad.numel(); ++k) g[k] = static_cast<float>(grad(i, tp_rank, dp_rank, k));
  }
  DistributedOptimizer opt(m.params, test_config(), groups->dp(), &groups->tp(), replicated);
  double want_sq = 0.0;
  for (size_t i = 0; i < m.params.size(); ++i) {
    for (int t = 0; t < (replicated[i] ? 1 : 2); ++t) {
      for (int64_t k = 0; k < m.params[i].grad.numel(); ++k) {
        double sum = 0.0;
        for (int d = 0; d < dp; ++d) sum += grad(i, t, d, k);
        want_sq += (sum / dp) * (sum / dp);
      }
    }
  }
  EXPECT_EQ(opt.ReduceGradients(), std::sqrt(want_sq)) << "tp_rank " << tp_rank << " dp_rank " << dp_rank;
}

TEST(DistributedOptimizer, ClippingMatchesSingleProcessNormAndCoefficient) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  TestModel dist = make_model("clip"), ref = make_model("clip");
  DistributedOptimizer opt(dist.params, test_config(), dp);
  AdamW ref_opt(ref.params, test_config().adam);
  for (int k = 0; k < kSteps; ++k) {
    fill_own_grads(dist, "clip", dp.rank(), k);
    fill_mean_grads(ref, "clip", dp.size(), k);
    const double ref_norm = global_grad_norm(ref.params);
    const float max_norm = static_cast<float>(0.5 * ref_norm);  // below the true norm: clipping is on
    const double norm = opt.ReduceGradients();
    const float coef = clip_coefficient(norm, max_norm);
    const float ref_coef = clip_coefficient(ref_norm, max_norm);
    expect_near_tol(norm, ref_norm, norm_tolerance(dist.numel, ref_norm), "clipped norm");
    EXPECT_LT(coef, 0.51f);
    EXPECT_GT(coef, 0.49f);
    // coef and ref_coef are one f32 rounding each of min(1, max/(norm + 1e-6)) with norms that agree
    // to ~N·eps64: at most one f32 ulp apart, i.e. rule 2 with one term of size coef.
    expect_near_tol(coef, ref_coef, for_reduction(DType::kF32, 1, ref_coef), "clip coefficient");
    // Stepping both with the coefficient the trainer would use keeps the parameters bit-identical.
    opt.Step(lr_at(k), coef);
    ref_opt.Step(lr_at(k), coef);
    expect_params_bitwise_equal(dist, ref, "clipped step " + std::to_string(k + 1));
  }
}

TEST(DistributedOptimizer, ShardsAreWholeUnitsCoveringEveryElementOnceAndBalanced) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  const int n = dp.size(), me = dp.rank();
  TestModel model = make_model("shards");
  DistributedOptimizer opt(model.params, test_config(OptimizerKind::kOrthoAdam), dp);
  const int64_t N = model.numel, S = opt.shard_size();
  const std::vector<OptimizerUnit>& units = opt.units();
  const ShardPlan& plan = opt.plan();

  EXPECT_EQ(units.size(), 7u);
  EXPECT_EQ(opt.numel(), N);
  EXPECT_EQ(opt.padded_numel(), S * n);
  // Balance: the largest shard exceeds the smallest by at most one (the largest) unit.
  int64_t largest_unit = 0;
  for (const OptimizerUnit& u : units) largest_unit = std::max(largest_unit, u.numel());
  const auto [lo, hi] = std::minmax_element(plan.load.begin(), plan.load.end());
  EXPECT_LE(*hi - *lo, largest_unit);
  EXPECT_EQ(S, *hi);

  // Every parameter element lies in exactly one unit of exactly one rank (counted over the world);
  // this rank's units are disjoint, inside [0, S), and the rest of the shard is padding.
  std::vector<int64_t> param_offset;
  int64_t off = 0;
  for (const Parameter& p : model.params) {
    param_offset.push_back(off);
    off += p.value.numel();
  }
  HostTensor count("count", DType::kI32, Shape{N});
  std::vector<int> covered(static_cast<size_t>(S), 0);
  for (size_t u : opt.local_units()) {
    EXPECT_EQ(plan.owner[u], me);
    EXPECT_LE(units[u].rows, kBlock);
    EXPECT_LE(plan.offset[u] + units[u].numel(), S);
    for (int64_t k = 0; k < units[u].numel(); ++k) {
      const int64_t flat = param_offset[units[u].param] + units[u].param_offset() + k;
      count.set(flat, count.get(flat) + 1);
      EXPECT_EQ(covered[static_cast<size_t>(plan.offset[u] + k)]++, 0) << "shard element " << plan.offset[u] + k;
    }
  }
  dp.all_reduce(count.view(), ReduceOp::kSum);
  for (int64_t k = 0; k < N; ++k) EXPECT_EQ(count.get(k), 1.0) << "flat element " << k;

  // Steps with weight decay and non-zero gradients leave the padding of master, m, v and gradient at
  // 0, and the master shard holds the parameters' current values bit for bit.
  for (int k = 0; k < 2; ++k) {
    fill_own_grads(model, "shards", me, k);
    opt.ReduceGradients();
    opt.Step(lr_at(k));
  }
  const float* master = opt.master_shard().data_as<const float>();
  const ConstTensorView views[] = {opt.master_shard(), opt.m_shard(), opt.v_shard(), opt.grad_shard()};
  for (const ConstTensorView& v : views) {
    const float* x = v.data_as<const float>();
    for (int64_t k = 0; k < S; ++k)
      if (covered[static_cast<size_t>(k)] == 0) {
        EXPECT_EQ(x[k], 0.0f) << v.name << " padding element " << k;
      }
  }
  for (size_t u : opt.local_units()) {
    const float* value = model.params[units[u].param].value.data_as<const float>() + units[u].param_offset();
    EXPECT_EQ(count_bit_mismatches(master + plan.offset[u], value, units[u].numel(), "master vs value"), 0);
  }
}

// CheckFinite: a NaN (or an infinity) in one rank's checked tensor makes the norm NaN on every rank, where
// every gradient is finite; the check starts again from zero after each ReduceGradients, so the next
// norm is the finite one, equal to the run without any check (a finite check adds nothing to the norm).
TEST(DistributedOptimizer, OneRanksNonFiniteCheckMakesTheNormNanEverywhere) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  const int n = dp.size();
  TestModel model = make_model("finite"), plain = make_model("finite");
  DistributedOptimizer opt(model.params, test_config(), dp);
  HostTensor losses("batch.losses", DType::kF32, {4, 8});
  losses.Fill(2.5);
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    fill_own_grads(model, "finite", dp.rank(), 0);
    if (dp.rank() == n - 1) losses.set(13, bad);
    opt.CheckFinite(losses.view());
    opt.CheckFinite(losses.view());  // several micro-batches
    EXPECT_TRUE(std::isnan(opt.ReduceGradients())) << "rank " << dp.rank() << ", bad value " << bad;
    losses.set(13, 2.5);
    fill_own_grads(model, "finite", dp.rank(), 0);
    opt.CheckFinite(losses.view());
    const double norm = opt.ReduceGradients();
    DistributedOptimizer unchecked(plain.params, test_config(), dp);
    fill_own_grads(plain, "finite", dp.rank(), 0);
    EXPECT_EQ(norm, unchecked.ReduceGradients()) << "a finite check changed the norm";
    EXPECT_TRUE(std::isfinite(norm));
  }
}

TEST(DistributedOptimizer, BytesPerStepMatchRingFormulas) {
  MpiComm dp(MPI_COMM_WORLD, "dp", CommOwnership::kBorrowed);
  const uint64_t n = static_cast<uint64_t>(dp.size());
  TestModel model = make_model("bytes");
  DistributedOptimizer opt(model.params, test_config(), dp);
  const uint64_t S = static_cast<uint64_t>(opt.shard_size());
  // Per rank (comm.h ring model, B = padded buffer bytes = n·S·4):
  //   reduce_scatter (n−1)/n·B = (n−1)·S·4,  all_gather the same,  the all_reduce of the f64 norm
  //   partial and finiteness check (16 bytes) ⌊2(n−1)·16/n⌋.
  const uint64_t expected = 2 * (n - 1) * S * 4 + (2 * (n - 1) * 16) / n;
  EXPECT_EQ(expected, ring_reduce_scatter_bytes(n * S * 4, static_cast<int>(n)) +
                          ring_all_gather_bytes(n * S * 4, static_cast<int>(n)) +
                          ring_all_reduce_bytes(16, static_cast<int>(n)));
  for (int k = 0; k < 3; ++k) {
    fill_own_grads(model, "bytes", dp.rank(), k);
    const uint64_t before = dp.bytes_sent();
    opt.ReduceGradients();
    opt.Step(lr_at(k));
    EXPECT_EQ(dp.bytes_sent() - before, expected) << "step " << k;
    EXPECT_EQ(opt.last_step_bytes_sent(), expected) << "step " << k;
  }
}

}  // namespace
}  // namespace om
