// Buffer ownership (move-only, frees once) and Arena carving (alignment, bounds, names).
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>

#include "core/arena.h"
#include "core/buffer.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

static_assert(!std::is_copy_constructible_v<Buffer> && !std::is_copy_assignable_v<Buffer>);
static_assert(std::is_nothrow_move_constructible_v<Buffer> && std::is_nothrow_move_assignable_v<Buffer>);

TEST(Buffer, MoveTransfersOwnership) {
  Buffer a = Buffer::Allocate(Device::Cpu(), 1000, "a");
  void* p = a.data();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kBufferAlignment, 0u);
  Buffer b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  Buffer c = Buffer::Allocate(Device::Cpu(), 16, "c");
  c = std::move(b);  // c's old memory is freed, b's moves in
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.label(), "a");
}

TEST(Buffer, ZeroAndCopy) {
  Buffer a = Buffer::Allocate(Device::Cpu(), 64, "a");
  Buffer b = Buffer::Allocate(Device::Cpu(), 64, "b");
  std::memset(a.data(), 0xab, 64);
  copy_bytes(b.data(), Device::Cpu(), a.data(), Device::Cpu(), 64);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), 64));
  b.Zero();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<unsigned char*>(b.data())[i], 0);
}

TEST(Buffer, StreamOrderedCopiesAndCountedWaitsOnTheCpu) {
  // On the CPU copy_async and zero_async are done on return and are not counted as waits; copy_bytes,
  // Zero and synchronize are (core/buffer.h synchronous_calls). Scratch and pinned Buffers are plain
  // host memory here.
  Buffer a = Buffer::AllocateScratch(Device::Cpu(), Stream{}, 64, "a");
  Buffer b = Buffer::AllocatePinned(64, "b");
  EXPECT_EQ(b.device(), Device::Cpu());
  std::memset(a.data(), 0x5c, 64);
  const ExecContext cpu{};
  const uint64_t before = synchronous_calls();
  copy_async(cpu, b.data(), Device::Cpu(), a.data(), Device::Cpu(), 64);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), 64));
  zero_async(cpu, a.data(), 32);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<unsigned char*>(a.data())[i], i < 32 ? 0 : 0x5c);
  EXPECT_EQ(synchronous_calls(), before);
  copy_bytes(a.data(), Device::Cpu(), b.data(), Device::Cpu(), 64);
  b.Zero();
  synchronize(cpu);
  EXPECT_EQ(synchronous_calls(), before + 3);
}

TEST(Buffer, LargeHostBuffersAreHugePageAligned) {
  // >= 2 MiB: 2 MiB-aligned (so MADV_HUGEPAGE can back them with whole huge pages); smaller ones keep
  // kBufferAlignment. Both are usable to their last byte.
  Buffer big = Buffer::Allocate(Device::Cpu(), kHugePageBytes + 1, "big");
  Buffer small = Buffer::Allocate(Device::Cpu(), 1000, "small");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % kHugePageBytes, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % kBufferAlignment, 0u);
  big.Zero();
  static_cast<char*>(big.data())[kHugePageBytes] = 1;
  EXPECT_EQ(static_cast<char*>(big.data())[kHugePageBytes - 1], 0);
}

TEST(Buffer, CudaRequestWithoutDeviceIsAStatusNotACrash) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  StatusOr<Buffer> b = Buffer::TryAllocate(Device::Cuda(0), 1024, "activations");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(b.status().message().find("activations"), std::string::npos) << b.status().ToString();
}

// What the Trainer compares its memory plan with (launch/memory_plan.h check_memory_fits): on the host,
// MemAvailable or the cgroup's headroom, so positive and at most the machine's MemTotal.
TEST(Buffer, AvailableHostBytesArePositiveAndAtMostMemTotal) {
  StatusOr<size_t> available = available_bytes(Device::Cpu());
  ASSERT_TRUE(available.ok()) << available.status().ToString();
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t total_kib = 0;
  ASSERT_TRUE(meminfo >> key >> total_kib);
  ASSERT_EQ(key, "MemTotal:");
  EXPECT_GT(*available, 0u);
  EXPECT_LE(*available, total_kib * 1024);
  if (!cuda_available()) {
    EXPECT_EQ(available_bytes(Device::Cuda(0)).status().code(), StatusCode::kUnavailable);
  }
}

TEST(Buffer, HugeHostAllocationIsResourceExhausted) {
  StatusOr<Buffer> b = Buffer::TryAllocate(Device::Cpu(), size_t{1} << 62, "huge");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(b.status().message().find("huge"), std::string::npos);
}

TEST(Arena, CarvesAlignedNamedContiguousZeroedViews) {
  Arena arena(Device::Cpu(), 4096, "params");
  TensorView a = arena.Carve("layers.0.attn.q.weight", DType::kF32, {3, 5});
  TensorView b = arena.Carve("layers.0.attn_norm.weight", DType::kF32, {1});
  EXPECT_STREQ(a.name, "layers.0.attn.q.weight");
  EXPECT_STREQ(b.name, "layers.0.attn_norm.weight");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % kBufferAlignment, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % kBufferAlignment, 0u);
  EXPECT_EQ(static_cast<char*>(b.data) - static_cast<char*>(a.data), 256);  // 60 bytes rounded up
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_EQ(a.strides, (Shape{5, 1}));
  for (int i = 0; i < 15; ++i) EXPECT_EQ(a.data_as<float>()[i], 0.0f);
  EXPECT_EQ(arena.used(), 512u);
  EXPECT_EQ(Arena::BytesFor(DType::kF32, {3, 5}), 256u);
}

TEST(Arena, OverflowIsOutOfRangeNamingTheView) {
  Arena arena(Device::Cpu(), 1024, "activations");
  ASSERT_TRUE(arena.TryCarve("x", DType::kF32, {200}).ok());  // 800 -> 1024 bytes with alignment
  StatusOr<TensorView> v = arena.TryCarve("layers.3.mlp.out", DType::kF32, {1});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(v.status().message().find("layers.3.mlp.out"), std::string::npos) << v.status().ToString();
  EXPECT_NE(v.status().message().find("activations"), std::string::npos);
  EXPECT_FALSE(arena.TryCarve("neg", DType::kF32, {-1}).ok());
  arena.Reset();
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_TRUE(arena.TryCarve("again", DType::kF32, {256}).ok());
}

TEST(ArenaDeathTest, CarveOverflowIsFatalWithRankAndName) {
  Arena arena(Device::Cpu(), 256, "grads");
  EXPECT_DEATH(arena.Carve("too.big", DType::kF64, {100}), "host .*too\\.big");
}

TEST(TensorView, TypedAccessChecksDtype) {
  float x[4] = {};
  TensorView v = make_view(x, DType::kF32, {2, 2}, Device::Cpu(), "x");
  EXPECT_EQ(v.data_as<float>(), x);
  EXPECT_EQ(v.nbytes(), 16u);
  EXPECT_EQ(reshape(v, {4}).shape, Shape{4});
  EXPECT_DEATH((void)v.data_as<double>(), "tensor 'x' is f32, accessed as f64");
  EXPECT_DEATH((void)reshape(v, {3}), "changes the element count");
}

}  // namespace
}  // namespace om
