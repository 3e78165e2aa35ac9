// IndexedDataset (.bin/.idx): builder/reader round trips, byte-for-byte agreement with Megatron-LM's
// MMapIndexedDataset layout (bytes built by hand here, independently of the builder), and
// Corruption / NotFound errors that name the damaged file.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "tests/support/test_support.h"

namespace om {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("om_idx_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string prefix(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));  // little-endian host (static_assert in the reader)
}

// The index Megatron writes (megatron/core/datasets/indexed_dataset.py, _IndexWriter), spelled out
// field by field: "MMIDIDX\0\0", u64 version 1, u8 dtype code, u64 sequence count, u64 document
// index count, int32 lengths, int64 byte pointers, int64 document indices.
std::string megatron_index(uint8_t dtype_code, int item_bytes, const std::vector<int32_t>& lengths,
                           const std::vector<int64_t>& document_indices) {
  std::string s("MMIDIDX\0\0", 9);
  put<uint64_t>(s, 1);
  put<uint8_t>(s, dtype_code);
  put<uint64_t>(s, lengths.size());
  put<uint64_t>(s, document_indices.size());
  for (int32_t l : lengths) put<int32_t>(s, l);
  int64_t p = 0;
  for (int32_t l : lengths) {
    put<int64_t>(s, p);
    p += int64_t{l} * item_bytes;
  }
  for (int64_t d : document_indices) put<int64_t>(s, d);
  return s;
}

std::vector<int32_t> read_doc(const IndexedDataset& ds, int64_t d) {
  std::vector<int32_t> out(static_cast<size_t>(ds.document_length(d)));
  ds.ReadTokens(d, 0, out);
  return out;
}

const std::vector<std::vector<int32_t>> kDocs = {{5, 6, 7, 2}, {2}, {}, {65535, 0, 40000, 1, 2}};

void expect_docs(const IndexedDataset& ds, const std::vector<std::vector<int32_t>>& docs) {
  ASSERT_EQ(ds.num_documents(), static_cast<int64_t>(docs.size()));
  int64_t total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(read_doc(ds, static_cast<int64_t>(d)), docs[d]) << "document " << d;
    total += static_cast<int64_t>(docs[d].size());
  }
  EXPECT_EQ(ds.num_tokens(), total);
}

TEST(IndexedDataset, RoundTripU16) {
  TempDir dir;
  const std::string prefix = dir.prefix("u16");
  auto b = IndexedDatasetBuilder::Create(prefix, DType::kU16);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  for (const auto& doc : kDocs) ASSERT_TRUE(b->AddDocument(doc).ok());
  EXPECT_FALSE(fs::exists(prefix + ".bin")) << "published before Finish";
  ASSERT_TRUE(b->Finish().ok());
  EXPECT_FALSE(fs::exists(prefix + ".bin.tmp"));
  EXPECT_FALSE(fs::exists(prefix + ".idx.tmp"));
  EXPECT_EQ(fs::file_size(prefix + ".bin"), 10u * 2u);

  auto ds = IndexedDataset::Open(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->token_dtype(), DType::kU16);
  expect_docs(*ds, kDocs);
  // A window in the middle of a document.
  std::vector<int32_t> mid(2);
  ds->ReadTokens(3, 1, mid);
  EXPECT_EQ(mid, (std::vector<int32_t>{0, 40000}));
}

TEST(IndexedDataset, RoundTripI32) {
  TempDir dir;
  const std::string prefix = dir.prefix("i32");
  const std::vector<std::vector<int32_t>> docs = {{70000, 1, 2147483647}, {3, 2}};
  auto b = IndexedDatasetBuilder::Create(prefix, DType::kI32);
  ASSERT_TRUE(b.ok());
  for (const auto& doc : docs) ASSERT_TRUE(b->AddDocument(doc).ok());
  ASSERT_TRUE(b->Finish().ok());
  auto ds = IndexedDataset::Open(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->token_dtype(), DType::kI32);
  expect_docs(*ds, docs);
}

TEST(IndexedDataset, BuilderWritesMegatronBytesExactly) {
  // The builder's files equal the hand-spelled Megatron layout byte for byte: dtype code 8 (uint16),
  // one sequence per document, document indices 0..n.
  TempDir dir;
  const std::string prefix = dir.prefix("exact");
  auto b = IndexedDatasetBuilder::Create(prefix, DType::kU16);
  ASSERT_TRUE(b.ok());
  for (const auto& doc : kDocs) ASSERT_TRUE(b->AddDocument(doc).ok());
  ASSERT_TRUE(b->Finish().ok());
  EXPECT_EQ(read_bytes(prefix + ".idx"), megatron_index(8, 2, {4, 1, 0, 5}, {0, 1, 2, 3, 4}));
  std::string bin;
  for (const auto& doc : kDocs)
    for (int32_t t : doc) put<uint16_t>(bin, static_cast<uint16_t>(t));
  EXPECT_EQ(read_bytes(prefix + ".bin"), bin);

  auto b32 = IndexedDatasetBuilder::Create(prefix + "32", DType::kI32);
  ASSERT_TRUE(b32.ok());
  ASSERT_TRUE(b32->AddDocument(std::vector<int32_t>{9, 8}).ok());
  ASSERT_TRUE(b32->Finish().ok());
  EXPECT_EQ(read_bytes(prefix + "32.idx"), megatron_index(4, 4, {2}, {0, 1}));
}

TEST(IndexedDataset, ReadsHandWrittenMegatronFiles) {
  // Written here byte by byte, not by the builder. Megatron may split a document into several
  // sequences (--split-sentences): sequences (2, 3, 1) with document indices (0, 2, 3, 3) are
  // documents of 5, 1 and 0 tokens.
  TempDir dir;
  const std::string prefix = dir.prefix("hand");
  write_bytes(prefix + ".idx", megatron_index(8, 2, {2, 3, 1}, {0, 2, 3, 3}));
  std::string bin;
  for (uint16_t t : {11, 12, 13, 14, 15, 16}) put<uint16_t>(bin, t);
  write_bytes(prefix + ".bin", bin);
  auto ds = IndexedDataset::Open(prefix);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  expect_docs(*ds, {{11, 12, 13, 14, 15}, {16}, {}});

  // int32 tokens (dtype code 4), one sequence per document.
  write_bytes(prefix + "32.idx", megatron_index(4, 4, {1, 2}, {0, 1, 2}));
  std::string bin32;
  for (int32_t t : {100000, 7, 123456789}) put<int32_t>(bin32, t);
  write_bytes(prefix + "32.bin", bin32);
  auto ds32 = IndexedDataset::Open(prefix + "32");
  ASSERT_TRUE(ds32.ok()) << ds32.status().ToString();
  EXPECT_EQ(ds32->token_dtype(), DType::kI32);
  expect_docs(*ds32, {{100000}, {7, 123456789}});
}

class IndexedDatasetCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = dir_.prefix("c");
    idx_ = megatron_index(8, 2, {3, 2}, {0, 1, 2});
    for (uint16_t t : {1, 2, 3, 4, 5}) put<uint16_t>(bin_, t);
  }
  // Writes the (possibly damaged) files and expects Open to fail with `code`, naming `file`.
  void ExpectError(StatusCode code, const std::string& file, const std::string& fragment) {
    write_bytes(prefix_ + ".idx", idx_);
    write_bytes(prefix_ + ".bin", bin_);
    auto ds = IndexedDataset::Open(prefix_);
    ASSERT_FALSE(ds.ok());
    const Status s = ds.status();
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_NE(s.message().find("'" + prefix_ + file + "'"), std::string::npos) << s.ToString();
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.ToString();
  }
  TempDir dir_;
  std::string prefix_, idx_, bin_;
};

TEST_F(IndexedDatasetCorruption, IntactFilesOpen) {
  write_bytes(prefix_ + ".idx", idx_);
  write_bytes(prefix_ + ".bin", bin_);
  EXPECT_TRUE(IndexedDataset::Open(prefix_).ok());
}

TEST_F(IndexedDatasetCorruption, TruncatedIndex) {
  idx_.resize(idx_.size() - 8);
  ExpectError(StatusCode::kCorruption, ".idx", "re-run ortho_data preprocess");
}

TEST_F(IndexedDatasetCorruption, IndexShorterThanHeader) {
  idx_.resize(20);
  ExpectError(StatusCode::kCorruption, ".idx", "header");
}

TEST_F(IndexedDatasetCorruption, BadMagic) {
  idx_[0] = 'X';
  ExpectError(StatusCode::kCorruption, ".idx", "MMIDIDX");
}

TEST_F(IndexedDatasetCorruption, WrongVersion) {
  idx_[9] = 2;
  ExpectError(StatusCode::kCorruption, ".idx", "version 2");
}

TEST_F(IndexedDatasetCorruption, UnknownDtypeCode) {
  idx_[17] = 9;
  ExpectError(StatusCode::kCorruption, ".idx", "dtype code 9");
}

TEST_F(IndexedDatasetCorruption, UnsupportedTokenDtype) {
  idx_[17] = 7;  // float32: a valid Megatron code, but not token ids
  ExpectError(StatusCode::kInvalidArgument, ".idx", "float32");
}

TEST_F(IndexedDatasetCorruption, HugeSequenceCount) {
  const uint64_t n = ~uint64_t{0} / 4;  // the size products would overflow without care
  std::memcpy(idx_.data() + 18, &n, 8);
  ExpectError(StatusCode::kCorruption, ".idx", "sequences");
}

TEST_F(IndexedDatasetCorruption, PointersNotBackToBack) {
  const int64_t wrong = 8;  // sequence 1 should start at byte 6
  std::memcpy(idx_.data() + 34 + 2 * 4 + 8, &wrong, 8);
  ExpectError(StatusCode::kCorruption, ".idx", "back to back");
}

TEST_F(IndexedDatasetCorruption, LastDocumentIndexWrong) {
  const int64_t wrong = 1;
  std::memcpy(idx_.data() + idx_.size() - 8, &wrong, 8);
  ExpectError(StatusCode::kCorruption, ".idx", "document indices");
}

TEST_F(IndexedDatasetCorruption, TruncatedBin) {
  bin_.resize(bin_.size() - 2);
  ExpectError(StatusCode::kCorruption, ".bin", "re-run ortho_data preprocess");
}

TEST_F(IndexedDatasetCorruption, MissingBin) {
  write_bytes(prefix_ + ".idx", idx_);
  auto ds = IndexedDataset::Open(prefix_);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ds.status().message().find(prefix_ + ".bin"), std::string::npos) << ds.status().ToString();
}

TEST(IndexedDatasetBuilder, RejectsIdsOutsideTheDtypeAndLeavesNoFiles) {
  TempDir dir;
  const std::string prefix = dir.prefix("bad");
  {
    auto b = IndexedDatasetBuilder::Create(prefix, DType::kU16);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(b->AddDocument(std::vector<int32_t>{1, 2}).ok());
    const Status s = b->AddDocument(std::vector<int32_t>{3, 65536});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("65536"), std::string::npos) << s.ToString();
    EXPECT_EQ(b->AddDocument(std::vector<int32_t>{-1}).code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(fs::exists(prefix + ".bin.tmp"));
  }  // abandoned without Finish
  EXPECT_FALSE(fs::exists(prefix + ".bin.tmp"));
  EXPECT_FALSE(fs::exists(prefix + ".bin"));
  EXPECT_FALSE(fs::exists(prefix + ".idx"));
  EXPECT_EQ(IndexedDatasetBuilder::Create(prefix, DType::kF32).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(IndexedDatasetBuilder::Create(dir.prefix("no/such/dir/x"), DType::kU16).status().code(),
            StatusCode::kIOError);
}

}  // namespace
}  // namespace om
