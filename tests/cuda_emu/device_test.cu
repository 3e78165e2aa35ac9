// The device side of the CUDA emulator (cuda_emu/device.h): that kernels run with CUDA's semantics where the
// project's cuda tests depend on them — __syncthreads ordering shared memory (and a missing one showing in either
// direction in one run: the default thread order alternates by block and launch), warp shuffles, WMMA, PTX mma.sync
// m16n8k16 and ldmatrix x4 with the PTX ISA's lane layouts and kernels/cuda/mma.cuh's fragment loads built on
// them, cp.async groups — and that it reports the device-code bugs it exists to catch (a missing
// __syncthreads, divergent barriers, a shuffle from an exited lane, misaligned WMMA tiles, ldmatrix rows and
// cp.async copies). The runtime side (streams, graphs, host waits, launches, memory) is emulator_test.cu.
// Built and run only in emulator builds (OM_CUDA_EMULATION).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/cuda/async_copy.cuh"
#include "kernels/cuda/mma.cuh"
#include "tests/cuda_emu/device_memory.h"

namespace {

using om::emu_test::device_alloc;
using om::emu_test::download;

// ---- Kernels -------------------------------------------------------------------------------------

// Thread t writes smem[t], then reads smem[(t + 1) mod n]: correct only with the barrier between.
__global__ void neighbour_through_shared(float* out, bool with_barrier) {
  __shared__ float smem[64];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  smem[t] = static_cast<float>(t);
  if (with_barrier) __syncthreads();
  out[t] = smem[(t + 1) % n];
}

// Thread t writes smem[t] and, with no barrier, reads smem[t + step] (its own value when that is outside
// the block): out[block·n + t]. step = +1 reads a higher-numbered thread's write, step = -1 a lower one's.
__global__ void neighbour_without_barrier(float* out, int step) {
  __shared__ float smem[64];
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  smem[t] = static_cast<float>(t);
  const int from = t + step >= 0 && t + step < n ? t + step : t;
  out[static_cast<int>(blockIdx.x) * n + t] = smem[from];
}

// Lanes 0-15 wait at __syncthreads while lanes 16-31 wait at __syncwarp: a hang on a GPU.
__global__ void divergent_barriers() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncwarp();
  }
}

// Lanes 16-31 exit; lanes 0-15 then read them with a full-mask shuffle.
__global__ void shuffle_from_exited(float* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

// Each lane's butterfly sum of the lane indices, and lane 5's value broadcast.
__global__ void shuffles(float* sums, float* broadcast) {
  float v = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  sums[threadIdx.x] = v;
  broadcast[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<float>(threadIdx.x) * 10.0f, 5);
}

// c (16 × 16 f32, row-major) = a (16 × 16 bf16, row-major) · bᵀ where b is stored row-major, so bᵀ is
// b read column-major: the pattern of attention_mma.cu's Q·Kᵀ.
__global__ void wmma_a_bt(float* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int offset) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

// d (16 × 8 f32) = a (16 × 16 bf16) · b (16 × 8 bf16), all row-major, each lane's fragments gathered by the
// PTX ISA's table for mma.m16n8k16 (g = lane / 4, t = lane % 4), written out here independently of
// kernels/cuda/mma.cuh's loaders.
__global__ void mma_documented(float* d, const __nv_bfloat16* a, const __nv_bfloat16* b) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto two = [](__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) | (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
  };
  const uint32_t fa[4] = {two(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
                          two(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
                          two(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
                          two(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
  const uint32_t fb[2] = {two(b[(2 * t) * 8 + g], b[(2 * t + 1) * 8 + g]),
                          two(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g])};
  float acc[4] = {1.0f, 1.0f, 1.0f, 1.0f};  // c = 1 everywhere: d = a·b + 1
  om::cuda::mma_bf16(acc, fa, fb);
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// ldmatrix x4 from a 32 × 24 tile of 16-bit elements in shared memory: lane l
// points at row l of the tile (row l % 8 of matrix l / 8) plus `col`; out[l·4 + i] = the lane's register i.
__global__ void ldmatrix_rows(uint32_t* out, const __nv_bfloat16* tile, int col, bool trans) {
  __shared__ __align__(16) __nv_bfloat16 s[32 * 24];
  const int lane = static_cast<int>(threadIdx.x);
  for (int e = lane; e < 32 * 24; e += 32) s[e] = tile[e];
  __syncwarp();
  uint32_t r[4];
  if (trans) {
    om::cuda::ldmatrix_x4<true>(r, s + lane * 24 + col);
  } else {
    om::cuda::ldmatrix_x4<false>(r, s + lane * 24 + col);
  }
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

// mma.cuh's loaders on shared-memory tiles with a padded row stride (ld = 40): s = a · kᵀ (a and k 16 × 32,
// s 16 × 16 as two 16 × 8 accumulators, each over two 16-deep chunks), then o = bf16(s) · v (v 16 × 16,
// o 16 × 16), as attention's S = Q·Kᵀ and O = P·V. s and o come back row-major (16 × 16 f32).
__global__ void mma_chain(float* s_out, float* o_out, const __nv_bfloat16* a, const __nv_bfloat16* k,
                          const __nv_bfloat16* v) {
  using namespace om::cuda;
  constexpr int ld = 40;
  __shared__ __align__(16) __nv_bfloat16 sa[16 * ld], sk[16 * ld], sv[16 * ld];
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  for (int e = lane; e < 16 * ld; e += 32) {
    sa[e] = a[e];
    sk[e] = k[e];
    sv[e] = v[e];
  }
  __syncwarp();
  MmaA fa[2];
  mma_load_a(fa[0], sa, ld, 0, 0, lane);
  mma_load_a(fa[1], sa, ld, 0, 16, lane);
  MmaC s[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  for (int n = 0; n < 2; ++n) {
    MmaB b0, b1;
    mma_load_b_t2(b0, b1, sk, ld, 8 * n, 0, lane);
    mma_bf16(s[n], fa[0], b0);
    mma_bf16(s[n], fa[1], b1);
  }
  MmaA p;
  mma_a_from_acc(p, s[0], s[1]);
  MmaC o[2] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
  MmaB b0, b1;
  mma_load_b2(b0, b1, sv, ld, 0, 0, lane);
  mma_bf16(o[0], p, b0);
  mma_bf16(o[1], p, b1);
  for (int n = 0; n < 2; ++n) {
    for (int e = 0; e < 4; ++e) {
      const int r = g + 8 * (e / 2), c = 8 * n + 2 * t + e % 2;
      s_out[r * 16 + c] = s[n][e];
      o_out[r * 16 + c] = o[n][e];
    }
  }
}

// cp.async groups (kernels/cuda/async_copy.cuh) into dynamic shared memory (NaN bytes at the block's
// start): thread 0 commits group 0 = src[0..3] into s[0..3], group 1 = src[4..7] into s[4..7] and 16 zero
// bytes into s[8..11], and records s between its waits.
__global__ void cp_async_groups(uint32_t* out, const uint32_t* src) {
  extern __shared__ __align__(16) uint32_t s[];
  if (threadIdx.x != 0) return;
  om::cuda::cp_async_16(s, src, true);
  om::cuda::cp_async_commit();
  om::cuda::cp_async_16(s + 4, src + 4, true);
  om::cuda::cp_async_16(s + 8, src, false);
  om::cuda::cp_async_commit();
  out[0] = s[0];  // no wait yet
  om::cuda::cp_async_wait<1>();
  out[1] = s[0];  // group 0 waited for
  out[2] = s[4];  // group 1 not
  om::cuda::cp_async_wait<0>();
  out[3] = s[4];
  out[4] = s[8];
}

__global__ void cp_async_misaligned(const uint32_t* src) {
  extern __shared__ __align__(16) uint32_t s[];
  om::cuda::cp_async_16(s + 2, src, true);  // 8 bytes past a 16-byte boundary
  om::cuda::cp_async_commit();
  om::cuda::cp_async_wait<0>();
}

// ---- Semantics -----------------------------------------------------------------------------------


TEST(CudaEmulator, SyncthreadsOrdersSharedMemoryAndItsAbsenceShows) {
  constexpr int n = 64;
  float* d = device_alloc<float>(n);
  neighbour_through_shared<<<1, n>>>(d, true);
  std::vector<float> h = download(d, n);
  for (int t = 0; t < n; ++t) ASSERT_EQ(h[static_cast<size_t>(t)], static_cast<float>((t + 1) % n)) << t;
  // Without the barrier a reader runs before its writer (thread 0 before 1 in a block run first to last,
  // thread 63 before 0 in one run last to first) and reads the block's fresh NaN bytes.
  neighbour_through_shared<<<1, n>>>(d, false);
  h = download(d, n);
  int stale = 0;
  for (int t = 0; t < n; ++t) stale += std::isnan(h[static_cast<size_t>(t)]) ? 1 : 0;
  EXPECT_GE(stale, 1);
  cudaFree(d);
}

// The default order (OM_EMU_THREAD_ORDER unset: alternate) runs block b of launch k last to first when
// k + b is odd, so one test run catches a missing barrier in either direction: of two blocks, exactly one
// reads stale bytes (the n - 1 threads whose neighbour had not written yet), and so does exactly one of
// two successive one-block launches.
TEST(CudaEmulator, AMissingBarrierShowsInEitherDirectionInOneRun) {
  if (std::getenv("OM_EMU_THREAD_ORDER") != nullptr) GTEST_SKIP() << "OM_EMU_THREAD_ORDER is set";
  constexpr int n = 64;
  float* d = device_alloc<float>(2 * n);
  auto stale_in = [&](const std::vector<float>& h, int block) {
    int stale = 0;
    for (int t = 0; t < n; ++t) stale += std::isnan(h[static_cast<size_t>(block * n + t)]) ? 1 : 0;
    return stale;
  };
  for (const int step : {1, -1}) {
    SCOPED_TRACE(step);
    neighbour_without_barrier<<<2, n>>>(d, step);
    const std::vector<float> two = download(d, 2 * n);
    const int a = stale_in(two, 0), b = stale_in(two, 1);
    EXPECT_EQ(std::min(a, b), 0);
    EXPECT_EQ(std::max(a, b), n - 1);
    int stale_launches = 0;
    for (int launch = 0; launch < 2; ++launch) {
      neighbour_without_barrier<<<1, n>>>(d, step);
      stale_launches += stale_in(download(d, n), 0) == n - 1 ? 1 : 0;
    }
    EXPECT_EQ(stale_launches, 1);
  }
  cudaFree(d);
}

TEST(CudaEmulator, ShufflesExchangeWithinTheWarp) {
  float* sums = device_alloc<float>(32);
  float* bcast = device_alloc<float>(32);
  shuffles<<<1, 32>>>(sums, bcast);
  const std::vector<float> s = download(sums, 32), b = download(bcast, 32);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(s[static_cast<size_t>(i)], 496.0f) << i;  // 0 + 1 + ... + 31
    EXPECT_EQ(b[static_cast<size_t>(i)], 50.0f) << i;
  }
  cudaFree(sums);
  cudaFree(bcast);
}

TEST(CudaEmulator, WmmaComputesTheDocumentedProduct) {
  std::vector<__nv_bfloat16> a(16 * 16 + 16), b(16 * 16);
  for (int i = 0; i < 16 * 16 + 16; ++i) a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>(i % 7) - 3.0f);
  for (int i = 0; i < 16 * 16; ++i) b[static_cast<size_t>(i)] = __float2bfloat16_rn(0.5f * static_cast<float>(i % 5));
  __nv_bfloat16* da = device_alloc<__nv_bfloat16>(a.size());
  __nv_bfloat16* db = device_alloc<__nv_bfloat16>(b.size());
  float* dc = device_alloc<float>(256);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  wmma_a_bt<<<1, 32>>>(dc, da, db, 0);
  const std::vector<float> c = download(dc, 256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want = 0.0;
      for (int k = 0; k < 16; ++k) {
        want += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * 16 + k)])) *
                __bfloat162float(b[static_cast<size_t>(j * 16 + k)]);
      }
      ASSERT_EQ(c[static_cast<size_t>(i * 16 + j)], static_cast<float>(want)) << i << "," << j;  // small integers: exact
    }
  }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
}

TEST(CudaEmulator, MmaM16n8k16ComputesTheDocumentedProduct) {
  std::vector<__nv_bfloat16> a(16 * 16), b(16 * 8);
  for (int i = 0; i < 16 * 16; ++i) {
    a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 7) % 11) - 5.0f);
  }
  for (int i = 0; i < 16 * 8; ++i) {
    b[static_cast<size_t>(i)] = __float2bfloat16_rn(0.5f * static_cast<float>((i * 5) % 9) - 2.0f);
  }
  __nv_bfloat16* da = device_alloc<__nv_bfloat16>(a.size());
  __nv_bfloat16* db = device_alloc<__nv_bfloat16>(b.size());
  float* dd = device_alloc<float>(16 * 8);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  mma_documented<<<1, 32>>>(dd, da, db);
  const std::vector<float> d = download(dd, 16 * 8);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      double want = 1.0;
      for (int k = 0; k < 16; ++k) {
        want += static_cast<double>(__bfloat162float(a[static_cast<size_t>(i * 16 + k)])) *
                __bfloat162float(b[static_cast<size_t>(k * 8 + j)]);
      }
      ASSERT_EQ(d[static_cast<size_t>(i * 8 + j)], static_cast<float>(want)) << i << "," << j;  // small: exact
    }
  }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dd);
}

TEST(CudaEmulator, LdmatrixGivesEachLaneItsDocumentedElements) {
  std::vector<__nv_bfloat16> tile(32 * 24);
  // Element (r, c) holds the bit pattern r·24 + c (ldmatrix moves bits; no value is rounded).
  for (int e = 0; e < 32 * 24; ++e) tile[static_cast<size_t>(e)] = __ushort_as_bfloat16(static_cast<unsigned short>(e));
  __nv_bfloat16* dt = device_alloc<__nv_bfloat16>(tile.size());
  uint32_t* dout = device_alloc<uint32_t>(128);
  cudaMemcpy(dt, tile.data(), tile.size() * 2, cudaMemcpyHostToDevice);
  for (const bool trans : {false, true}) {
    for (const int col : {0, 8, 16}) {
      ldmatrix_rows<<<1, 32>>>(dout, dt, col, trans);
      std::vector<uint32_t> out(128);
      ASSERT_EQ(cudaMemcpy(out.data(), dout, 128 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int i = 0; i < 4; ++i) {
          // Matrix i is rows 8i..8i+7 of the tile (each lane pointed at its own row), columns col..col+7.
          const int r_lo = 8 * i + (trans ? 2 * t : g), c_lo = col + (trans ? g : 2 * t);
          const int r_hi = 8 * i + (trans ? 2 * t + 1 : g), c_hi = col + (trans ? g : 2 * t + 1);
          const uint32_t reg = out[static_cast<size_t>(lane * 4 + i)];
          EXPECT_EQ(reg & 0xffffu, static_cast<uint32_t>(r_lo * 24 + c_lo))
              << "trans " << trans << " col " << col << " lane " << lane << " reg " << i;
          EXPECT_EQ(reg >> 16, static_cast<uint32_t>(r_hi * 24 + c_hi))
              << "trans " << trans << " col " << col << " lane " << lane << " reg " << i;
        }
      }
    }
  }
  cudaFree(dt);
  cudaFree(dout);
}

TEST(CudaEmulator, MmaFragmentLoadsChainAProductIntoTheNext) {
  constexpr int ld = 40, n = 16 * ld;
  std::vector<__nv_bfloat16> a(n), k(n), v(n);
  for (int i = 0; i < n; ++i) {
    a[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 3) % 7) - 3.0f);
    k[static_cast<size_t>(i)] = __float2bfloat16_rn(0.25f * static_cast<float>((i * 5) % 9) - 1.0f);
    v[static_cast<size_t>(i)] = __float2bfloat16_rn(static_cast<float>((i * 11) % 5) - 2.0f);
  }
  __nv_bfloat16 *da = device_alloc<__nv_bfloat16>(n), *dk = device_alloc<__nv_bfloat16>(n),
                *dv = device_alloc<__nv_bfloat16>(n);
  float *ds = device_alloc<float>(256), *dout = device_alloc<float>(256);
  cudaMemcpy(da, a.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dk, k.data(), n * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, v.data(), n * 2, cudaMemcpyHostToDevice);
  mma_chain<<<1, 32>>>(ds, dout, da, dk, dv);
  const std::vector<float> s = download(ds, 256), o = download(dout, 256);
  auto at = [&](const std::vector<__nv_bfloat16>& m, int r, int c) {
    return static_cast<double>(__bfloat162float(m[static_cast<size_t>(r * ld + c)]));
  };
  auto s_ref = [&](int i, int j) {
    double sum = 0.0;
    for (int d = 0; d < 32; ++d) sum += at(a, i, d) * at(k, j, d);
    return sum;
  };
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want_o = 0.0;
      for (int c = 0; c < 16; ++c) {
        want_o += static_cast<double>(__bfloat162float(__float2bfloat16_rn(static_cast<float>(s_ref(i, c))))) *
                  at(v, c, j);
      }
      // s: multiples of 1/4 below 2^7 (so bf16 holds them: the rounding is exact here), o: multiples of 1/4
      // below 2^12; every partial sum is exact in f32, in any order.
      ASSERT_EQ(s[static_cast<size_t>(i * 16 + j)], static_cast<float>(s_ref(i, j))) << i << "," << j;
      ASSERT_EQ(o[static_cast<size_t>(i * 16 + j)], static_cast<float>(want_o)) << i << "," << j;
    }
  }
  for (void* p : {static_cast<void*>(da), static_cast<void*>(dk), static_cast<void*>(dv), static_cast<void*>(ds),
                  static_cast<void*>(dout)}) {
    cudaFree(p);
  }
}

TEST(CudaEmulator, CpAsyncCopiesLandWhenTheirGroupIsWaitedFor) {
  const std::vector<uint32_t> src = {10, 11, 12, 13, 14, 15, 16, 17};
  uint32_t* dsrc = device_alloc<uint32_t>(src.size());
  uint32_t* dout = device_alloc<uint32_t>(5);
  cudaMemcpy(dsrc, src.data(), src.size() * 4, cudaMemcpyHostToDevice);
  cp_async_groups<<<1, 32, 48>>>(dout, dsrc);
  std::vector<uint32_t> out(5);
  ASSERT_EQ(cudaMemcpy(out.data(), dout, 5 * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[0], 0xffffffffu);  // before any wait: the old bytes (undefined on a GPU; the emulator's latest)
  EXPECT_EQ(out[1], 10u);
  EXPECT_EQ(out[2], 0xffffffffu);  // wait_group 1 leaves the newest group in flight
  EXPECT_EQ(out[3], 14u);
  EXPECT_EQ(out[4], 0u);  // source size 0: zero-filled
  cudaFree(dsrc);
  cudaFree(dout);
}

// ---- Bugs it reports -----------------------------------------------------------------------------


TEST(CudaEmulatorDeathTest, DivergentBarriersAreReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        divergent_barriers<<<1, 32>>>();
        cudaDeviceSynchronize();
      },
      "kernel divergent_barriers.*wait at different barriers");
}

TEST(CudaEmulatorDeathTest, AnUnknownThreadOrderIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: the order is read at its first launch
  EXPECT_DEATH(
      {
        setenv("OM_EMU_THREAD_ORDER", "sideways", 1);
        float* d = device_alloc<float>(64);
        neighbour_without_barrier<<<1, 64>>>(d, 1);
        cudaDeviceSynchronize();
      },
      "OM_EMU_THREAD_ORDER=sideways: expected forward, reverse or alternate");
}

TEST(CudaEmulatorDeathTest, ShuffleFromAnExitedLaneIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = device_alloc<float>(32);
        shuffle_from_exited<<<1, 32>>>(d);
        cudaDeviceSynchronize();
      },
      "reads lane (16|31) in its shuffle #0, which that lane did not make");
}

TEST(CudaEmulatorDeathTest, MisalignedLdmatrixRowIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        __nv_bfloat16* tile = device_alloc<__nv_bfloat16>(32 * 24);
        uint32_t* out = device_alloc<uint32_t>(128);
        ldmatrix_rows<<<1, 32>>>(out, tile, 4, false);  // rows start 8 bytes past a 16-byte boundary
        cudaDeviceSynchronize();
      },
      "not 16-byte aligned");
}

TEST(CudaEmulatorDeathTest, MisalignedCpAsyncIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        uint32_t* src = device_alloc<uint32_t>(4);
        cp_async_misaligned<<<1, 32, 64>>>(src);
        cudaDeviceSynchronize();
      },
      "must be 16-byte aligned");
}

TEST(CudaEmulatorDeathTest, MisalignedWmmaTileIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        __nv_bfloat16* a = device_alloc<__nv_bfloat16>(16 * 16 + 16);
        __nv_bfloat16* b = device_alloc<__nv_bfloat16>(16 * 16);
        float* c = device_alloc<float>(256);
        wmma_a_bt<<<1, 32>>>(c, a, b, 8);  // 16 bytes past a 32-byte boundary
        cudaDeviceSynchronize();
      },
      "32-byte-aligned pointer");
}

}  // namespace
