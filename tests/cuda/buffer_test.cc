// Buffer and Arena on a CUDA device: allocation, Zero(), byte-exact copies in every direction,
// aligned Arena views, the free bytes (available_bytes), and out-of-memory as a Status. Runs under
// cuda_test_main (exit 77 without a GPU); tests/core/buffer_test.cc covers the host side.
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/arena.h"
#include "core/buffer.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

// Bytes 0..n-1 of a fixed pattern that no zeroing or truncated copy reproduces (never all-zero).
std::vector<unsigned char> byte_pattern(size_t n) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>((i * 131 + 7) % 251 + 1);
  return v;
}

std::vector<unsigned char> download(const void* device_ptr, Device device, size_t n) {
  std::vector<unsigned char> v(n, 0xee);
  copy_bytes(v.data(), Device::Cpu(), device_ptr, device, n);
  return v;
}

TEST(CudaBuffer, AllocateZeroAndRoundTripBitwise) {
  const size_t n = 1000003;  // odd: not a multiple of any copy granularity
  StatusOr<Buffer> b = Buffer::TryAllocate(Device::Cuda(0), n, "activations");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->size(), n);
  EXPECT_EQ(b->device(), Device::Cuda(0));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % kBufferAlignment, 0u);

  const std::vector<unsigned char> pattern = byte_pattern(n);
  copy_bytes(b->data(), b->device(), pattern.data(), Device::Cpu(), n);  // host -> device
  EXPECT_EQ(download(b->data(), b->device(), n), pattern);                // device -> host

  Buffer c = Buffer::Allocate(Device::Cuda(0), n, "copy");
  copy_bytes(c.data(), c.device(), b->data(), b->device(), n);  // device -> device
  EXPECT_EQ(download(c.data(), c.device(), n), pattern);

  b->Zero();
  EXPECT_EQ(download(b->data(), b->device(), n), std::vector<unsigned char>(n, 0));
  EXPECT_EQ(download(c.data(), c.device(), n), pattern);  // Zero touched only its own buffer
}

TEST(CudaBuffer, MoveKeepsTheDevicePointer) {
  Buffer a = Buffer::Allocate(Device::Cuda(0), 4096, "a");
  void* p = a.data();
  Buffer b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  b = Buffer::Allocate(Device::Cuda(0), 16, "b");  // frees the first allocation
  EXPECT_NE(b.data(), nullptr);
}

// available_bytes (cudaMemGetInfo's free bytes, what the Trainer's memory check compares its plan with)
// falls by at least an allocation's size while it lives, by less than twice that (the driver rounds up to
// its pages, here 2 MiB at most), and comes back within a page once it is freed.
TEST(CudaBuffer, FreeBytesFallByAnAllocationAndComeBack) {
  constexpr size_t kBytes = size_t{64} << 20, kPage = size_t{2} << 20;
  StatusOr<size_t> before = available_bytes(Device::Cuda(0));
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  {
    const Buffer b = Buffer::Allocate(Device::Cuda(0), kBytes, "free_bytes");
    StatusOr<size_t> during = available_bytes(Device::Cuda(0));
    ASSERT_TRUE(during.ok()) << during.status().ToString();
    ASSERT_LE(*during, *before);
    EXPECT_GE(*before - *during, kBytes);
    EXPECT_LT(*before - *during, 2 * kBytes);
  }
  StatusOr<size_t> after = available_bytes(Device::Cuda(0));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_GE(*after + kPage, *before);
}

TEST(CudaBuffer, AbsurdAllocationIsResourceExhaustedAndLeavesCudaUsable) {
  StatusOr<Buffer> b = Buffer::TryAllocate(Device::Cuda(0), size_t{1} << 60, "huge.activations");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted) << b.status().ToString();
  EXPECT_NE(b.status().message().find("huge.activations"), std::string::npos) << b.status().ToString();
  EXPECT_NE(b.status().message().find("cuda:0"), std::string::npos) << b.status().ToString();
  // The failed cudaMalloc must not leave a sticky error behind: later CUDA calls still work.
  Buffer ok = Buffer::Allocate(Device::Cuda(0), 256, "after");
  const std::vector<unsigned char> pattern = byte_pattern(256);
  copy_bytes(ok.data(), ok.device(), pattern.data(), Device::Cpu(), 256);
  EXPECT_EQ(download(ok.data(), ok.device(), 256), pattern);
}

TEST(CudaBuffer, MissingDeviceOrdinalIsAStatus) {
  StatusOr<Buffer> b = Buffer::TryAllocate(Device::Cuda(1 << 20), 256, "params");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().ToString();
}

TEST(CudaArena, CarvesAlignedZeroedViewsOnTheDevice) {
  Arena arena(Device::Cuda(0), 1 << 16, "params");
  EXPECT_EQ(arena.device(), Device::Cuda(0));
  TensorView a = arena.Carve("layers.0.attn.q.weight", DType::kBF16, {3, 5});
  TensorView b = arena.Carve("layers.0.attn_norm.weight", DType::kF32, {1});
  TensorView c = arena.Carve("layers.0.mlp.up.weight", DType::kF32, {7, 33});
  for (const TensorView& v : {a, b, c}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data) % kBufferAlignment, 0u) << v.name;
    EXPECT_EQ(v.device, Device::Cuda(0)) << v.name;
    EXPECT_TRUE(v.is_contiguous()) << v.name;
    EXPECT_EQ(download(v.data, v.device, v.nbytes()), std::vector<unsigned char>(v.nbytes(), 0)) << v.name;
  }
  EXPECT_STREQ(a.name, "layers.0.attn.q.weight");
  EXPECT_EQ(static_cast<char*>(b.data) - static_cast<char*>(a.data), 256);  // 30 bytes rounded up
  EXPECT_EQ(static_cast<char*>(c.data) - static_cast<char*>(b.data), 256);  // 4 bytes rounded up
  EXPECT_EQ(arena.used(), 256u + 256u + 1024u);                             // 924 bytes rounded up

  // A view is usable memory: write c through it and read it back.
  const std::vector<unsigned char> pattern = byte_pattern(c.nbytes());
  copy_bytes(c.data, c.device, pattern.data(), Device::Cpu(), c.nbytes());
  EXPECT_EQ(download(c.data, c.device, c.nbytes()), pattern);

  StatusOr<TensorView> too_big = arena.TryCarve("too.big", DType::kF32, {1 << 16});
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_big.status().message().find("too.big"), std::string::npos) << too_big.status().ToString();
}

}  // namespace
}  // namespace om
