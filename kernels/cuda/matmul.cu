// CUDA matmul (kernels/matmul.h) through cuBLASLt: c (=|+=) op(a) · op(b), row-major, f32 accumulation.
// cuBLAS is column-major, so the row-major product C = op(A)·op(B) is computed as the column-major
// Cᵀ = op(B)ᵀ · op(A)ᵀ: the first cuBLASLt operand is b, the second a, and a row-major (r, c) matrix is
// the column-major (c, r) one with leading dimension c.
//   f32 a, b, c: CUBLAS_COMPUTE_32F — true fp32 (no TF32), so the CPU reference's rule-2 tolerance applies.
//   bf16 a, b, c: bf16 inputs, f32 accumulation and scale, bf16 output.
//   bf16 a, b, f32 c: bf16 inputs, f32 accumulation and scale, f32 C and D (the weight gradient added
//     to an f32 main gradient). The cuBLASLt documentation's cublasLtMatmul() data type table
//     (https://docs.nvidia.com/cuda/cublas/#cublasltmatmul) lists computeType CUBLAS_COMPUTE_32F,
//     scaleType CUDA_R_32F, Atype/Btype CUDA_R_16BF, Ctype/Dtype CUDA_R_32F among the supported
//     combinations (from memory of that table: the page was not retrievable offline; the first GPU run of
//     tests/cuda/matmul_test.cc confirms it, an unsupported combination fails OM_CUBLAS_CHECK); it is also what Megatron's fused weight-gradient accumulation runs (NVIDIA/apex
//     csrc/megatron/fused_weight_gradient_dense_cuda.cu: cublasGemmEx, bf16 A/B, f32 C, beta = 1).
//     Only the C/D layouts change type; the descriptor and the operand layouts are as for bf16.
// kAccumulate is beta = 1 with C = D = c; the fused residual add is beta = 1 with C = residual, D = c
// (same type and layout, distinct memory). One cuBLASLt handle per thread and one 32 MiB workspace per device, made on
// first use and kept for the process.
// Plans: the descriptors of a call and cuBLASLt's heuristic algorithm (cublasLtMatmulAlgoGetHeuristic, the
// first result, within the workspace) are made once per distinct call (shape, transposes, types,
// and the alignment of each operand's address, up to 256 bytes, which the heuristic is told: an
// algorithm chosen for 256-byte-aligned operands may not run on 16-byte-aligned ones) and kept in a
// per-thread table, so a training step's GEMMs make no descriptor or heuristic call after the first step
// (cuBLASLt runs its heuristic inside every cublasLtMatmul given no algorithm). The algorithm is therefore
// fixed per call and the results deterministic for a given GPU and library. Should the heuristic return
// nothing, the call passes no algorithm and cuBLASLt chooses, as before.
#include <cublasLt.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/matmul.h"

namespace om::cuda {
namespace {

#define OM_CUBLAS_CHECK(expr)                                                                              \
  do {                                                                                                     \
    const cublasStatus_t om_st = (expr);                                                                   \
    OM_CHECK(om_st == CUBLAS_STATUS_SUCCESS, "cuBLASLt call failed (status %d): %s", static_cast<int>(om_st), \
             #expr);                                                                                       \
  } while (0)

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cublasLtHandle_t handle() {
  thread_local cublasLtHandle_t h = [] {
    cublasLtHandle_t created = nullptr;
    OM_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

void* workspace() {
  int device = 0;
  OM_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mu;
  static void* spaces[64] = {};
  std::lock_guard<std::mutex> lock(mu);
  OM_CHECK(device >= 0 && device < 64, "matmul: device index %d out of range", device);
  if (spaces[device] == nullptr) OM_CUDA_CHECK(cudaMalloc(&spaces[device], kWorkspaceBytes));
  return spaces[device];
}

// The largest power of two dividing p's address, at most 256 (cuBLASLt's alignment preferences).
uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// What a plan depends on. A and B are cuBLASLt's operands: our b and a (see the top).
struct PlanKey {
  int64_t m, n, k;
  bool ta, tb;
  cudaDataType_t type, c_type;
  uint32_t align_a, align_b, align_c, align_d;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& p) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    auto mix = [&h](uint64_t v) {
      h ^= v;
      h *= 1099511628211ull;
    };
    mix(static_cast<uint64_t>(p.m));
    mix(static_cast<uint64_t>(p.n));
    mix(static_cast<uint64_t>(p.k));
    mix((p.ta ? 1u : 0u) | (p.tb ? 2u : 0u));
    mix(static_cast<uint64_t>(p.type) << 32 | static_cast<uint32_t>(p.c_type));
    mix(uint64_t{p.align_a} << 48 | uint64_t{p.align_b} << 32 | uint64_t{p.align_c} << 16 | p.align_d);
    return static_cast<size_t>(h);
  }
};

// The descriptors and algorithm of one kind of call; made once, kept for the process.
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;  // cuBLASLt's A (our b), B (our a), C = D
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
};

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t desc = nullptr;
  OM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  return desc;
}

Plan make_plan(const PlanKey& key) {
  const int64_t M = key.m, N = key.n, K = key.k;
  Plan p;
  OM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_b = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  OM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_b, sizeof(op_b)));
  OM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_a, sizeof(op_a)));
  // First operand: b. Its storage is row-major (K, N) (no transpose) or (N, K): column-major (N, K) with
  // ld N, used as is, or column-major (K, N) with ld K, transposed.
  p.la = key.tb ? make_layout(key.type, K, N, K) : make_layout(key.type, N, K, N);
  // Second operand: a, row-major (M, K) → column-major (K, M) ld K as is; or (K, M) → (M, K) ld M, transposed.
  p.lb = key.ta ? make_layout(key.type, M, K, M) : make_layout(key.type, K, M, K);
  p.lc = make_layout(key.c_type, N, M, N);

  cublasLtMatmulPreference_t pref = nullptr;
  OM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_workspace = kWorkspaceBytes;
  OM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace,
                                                       sizeof(max_workspace)));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}};
  for (const auto& [attr, value] : aligns) {
    OM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle(), p.op, p.la, p.lb, p.lc, p.lc, pref, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  p.has_algo = st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS;
  if (p.has_algo) p.algo = result.algo;
  return p;
}

const Plan& plan_for(const PlanKey& key) {
  thread_local std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;  // with the thread's handle
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, make_plan(key)).first;
  return it->second;
}

}  // namespace

void matmul(const MatmulArgs& args, Stream stream) {
  const bool ta = args.trans_a == Transpose::kYes, tb = args.trans_b == Transpose::kYes;
  const int64_t M = args.c.dim(0), N = args.c.dim(1), K = ta ? args.a.dim(0) : args.a.dim(1);
  if (M == 0 || N == 0) return;
  const bool bf16 = args.a.dtype == DType::kBF16;
  const bool c_matches = args.c.dtype == args.a.dtype || (bf16 && args.c.dtype == DType::kF32);
  OM_CHECK(args.b.dtype == args.a.dtype && c_matches,
           "matmul (CUDA): a, b and c must share one dtype (bf16 or f32), or be bf16, bf16 and f32; got '%s' %s, "
           "'%s' %s, '%s' %s",
           args.a.name, std::string(dtype_name(args.a.dtype)).c_str(), args.b.name,
           std::string(dtype_name(args.b.dtype)).c_str(), args.c.name, std::string(dtype_name(args.c.dtype)).c_str());
  const cudaStream_t s = to_cuda_stream(stream);
  // The epilogue D = alpha·op(A)·op(B) + beta·C: C = c (kAccumulate, in place), C = residual (fused
  // residual add, out of place), or beta = 0.
  const bool fused_residual = args.residual.data != nullptr;
  const void* c_in = fused_residual ? args.residual.data : args.c.data;
  const float alpha = 1.0f, beta = args.mode == WriteMode::kAccumulate || fused_residual ? 1.0f : 0.0f;
  if (K == 0) {  // an empty sum: c = 0, c unchanged when accumulating, or c = residual
    if (fused_residual) {
      OM_CUDA_CHECK(cudaMemcpyAsync(args.c.data, c_in, args.c.nbytes(), cudaMemcpyDeviceToDevice, s));
    } else if (args.mode == WriteMode::kOverwrite) {
      OM_CUDA_CHECK(cudaMemsetAsync(args.c.data, 0, args.c.nbytes(), s));
    }
    return;
  }
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_32F;                             // a and b
  const cudaDataType_t c_type = args.c.dtype == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;  // c and d
  const PlanKey key{M, N, K, ta, tb, type, c_type,
                    alignment(args.b.data), alignment(args.a.data), alignment(c_in), alignment(args.c.data)};
  const Plan& p = plan_for(key);
  OM_CUBLAS_CHECK(cublasLtMatmul(handle(), p.op, &alpha, args.b.data, p.la, args.a.data, p.lb, &beta, c_in, p.lc,
                                 args.c.data, p.lc, p.has_algo ? &p.algo : nullptr, workspace(), kWorkspaceBytes, s));
  if (sync_debug()) OM_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace om::cuda
