// CUDA cast (kernels/cast.h): f32 <-> bf16 element-wise, bit-identical to cpu::cast.
//   cast_packed<Convert, W>: a grid-stride loop over packs of W = 8 elements (an f32 pack is two
//   128-bit accesses, a bf16 pack one) when both pointers are aligned to their pack size, else
//   W = 1; the n % W tail elements are converted one by one in the same launch. Indices are int64,
//   so any n a Buffer can hold (2^40 and beyond) is covered by the capped grid looping.
// f32 -> bf16 is __float2bfloat16_rn (cvt.rn.bf16.f32: round to nearest even, no flush of
// subnormals, overflow to ±inf), the same rounding as core/dtype.h's float_to_bf16_bits. NaN is
// handled before it, exactly as the host does ((bits >> 16) | 0x40: sign and top payload bits kept,
// quiet bit set), because which NaN the cvt instruction returns is not what we want to depend on
// (f32_to_bf16_bits in kernels/cuda/cuda_common.cuh, which AdamW's fused publish shares).
// bf16 -> f32 moves the bits into the high half of a 32-bit word: exact for every input.
// A same-dtype cast is a device-to-device cudaMemcpyAsync. cast_group packs up to kCastGroupMax small
// entries of one dtype pair into one launch of cast_group_kernel (a scalar loop over the entries'
// joint index space, the same conversions); entries of kCastGroupOwnLaunch elements or more take the
// single cast's path. Arguments were validated by kernels/cast.cc (no overlap, equal numel, f32/bf16
// only).
#include <cstdint>
#include <string>

#include "kernels/cast.h"
#include "kernels/cuda/cuda_common.cuh"

namespace om::cuda {
namespace {

constexpr int kThreads = 256;
// Grid cap: 4096 blocks of 256 threads (1M threads) cover an H100/H200 (132 SMs x 2048 resident
// threads) about four times; larger tensors loop (as kernels/cuda/residual.cu).
constexpr int64_t kMaxBlocks = 4096;
constexpr int kPack = 8;

// Element conversions on raw bits (bf16 as uint16_t), so no __nv_bfloat16 conversion operator can
// reinterpret a value on the way.
struct F32ToBf16 {
  using In = float;
  using Out = uint16_t;
  __device__ __forceinline__ Out operator()(In v) const { return f32_to_bf16_bits(v); }
};
struct Bf16ToF32 {
  using In = uint16_t;
  using Out = float;
  __device__ __forceinline__ Out operator()(In b) const { return __uint_as_float(static_cast<uint32_t>(b) << 16); }
};

// out[i] = convert(in[i]) for i in [0, n): packs [0, n / W) first, then the n % W tail.
template <typename Convert, int W>
__global__ void __launch_bounds__(kThreads)
    cast_packed(typename Convert::Out* out, const typename Convert::In* in, int64_t n) {
  using In = typename Convert::In;
  using Out = typename Convert::Out;
  const Convert convert{};
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t npacks = n / W;
  for (int64_t p = first; p < npacks; p += stride) {
    const Pack<In, W> pin = reinterpret_cast<const Pack<In, W>*>(in)[p];
    Pack<Out, W> pout;
#pragma unroll
    for (int j = 0; j < W; ++j) pout.v[j] = convert(pin.v[j]);
    reinterpret_cast<Pack<Out, W>*>(out)[p] = pout;
  }
  for (int64_t i = npacks * W + first; i < n; i += stride) out[i] = convert(in[i]);
}

// A same-dtype "conversion" on raw bits: the bytes arrive unchanged (cast_group's copies).
template <typename T>
struct Copy {
  using In = T;
  using Out = T;
  __device__ __forceinline__ Out operator()(In v) const { return v; }
};

// cast_group's entries of one dtype pair, passed by value as the kernel's arguments (kCastGroupMax of
// them at 24 bytes each: under the 4 KB every CUDA version accepts); end as kernels/cuda/cuda_common.cuh
// group_index reads it.
template <typename Convert>
struct CastGroup {
  int count = 0;
  const typename Convert::In* in[kCastGroupMax];
  typename Convert::Out* out[kCastGroupMax];
  int64_t end[kCastGroupMax];
};

template <typename Convert>
__global__ void __launch_bounds__(kThreads) cast_group_kernel(const CastGroup<Convert> g) {
  const Convert convert{};
  const int64_t total = g.end[g.count - 1];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  int e = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total; i += stride) {
    const int64_t j = group_index(g.end, i, e);
    g.out[e][j] = convert(g.in[e][j]);
  }
}

// Collects one dtype pair's entries and launches them kCastGroupMax at a time.
template <typename Convert>
class CastBatch {
 public:
  explicit CastBatch(cudaStream_t s) : s_(s) {}
  void Add(const CastArgs& a) {
    const int k = g_.count;
    g_.in[k] = static_cast<const typename Convert::In*>(a.in.data);
    g_.out[k] = static_cast<typename Convert::Out*>(a.out.data);
    group_add_end(g_.end, k, a.in.numel());
    if (++g_.count == kCastGroupMax) Launch();
  }
  void Launch() {
    if (g_.count == 0) return;
    cast_group_kernel<Convert><<<grid_blocks(g_.end[g_.count - 1], kThreads, kMaxBlocks), kThreads, 0, s_>>>(g_);
    OM_CUDA_CHECK_KERNEL(s_);
    g_.count = 0;
  }

 private:
  cudaStream_t s_;
  CastGroup<Convert> g_;
};

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename Convert>
void convert_impl(const CastArgs& args, cudaStream_t s) {
  using In = typename Convert::In;
  using Out = typename Convert::Out;
  const int64_t n = args.in.numel();
  Out* out = static_cast<Out*>(args.out.data);
  const In* in = static_cast<const In*>(args.in.data);
  const bool packed = aligned(out, sizeof(Out) * kPack) && aligned(in, sizeof(In) * kPack);
  const int64_t work = packed ? ceil_div(n, kPack) : n;  // threads that find something to do
  const unsigned blocks = grid_blocks(work, kThreads, kMaxBlocks);
  if (packed) {
    cast_packed<Convert, kPack><<<blocks, kThreads, 0, s>>>(out, in, n);
  } else {
    cast_packed<Convert, 1><<<blocks, kThreads, 0, s>>>(out, in, n);
  }
  OM_CUDA_CHECK_KERNEL(s);
}

}  // namespace

void cast(const CastArgs& args, Stream stream) {
  if (args.in.numel() == 0) return;  // a zero-sized grid is a launch error
  const cudaStream_t s = to_cuda_stream(stream);
  const DType from = args.in.dtype, to = args.out.dtype;
  if (from == to && (from == DType::kF32 || from == DType::kBF16)) {
    OM_CUDA_CHECK(cudaMemcpyAsync(args.out.data, args.in.data, args.in.nbytes(), cudaMemcpyDeviceToDevice, s));
    if (sync_debug()) OM_CUDA_CHECK(cudaStreamSynchronize(s));
  } else if (from == DType::kF32 && to == DType::kBF16) {
    convert_impl<F32ToBf16>(args, s);
  } else if (from == DType::kBF16 && to == DType::kF32) {
    convert_impl<Bf16ToF32>(args, s);
  } else {
    fatal_error("dtypes are f32/bf16",
                format_message("cast (cuda): no conversion from %s ('%s') to %s ('%s'); the CUDA kernel converts "
                               "f32 <-> bf16 and copies f32 or bf16",
                               std::string(dtype_name(from)).c_str(), args.in.name,
                               std::string(dtype_name(to)).c_str(), args.out.name),
                __FILE__, __LINE__);
  }
}

void cast_group(std::span<const CastArgs> list, Stream stream) {
  const cudaStream_t s = to_cuda_stream(stream);
  CastBatch<F32ToBf16> to_bf16(s);
  CastBatch<Bf16ToF32> to_f32(s);
  CastBatch<Copy<uint32_t>> copy32(s);  // f32 bits
  CastBatch<Copy<uint16_t>> copy16(s);  // bf16 bits
  for (const CastArgs& a : list) {
    const int64_t n = a.in.numel();
    if (n == 0) continue;
    if (n >= kCastGroupOwnLaunch) {
      cast(a, stream);
      continue;
    }
    const DType from = a.in.dtype, to = a.out.dtype;
    if (from == DType::kF32 && to == DType::kBF16) {
      to_bf16.Add(a);
    } else if (from == DType::kBF16 && to == DType::kF32) {
      to_f32.Add(a);
    } else if (from == to && from == DType::kF32) {
      copy32.Add(a);
    } else if (from == to && from == DType::kBF16) {
      copy16.Add(a);
    } else {
      cast(a, stream);  // reports the unsupported pair
    }
  }
  to_bf16.Launch();
  to_f32.Launch();
  copy32.Launch();
  copy16.Launch();
}

}  // namespace om::cuda
