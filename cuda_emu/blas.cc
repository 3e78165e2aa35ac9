// The CUDA emulator's cuBLAS and cuBLASLt (cuda_emu/README.md): the calls kernels/cuda/matmul.cu and
// kernels/cuda/block_rotate.cu make, as naive column-major GEMMs queued like kernels (cuda_emu/emu.h).
// Checked as the libraries check: operand shapes against op(A)·op(B), leading dimensions, the supported
// type combinations (f32·f32 → f32; bf16·bf16 → bf16 or f32; compute and scale f32), device pointers.
// Numbers: products and sums in f32, k ascending (the libraries' order is theirs); beta = 0 never reads C.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "cuda_emu/emu.h"

namespace om_emu {
namespace {

float load(const void* p, cudaDataType_t t, size_t i) {
  return t == CUDA_R_16BF ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]) : static_cast<const float*>(p)[i];
}

void store(void* p, cudaDataType_t t, size_t i, float v) {
  if (t == CUDA_R_16BF) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

size_t elem_size(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : 4; }

// An f32 operand as the tensor cores read it in TF32 (1 sign, 8 exponent, 10 fraction bits): the low 13
// fraction bits dropped, i.e. truncated toward zero. NVIDIA does not document whether cuBLAS rounds or
// truncates when it converts; truncation is the larger error (≤ 2^-10 relative against 2^-11), so the
// emulator makes it and the bounds the tests derive for TF32 hold for either.
float to_tf32(float v) {
  uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;  // inf, NaN as they are
  bits &= ~uint32_t{0x1fff};
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Column-major D (m × n, ld ldd) = alpha·op(A)·op(B) + beta·C; op(A) is m × k, op(B) is k × n.
struct Gemm {
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc, ldd;
  cudaDataType_t a_type, b_type, c_type;
  bool tf32 = false;  // CUBLAS_COMPUTE_32F_FAST_TF32: op(A), op(B) rounded to TF32 first (to_tf32)
  float alpha, beta;
  const void *a, *b, *c;
  void* d;

  // op(A) and op(B) are first copied to f32 (bf16 → f32 is exact), so the product loop runs over
  // contiguous rows; every element still sums its k terms in ascending order.
  void Run() const {
    std::vector<float> at(static_cast<size_t>(m * k)), bt(static_cast<size_t>(k * n));  // op(A) m × k, op(B) k × n, row-major
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t p = 0; p < k; ++p) at[static_cast<size_t>(i * k + p)] = load(a, a_type, static_cast<size_t>(ta ? p + i * lda : i + p * lda));
    }
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t j = 0; j < n; ++j) bt[static_cast<size_t>(p * n + j)] = load(b, b_type, static_cast<size_t>(tb ? j + p * ldb : p + j * ldb));
    }
    if (tf32) {
      for (float& v : at) v = to_tf32(v);
      for (float& v : bt) v = to_tf32(v);
    }
    std::vector<float> out(static_cast<size_t>(m * n));  // row-major m × n
#pragma omp parallel for schedule(static) if (m * n * k > (int64_t{1} << 22))
    for (int64_t i = 0; i < m; ++i) {
      float* row = out.data() + i * n;
      for (int64_t p = 0; p < k; ++p) {
        const float x = at[static_cast<size_t>(i * k + p)];
        const float* brow = bt.data() + p * n;
        for (int64_t j = 0; j < n; ++j) row[j] += x * brow[j];
      }
    }
    // Written after every read: D may be C (in place).
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < m; ++i) {
        float v = alpha * out[static_cast<size_t>(i * n + j)];
        if (beta != 0.0f) v += beta * load(c, c_type, static_cast<size_t>(i + j * ldc));
        store(d, c_type, static_cast<size_t>(i + j * ldd), v);
      }
    }
  }
};

// Bytes a column-major (rows × cols, ld) matrix spans.
size_t span_bytes(int64_t rows, int64_t cols, int64_t ld, cudaDataType_t t) {
  if (rows == 0 || cols == 0) return 0;
  return static_cast<size_t>((cols - 1) * ld + rows) * elem_size(t);
}

bool types_supported(cudaDataType_t a, cudaDataType_t b, cudaDataType_t c) {
  if (a != b) return false;
  if (a == CUDA_R_32F) return c == CUDA_R_32F;
  if (a == CUDA_R_16BF) return c == CUDA_R_16BF || c == CUDA_R_32F;
  return false;
}

// The libraries' argument checks: sizes, leading dimensions against op(A), op(B) and D (and C when
// beta reads it), the supported type combinations.
cublasStatus_t validate(const Gemm& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const int64_t a_rows = g.ta ? g.k : g.m, b_rows = g.tb ? g.n : g.k;
  if (g.lda < std::max<int64_t>(1, a_rows) || g.ldb < std::max<int64_t>(1, b_rows) || g.ldd < std::max<int64_t>(1, g.m) ||
      (g.beta != 0.0f && g.ldc < std::max<int64_t>(1, g.m))) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (!types_supported(g.a_type, g.b_type, g.c_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}

// Fails unless every operand the GEMM touches lies inside one device allocation (C only when beta
// reads it).
void check_operands(const Gemm& g, const char* what) {
  const int64_t a_rows = g.ta ? g.k : g.m, a_cols = g.ta ? g.m : g.k;
  const int64_t b_rows = g.tb ? g.n : g.k, b_cols = g.tb ? g.k : g.n;
  struct Operand {
    const void* p;
    size_t bytes;
    const char* name;
  } ops[] = {{g.a, span_bytes(a_rows, a_cols, g.lda, g.a_type), "A"},
             {g.b, span_bytes(b_rows, b_cols, g.ldb, g.b_type), "B"},
             {g.d, span_bytes(g.m, g.n, g.ldd, g.c_type), "D"},
             {g.c, g.beta != 0.0f ? span_bytes(g.m, g.n, g.ldc, g.c_type) : 0, "C"}};
  for (const Operand& o : ops) {
    if (o.bytes != 0 && !device_accessible(o.p, o.bytes)) {
      fail("%s: operand %s (%p, %zu bytes) is not inside one device allocation", what, o.name, o.p, o.bytes);
    }
  }
}

cublasStatus_t check_and_queue(const Gemm& g, const char* what, cudaStream_t stream) {
  if (const cublasStatus_t st = validate(g); st != CUBLAS_STATUS_SUCCESS) return st;
  if (g.m == 0 || g.n == 0) return CUBLAS_STATUS_SUCCESS;
  check_operands(g, what);
  enqueue([g] { g.Run(); }, what, stream);
  return CUBLAS_STATUS_SUCCESS;
}

struct LtDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct LtLayout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
static_assert(sizeof(LtDesc) <= sizeof(cublasLtMatmulDescOpaque_t));
static_assert(sizeof(LtLayout) <= sizeof(cublasLtMatrixLayoutOpaque_t));

struct BlasHandle {
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cudaStream_t stream = nullptr;  // cublasSetStream
};

// cublasLtMatmulPreference_t: the workspace limit and the operands' promised alignments (bytes; cuBLASLt's
// default promise is 256).
struct LtPreference {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};
static_assert(sizeof(LtPreference) <= sizeof(cublasLtMatmulPreferenceOpaque_t));

// What an algorithm from cublasLtMatmulAlgoGetHeuristic records here: the problem it was chosen for and the
// alignments it may assume, checked when cublasLtMatmul runs it (a real algorithm chosen for 256-byte
// aligned operands may fail or misbehave on less aligned ones; one chosen for another problem may not
// apply). data[0] marks it.
constexpr uint64_t kAlgoMagic = 0x6f6d2d616c676f31ull;  // "om-algo1"
struct LtAlgo {
  uint64_t magic;
  int64_t m, n, k;
  uint32_t align[4];
};
static_assert(sizeof(LtAlgo) <= sizeof(cublasLtMatmulAlgo_t));

// The problem of a cuBLASLt call from its descriptors (pointers and scalars not yet set): the shape checks
// of cublasLtMatmul, shared with its heuristic.
cublasStatus_t lt_problem(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a_desc, cublasLtMatrixLayout_t b_desc,
                          cublasLtMatrixLayout_t c_desc, cublasLtMatrixLayout_t d_desc, bool c_is_d, Gemm* g) {
  if (desc == nullptr || a_desc == nullptr || b_desc == nullptr || c_desc == nullptr || d_desc == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  LtDesc op;
  LtLayout la, lb, lc, ld;
  std::memcpy(&op, desc->data, sizeof op);
  std::memcpy(&la, a_desc->data, sizeof la);
  std::memcpy(&lb, b_desc->data, sizeof lb);
  std::memcpy(&lc, c_desc->data, sizeof lc);
  std::memcpy(&ld, d_desc->data, sizeof ld);
  if (op.compute != CUBLAS_COMPUTE_32F || op.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  // C and D: one type and shape (the emulated subset; cuBLASLt also needs equal layouts when C is D).
  if (lc.type != ld.type || lc.rows != ld.rows || lc.cols != ld.cols || (c_is_d && lc.ld != ld.ld)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  *g = Gemm{};
  g->ta = op.ta == CUBLAS_OP_T;
  g->tb = op.tb == CUBLAS_OP_T;
  g->m = static_cast<int64_t>(ld.rows);
  g->n = static_cast<int64_t>(ld.cols);
  const int64_t a_rows = static_cast<int64_t>(g->ta ? la.cols : la.rows), k = static_cast<int64_t>(g->ta ? la.rows : la.cols);
  const int64_t b_rows = static_cast<int64_t>(g->tb ? lb.cols : lb.rows), b_cols = static_cast<int64_t>(g->tb ? lb.rows : lb.cols);
  if (a_rows != g->m || b_rows != k || b_cols != g->n) return CUBLAS_STATUS_INVALID_VALUE;
  g->k = k;
  g->lda = la.ld;
  g->ldb = lb.ld;
  g->ldc = lc.ld;
  g->ldd = ld.ld;
  g->a_type = la.type;
  g->b_type = lb.type;
  g->c_type = ld.type;
  return CUBLAS_STATUS_SUCCESS;
}

std::atomic<uint64_t> g_heuristic_calls{0};
std::atomic<uint64_t> g_tf32_gemms{0};

uint32_t address_alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

}  // namespace

uint64_t lt_heuristic_calls() { return g_heuristic_calls.load(std::memory_order_relaxed); }
uint64_t tf32_gemm_calls() { return g_tf32_gemms.load(std::memory_order_relaxed); }

}  // namespace om_emu

using om_emu::Gemm;

extern "C" {

// ---- cuBLASLt ----------------------------------------------------------------------------------------
cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = reinterpret_cast<cublasLtHandle_t>(new char[1]);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete[] reinterpret_cast<char*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  if (desc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* d = new cublasLtMatmulDescOpaque_t{};
  om_emu::LtDesc v{compute, scale};
  std::memcpy(d->data, &v, sizeof v);
  *desc = d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (desc == nullptr || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  om_emu::LtDesc v;
  std::memcpy(&v, desc->data, sizeof v);
  if (attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) {
    if (size != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
    cublasOperation_t op;
    std::memcpy(&op, buf, sizeof op);
    if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
    (attr == CUBLASLT_MATMUL_DESC_TRANSA ? v.ta : v.tb) = op;
  } else {
    om_emu::fail("cublasLtMatmulDescSetAttribute: attribute %d is not emulated", static_cast<int>(attr));
  }
  std::memcpy(desc->data, &v, sizeof v);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (layout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (ld < static_cast<int64_t>(std::max<uint64_t>(rows, 1))) return CUBLAS_STATUS_INVALID_VALUE;
  auto* l = new cublasLtMatrixLayoutOpaque_t{};
  om_emu::LtLayout v{type, rows, cols, ld};
  std::memcpy(l->data, &v, sizeof v);
  *layout = l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (pref == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* p = new cublasLtMatmulPreferenceOpaque_t{};
  const om_emu::LtPreference v;
  std::memcpy(p->data, &v, sizeof v);
  *pref = p;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  if (pref == nullptr || buf == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  om_emu::LtPreference v;
  std::memcpy(&v, pref->data, sizeof v);
  int align_index = -1;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      if (size != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&v.max_workspace, buf, sizeof v.max_workspace);
      break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: align_index = 0; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: align_index = 1; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: align_index = 2; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: align_index = 3; break;
    default: om_emu::fail("cublasLtMatmulPreferenceSetAttribute: attribute %d is not emulated", static_cast<int>(attr));
  }
  if (align_index >= 0) {
    if (size != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&v.align[align_index], buf, sizeof(uint32_t));
  }
  std::memcpy(pref->data, &v, sizeof v);
  return CUBLAS_STATUS_SUCCESS;
}

// One algorithm (the emulator has one: ascending-k f32 sums) for any problem cublasLtMatmul accepts,
// recording the problem and the alignments promised (see LtAlgo).
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a_desc, cublasLtMatrixLayout_t b_desc,
                                              cublasLtMatrixLayout_t c_desc, cublasLtMatrixLayout_t d_desc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (handle == nullptr || pref == nullptr || results == nullptr || returned == nullptr || requested <= 0) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  Gemm g;
  if (const cublasStatus_t st = om_emu::lt_problem(desc, a_desc, b_desc, c_desc, d_desc, true, &g);
      st != CUBLAS_STATUS_SUCCESS) {
    return st;
  }
  om_emu::g_heuristic_calls.fetch_add(1, std::memory_order_relaxed);
  om_emu::LtPreference p;
  std::memcpy(&p, pref->data, sizeof p);
  om_emu::LtAlgo algo{om_emu::kAlgoMagic, g.m, g.n, g.k, {p.align[0], p.align[1], p.align[2], p.align[3]}};
  results[0] = cublasLtMatmulHeuristicResult_t{};
  std::memcpy(results[0].algo.data, &algo, sizeof algo);
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a_desc, const void* B, cublasLtMatrixLayout_t b_desc,
                              const void* beta, const void* C, cublasLtMatrixLayout_t c_desc, void* D,
                              cublasLtMatrixLayout_t d_desc, const cublasLtMatmulAlgo_t* algo, void*, size_t,
                              cudaStream_t stream) {
  if (handle == nullptr || alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  Gemm g;
  if (const cublasStatus_t st = om_emu::lt_problem(desc, a_desc, b_desc, c_desc, d_desc, C == D, &g);
      st != CUBLAS_STATUS_SUCCESS) {
    return st;
  }
  if (algo != nullptr) {
    om_emu::LtAlgo a;
    std::memcpy(&a, algo->data, sizeof a);
    if (a.magic != om_emu::kAlgoMagic) om_emu::fail("cublasLtMatmul: the algorithm is not from cublasLtMatmulAlgoGetHeuristic");
    if (a.m != g.m || a.n != g.n || a.k != g.k) {
      om_emu::fail("cublasLtMatmul: an algorithm chosen for the problem (m %ld, n %ld, k %ld) runs (m %ld, n %ld, k %ld)",
                   static_cast<long>(a.m), static_cast<long>(a.n), static_cast<long>(a.k), static_cast<long>(g.m),
                   static_cast<long>(g.n), static_cast<long>(g.k));
    }
    const void* ptrs[4] = {A, B, C, D};
    for (int i = 0; i < 4; ++i) {
      if (om_emu::address_alignment(ptrs[i]) < a.align[i]) {
        om_emu::fail("cublasLtMatmul: operand %c at %p is %u-byte aligned; its algorithm was chosen for %u-byte "
                     "alignment (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES)",
                     "ABCD"[i], ptrs[i], om_emu::address_alignment(ptrs[i]), a.align[i], "ABCD"[i]);
      }
    }
  }
  g.alpha = *static_cast<const float*>(alpha);  // pointer mode host (the default)
  g.beta = *static_cast<const float*>(beta);
  g.a = A;
  g.b = B;
  g.c = C;
  g.d = D;
  return om_emu::check_and_queue(g, "cublasLtMatmul", stream);
}

// ---- cuBLAS ------------------------------------------------------------------------------------------
cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = reinterpret_cast<cublasHandle_t>(new om_emu::BlasHandle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  delete reinterpret_cast<om_emu::BlasHandle*>(handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  reinterpret_cast<om_emu::BlasHandle*>(handle)->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
  return handle != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t) {
  return handle != nullptr ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  reinterpret_cast<om_emu::BlasHandle*>(handle)->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    default: return "CUBLAS_STATUS (emulated)";
  }
}

// The pointer arrays live in device memory: read when the call runs, as the GPU reads them.
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                   int n, int k, const void* alpha, const void* const Aarray[], cudaDataType Atype,
                                   int lda, const void* const Barray[], cudaDataType Btype, int ldb, const void* beta,
                                   void* const Carray[], cudaDataType Ctype, int ldc, int batch,
                                   cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (reinterpret_cast<om_emu::BlasHandle*>(handle)->pointer_mode != CUBLAS_POINTER_MODE_HOST) {
    om_emu::fail("cublasGemmBatchedEx: only CUBLAS_POINTER_MODE_HOST is emulated");
  }
  if (batch < 0 || m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) return CUBLAS_STATUS_INVALID_VALUE;
  if (compute == CUBLAS_COMPUTE_32F_FAST_TF32 && (Atype != CUDA_R_32F || Btype != CUDA_R_32F)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (batch == 0 || m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t table = static_cast<size_t>(batch) * sizeof(void*);
  if (!om_emu::device_accessible(Aarray, table) || !om_emu::device_accessible(Barray, table) ||
      !om_emu::device_accessible(Carray, table)) {
    om_emu::fail("cublasGemmBatchedEx: the pointer arrays must be device memory (%d entries each)", batch);
  }
  Gemm g{};
  g.ta = transa == CUBLAS_OP_T;
  g.tb = transb == CUBLAS_OP_T;
  g.m = m;
  g.n = n;
  g.k = k;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.ldd = ldc;
  g.a_type = Atype;
  g.b_type = Btype;
  g.c_type = Ctype;
  g.alpha = *static_cast<const float*>(alpha);
  g.beta = *static_cast<const float*>(beta);
  g.tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  if (const cublasStatus_t st = om_emu::validate(g); st != CUBLAS_STATUS_SUCCESS) return st;
  if (g.tf32) om_emu::g_tf32_gemms.fetch_add(1, std::memory_order_relaxed);
  om_emu::enqueue(
      [g, Aarray, Barray, Carray, batch] {
        for (int i = 0; i < batch; ++i) {
          Gemm one = g;
          one.a = Aarray[i];
          one.b = Barray[i];
          one.c = Carray[i];
          one.d = Carray[i];
          char what[64];
          std::snprintf(what, sizeof what, "cublasGemmBatchedEx (GEMM %d of %d)", i, batch);
          om_emu::check_operands(one, what);
          one.Run();
        }
      },
      "cublasGemmBatchedEx", reinterpret_cast<om_emu::BlasHandle*>(handle)->stream);
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
