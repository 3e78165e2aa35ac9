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
// first use and kept for the process; the algorithm is cuBLASLt's heuristic choice for the shape
// (deterministic for a given shape, GPU and library).
#include <cublasLt.h>

#include <mutex>
#include <string>

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

// RAII for the cuBLASLt descriptors of one call.
struct Layout {
  cublasLtMatrixLayout_t desc = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    OM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&desc, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
  ~Layout() { cublasLtMatrixLayoutDestroy(desc); }
};

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

  cublasLtMatmulDesc_t op = nullptr;
  OM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // First operand: b. Its storage is row-major (K, N) (no transpose) or (N, K): column-major (N, K) with
  // ld N, used as is, or column-major (K, N) with ld K, transposed.
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  OM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_b, sizeof(op_b)));
  OM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_a, sizeof(op_a)));
  {
    const Layout lb = tb ? Layout(type, K, N, K) : Layout(type, N, K, N);
    // Second operand: a, row-major (M, K) → column-major (K, M) ld K as is; or (K, M) → (M, K) ld M, transposed.
    const Layout la = ta ? Layout(type, M, K, M) : Layout(type, K, M, K);
    const Layout lc(c_type, N, M, N);
    OM_CUBLAS_CHECK(cublasLtMatmul(handle(), op, &alpha, args.b.data, lb.desc, args.a.data, la.desc, &beta, c_in,
                                   lc.desc, args.c.data, lc.desc, nullptr, workspace(), kWorkspaceBytes, s));
  }
  cublasLtMatmulDescDestroy(op);
  if (sync_debug()) OM_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace om::cuda
