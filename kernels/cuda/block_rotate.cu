// CUDA block rotation (kernels/block_rotate.h): f32 units only, through cuBLAS batched GEMMs.
// Per unit, the CPU reference's two passes through a scratch t (R, K):
//   kForward:  t = Q_r · x;   x[:, c0:c0+K_b] = t[:, c0:c0+K_b] · q_bᵀ   for each column block b
//   kInverse:  t = Q_rᵀ · x;  x[:, c0:c0+K_b] = t[:, c0:c0+K_b] · q_b
// 2·R²·K + 2·R·Σ K_b² FLOPs per unit and direction. The right product by the block-diagonal Q_c is
// one GEMM per column block, and the scratch is what makes the rotation in place: the second pass
// reads t and writes x.
//
// Batching. Units are grouped by (R, K_b…) (many units share a shape: every layer's copy of a
// weight). Per group, each pass is one cublasGemmBatchedEx call (pointer-array batched, f32 in and
// out, CUBLAS_COMPUTE_32F), the first over the group's units, the second over all (unit, block)
// pairs of one width (a group's equal-width blocks share one call). These are the "strided-batched
// GEMMs" of issue 8 in pointer-array form: the units are separate tensors, not at one constant
// stride, so cublasGemmStridedBatchedEx cannot address them. A group larger than kScratchBytes of
// scratch runs in chunks of whole units (each chunk its own calls), so the scratch stays bounded
// however many layers share a shape.
//
// Column-major view. cuBLAS is column-major; a row-major (r, c) matrix with row stride ld is the
// column-major (c, r) matrix with leading dimension ld, i.e. its transpose. So a row-major
// C = A·B is computed as the column-major Cᵀ = Bᵀ·Aᵀ:
//   pass 1  tᵀ (K, R) = xᵀ · Q_rᵀ (forward) or xᵀ · Q_r (inverse). xᵀ is x's storage (ld K), op N;
//           Q_r's storage reads as Q_rᵀ, so op N gives Q_rᵀ and op T gives Q_r.
//           m = K, n = R, k = R, lda = K, ldb = R, ldc = K.
//   pass 2  yᵀ (K_b, R) = q_b · tᵀ (forward: y = t·q_bᵀ) or q_bᵀ · tᵀ (inverse: y = t·q_b). q_b's
//           storage reads as q_bᵀ, so op T gives q_b and op N gives q_bᵀ; tᵀ is the block's storage
//           at t + c0 with ld K, op N; yᵀ is written at x + c0 with ld K.
//           m = K_b, n = R, k = K_b, lda = K_b, ldb = K, ldc = K.
//
// Precision. kF32: CUBLAS_COMPUTE_32F with the handle's math mode set to CUBLAS_DEFAULT_MATH: true fp32
// products and sums (no TF32, which the default math mode never uses for 32F compute), so the CPU
// reference's rule-2 bound applies (tests/cuda/block_rotate_test.cc). kTF32: CUBLAS_COMPUTE_32F_FAST_TF32
// (the compute type asks for tensor cores by itself, whatever the math mode): operands rounded to TF32,
// fp32 accumulation; the test's bound adds 2·2^-10 relative per pass.
// Determinism. Same inputs, same batch (units and their order) → same bits: cuBLAS GEMMs are
// deterministic for a fixed problem, GPU and library, atomics are disabled on the handle, and this
// file has no atomics. Not promised: bit-equality with the CPU (different summation orders) or
// across batchings (cuBLAS may pick a different kernel, e.g. split-K, for a different batch count).
//
// Memory and streams. The optimizer rotates the same units every step, so a call's whole plan — the
// scratch (the largest chunk's Σ R·K floats) and both directions' device pointer arrays — is built
// once per set of units and kept (a small per-thread cache keyed by every unit's pointers and shapes:
// a hit is exactly the plan a rebuild would make). A call then only sets the handle's stream and
// issues its GEMMs: no allocation, no upload, no host wait. The first call of a set allocates and
// uploads synchronously; an evicted plan's Buffers are freed (cudaFree waits for the device, so no
// GEMM still reads them). One cuBLAS handle per thread and device, made on first use and kept for the
// process; every call of this project runs on one stream, so the handle's workspace is never used by
// two streams at once (cuBLAS's reproducibility condition for a shared handle).
// Arguments were validated by kernels/block_rotate.cc (shapes, dtypes, devices).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "kernels/block_rotate.h"
#include "kernels/cuda/cuda_common.cuh"

namespace om::cuda {
namespace {

#define OM_CUBLAS_CHECK(expr)                                                                                   \
  do {                                                                                                          \
    const cublasStatus_t om_st = (expr);                                                                        \
    OM_CHECK(om_st == CUBLAS_STATUS_SUCCESS, "cuBLAS call failed (%s): %s", cublasGetStatusString(om_st), #expr); \
  } while (0)

constexpr const char* kOp = "block_rotate";
constexpr int kMaxDevices = 64;
// Scratch cap per chunk: 256 MiB is sixteen (1024, 4096) f32 units, enough GEMMs per call to fill
// an H200 many times over, and small next to the optimizer state a step already holds.
constexpr size_t kScratchBytes = size_t{256} << 20;

// This thread's handle for the current device: fp32 math (no TF32), no atomics, host scalars.
cublasHandle_t handle() {
  int device = 0;
  OM_CUDA_CHECK(cudaGetDevice(&device));
  OM_CHECK(device >= 0 && device < kMaxDevices, "%s (cuda): device index %d out of range", kOp, device);
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  cublasHandle_t& h = handles[device];
  if (h == nullptr) {
    OM_CUBLAS_CHECK(cublasCreate(&h));
    OM_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    OM_CUBLAS_CHECK(cublasSetAtomicsMode(h, CUBLAS_ATOMICS_NOT_ALLOWED));
    OM_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  }
  return h;
}

int checked_int(int64_t v, const RotationUnit& u) {
  OM_CHECK(v <= INT_MAX, "%s (cuda): unit '%s' %s has a dimension over cuBLAS's int range", kOp, u.x.name,
           u.x.shape.ToString().c_str());
  return static_cast<int>(v);
}

// One cublasGemmBatchedEx call: C[i] = op(A[i])·op(B[i]) (column-major) for i < count, with the
// pointer arrays A, B, C at table[first], table[first + count], table[first + 2·count].
struct BatchedGemm {
  cublasOperation_t op_a, op_b;
  int m, n, k, lda, ldb, ldc;
  int count;
  size_t first;
};

// The batched calls of one block_rotate call, in issue order, and their host pointer table.
struct Plan {
  std::vector<BatchedGemm> gemms;
  std::vector<const void*> table;

  void add(BatchedGemm g, const std::vector<const void*>& a, const std::vector<const void*>& b,
           const std::vector<const void*>& c) {
    OM_CHECK(a.size() <= INT_MAX, "%s (cuda): %zu GEMMs in one batch exceed cuBLAS's int range", kOp, a.size());
    g.count = static_cast<int>(a.size());
    g.first = table.size();
    table.insert(table.end(), a.begin(), a.end());
    table.insert(table.end(), b.begin(), b.end());
    table.insert(table.end(), c.begin(), c.end());
    gemms.push_back(g);
  }
};

// Units of one shape (R, K_b…) that share one scratch: unit i uses t_i = scratch + i·R·K.
using Chunk = std::vector<const RotationUnit*>;

// Groups the non-empty units by shape (R, K_b…) in a fixed order (std::map on the key) and splits
// each group into chunks of at most kScratchBytes of scratch (at least one unit each).
std::vector<Chunk> make_chunks(std::span<const RotationUnit> units) {
  std::map<std::vector<int64_t>, Chunk> groups;
  for (const RotationUnit& u : units) {
    if (u.x.numel() == 0) continue;  // R = 0 or K = 0: nothing to rotate
    std::vector<int64_t> key = {u.x.dim(0)};
    for (const ConstTensorView& q : u.q_c) key.push_back(q.dim(0));
    groups[key].push_back(&u);
  }
  std::vector<Chunk> chunks;
  for (const auto& [key, members] : groups) {
    const size_t unit_bytes = static_cast<size_t>(members.front()->x.numel()) * sizeof(float);
    const size_t per_chunk = std::max<size_t>(1, kScratchBytes / unit_bytes);
    for (size_t begin = 0; begin < members.size(); begin += per_chunk) {
      const size_t end = std::min(members.size(), begin + per_chunk);
      chunks.emplace_back(members.begin() + static_cast<ptrdiff_t>(begin), members.begin() + static_cast<ptrdiff_t>(end));
    }
  }
  return chunks;
}

size_t chunk_floats(const Chunk& chunk) { return chunk.size() * static_cast<size_t>(chunk.front()->x.numel()); }

// The two passes over one chunk (operands and leading dimensions derived in the header comment).
void plan_chunk(Plan& plan, const Chunk& chunk, float* scratch, bool forward) {
  const RotationUnit& u0 = *chunk.front();
  const int R = checked_int(u0.x.dim(0), u0), K = checked_int(u0.x.dim(1), u0);
  const size_t unit_floats = static_cast<size_t>(R) * static_cast<size_t>(K);

  // Pass 1: tᵀ = xᵀ · Q_rᵀ (forward) or xᵀ · Q_r (inverse).
  std::vector<const void*> a, b, c;
  for (size_t i = 0; i < chunk.size(); ++i) {
    a.push_back(chunk[i]->x.data);
    b.push_back(chunk[i]->q_r.data);
    c.push_back(scratch + i * unit_floats);
  }
  plan.add({CUBLAS_OP_N, forward ? CUBLAS_OP_N : CUBLAS_OP_T, K, R, R, K, R, K, 0, 0}, a, b, c);

  // Pass 2: yᵀ = q_b · tᵀ (forward) or q_bᵀ · tᵀ (inverse), one call per distinct width K_b over
  // every (unit, block) pair of that width, in (unit, block) order.
  const size_t nblocks = u0.q_c.size();
  std::vector<bool> done(nblocks, false);
  for (size_t b0 = 0; b0 < nblocks; ++b0) {
    if (done[b0]) continue;
    const int64_t width = u0.q_c[b0].dim(0);
    for (size_t bb = b0; bb < nblocks; ++bb) done[bb] = done[bb] || u0.q_c[bb].dim(0) == width;
    if (width == 0) continue;  // empty blocks: nothing to write
    const int kb = checked_int(width, u0);
    a.clear();
    b.clear();
    c.clear();
    for (size_t i = 0; i < chunk.size(); ++i) {
      int64_t c0 = 0;
      for (const ConstTensorView& q : chunk[i]->q_c) {
        if (q.dim(0) == width) {
          a.push_back(q.data);
          b.push_back(scratch + i * unit_floats + static_cast<size_t>(c0));
          c.push_back(chunk[i]->x.data_as<float>() + c0);
        }
        c0 += q.dim(0);
      }
    }
    plan.add({forward ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, kb, R, kb, kb, K, K, 0, 0}, a, b, c);
  }
}

// A set of units' plan for both directions, on its device: the scratch and one pointer table holding
// the forward GEMMs' arrays then the inverse ones' (each Plan's `first` indexes the whole table).
struct CachedRotation {
  std::vector<uintptr_t> key;  // units_key
  Buffer scratch, table;
  Plan forward, inverse;
};

constexpr size_t kCachedRotations = 4;  // the optimizer needs one; tests rotate a few sets

// Every unit's x, q_r and q_c pointers and shapes, in order: equal keys give equal plans.
std::vector<uintptr_t> units_key(std::span<const RotationUnit> units) {
  std::vector<uintptr_t> key;
  for (const RotationUnit& u : units) {
    key.insert(key.end(), {reinterpret_cast<uintptr_t>(u.x.data), static_cast<uintptr_t>(u.x.dim(0)),
                           static_cast<uintptr_t>(u.x.dim(1)), reinterpret_cast<uintptr_t>(u.q_r.data),
                           static_cast<uintptr_t>(u.x.device.index), u.q_c.size()});
    for (const ConstTensorView& q : u.q_c) {
      key.insert(key.end(), {reinterpret_cast<uintptr_t>(q.data), static_cast<uintptr_t>(q.dim(0))});
    }
  }
  return key;
}

// The cached plan of `units` (built, uploaded and cached on a miss; the least recently used of a full
// cache is dropped); nullptr when every unit is empty (nothing to rotate).
const CachedRotation* cached_rotation(std::span<const RotationUnit> units) {
  // Least recently used first. Never destroyed (like the cuBLAS handles): freeing device memory after
  // the CUDA runtime has shut down at exit would only print errors.
  thread_local auto& cache = *new std::vector<std::unique_ptr<CachedRotation>>();
  std::vector<uintptr_t> key = units_key(units);
  for (size_t i = 0; i < cache.size(); ++i) {
    if (cache[i]->key != key) continue;
    std::rotate(cache.begin() + static_cast<ptrdiff_t>(i), cache.begin() + static_cast<ptrdiff_t>(i) + 1, cache.end());
    return cache.back().get();
  }
  const std::vector<Chunk> chunks = make_chunks(units);
  if (chunks.empty()) return nullptr;
  auto entry = std::make_unique<CachedRotation>();
  entry->key = std::move(key);
  size_t scratch_floats = 0;  // the largest chunk's Σ R·K; chunks run one after another on the stream
  for (const Chunk& chunk : chunks) scratch_floats = std::max(scratch_floats, chunk_floats(chunk));
  const Device device = units.front().x.device;
  entry->scratch = Buffer::Allocate(device, scratch_floats * sizeof(float), "block_rotate.scratch");
  float* scratch = static_cast<float*>(entry->scratch.data());
  for (const Chunk& chunk : chunks) plan_chunk(entry->forward, chunk, scratch, /*forward=*/true);
  for (const Chunk& chunk : chunks) plan_chunk(entry->inverse, chunk, scratch, /*forward=*/false);
  const size_t offset = entry->forward.table.size();
  for (BatchedGemm& g : entry->inverse.gemms) g.first += offset;
  std::vector<const void*> table = entry->forward.table;
  table.insert(table.end(), entry->inverse.table.begin(), entry->inverse.table.end());
  entry->table = Buffer::Allocate(device, table.size() * sizeof(void*), "block_rotate.pointer_arrays");
  copy_bytes(entry->table.data(), device, table.data(), Device::Cpu(), table.size() * sizeof(void*));
  if (cache.size() == kCachedRotations) cache.erase(cache.begin());
  cache.push_back(std::move(entry));
  return cache.back().get();
}

}  // namespace

void block_rotate(std::span<const RotationUnit> units, RotateDirection direction, RotatePrecision precision,
                  Stream stream) {
  for (const RotationUnit& u : units) {
    if (u.x.dtype != DType::kF32) unsupported_dtype(kOp, u.x, "units (the CUDA kernel takes f32 only)");
  }
  const CachedRotation* cached = cached_rotation(units);
  if (cached == nullptr) return;
  const Plan& plan = direction == RotateDirection::kForward ? cached->forward : cached->inverse;
  const cudaStream_t s = to_cuda_stream(stream);
  OM_CUDA_CHECK(cudaSetDevice(units.front().x.device.index));
  cublasHandle_t h = handle();  // for the units' device, made current above
  OM_CUBLAS_CHECK(cublasSetStream(h, s));
  const float alpha = 1.0f, beta = 0.0f;  // beta = 0: C is written, never read (t starts uninitialised)
  const cublasComputeType_t compute =
      precision == RotatePrecision::kTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  void* const* dev_table = static_cast<void* const*>(cached->table.data());
  for (const BatchedGemm& g : plan.gemms) {
    void* const* A = dev_table + g.first;
    void* const* B = A + g.count;
    void* const* C = B + g.count;
    OM_CUBLAS_CHECK(cublasGemmBatchedEx(h, g.op_a, g.op_b, g.m, g.n, g.k, &alpha, A, CUDA_R_32F, g.lda, B,
                                        CUDA_R_32F, g.ldb, &beta, C, CUDA_R_32F, g.ldc, g.count, compute,
                                        CUBLAS_GEMM_DEFAULT));
    if (sync_debug()) OM_CUDA_CHECK(cudaStreamSynchronize(s));
  }
}

}  // namespace om::cuda
