#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "core/check.h"

namespace om {
namespace {

static_assert(std::endian::native == std::endian::little, "the .bin/.idx format is little-endian");

// Layout constants of Megatron-LM's MMapIndexedDataset index (data/FORMAT.md).
constexpr char kIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr uint64_t kIndexVersion = 1;
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;  // magic, version, dtype code, #sequences, #doc indices

// Megatron's DType enum (megatron/core/datasets/indexed_dataset.py).
enum class MegatronDTypeCode : uint8_t {
  kUint8 = 1, kInt8 = 2, kInt16 = 3, kInt32 = 4, kInt64 = 5, kFloat64 = 6, kFloat32 = 7, kUint16 = 8,
};

const char* megatron_dtype_name(uint8_t code) {
  switch (code) {
    case 1: return "uint8";
    case 2: return "int8";
    case 3: return "int16";
    case 4: return "int32";
    case 5: return "int64";
    case 6: return "float64";
    case 7: return "float32";
    case 8: return "uint16";
    default: return nullptr;
  }
}

// The arrays after the 34-byte header are not naturally aligned, so every read goes through memcpy.
template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::string regenerate_hint(const std::string& prefix) {
  return "; re-run ortho_data preprocess to regenerate '" + prefix + "'";
}

std::string errno_text() { return std::strerror(errno); }

// A whole file mapped read-only. An empty file has no mapping (mmap rejects length 0).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      Unmap();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { Unmap(); }

  static StatusOr<MappedFile> Open(const std::string& path, const std::string& prefix) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT)
        return Status::NotFound("dataset file '" + path + "' does not exist; create the dataset with " +
                                "ortho_data preprocess --output-prefix ... (or fix --data-path '" + prefix + "')");
      return Status::IOError("cannot open dataset file '" + path + "': " + errno_text());
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Status s = Status::IOError("cannot stat dataset file '" + path + "': " + errno_text());
      ::close(fd);
      return s;
    }
    MappedFile f;
    f.size_ = static_cast<size_t>(st.st_size);
    if (f.size_ > 0) {
      void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        Status s = Status::IOError("cannot memory-map dataset file '" + path + "': " + errno_text());
        ::close(fd);
        return s;
      }
      f.data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
    return f;
  }

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void Unmap() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

Status write_all(std::FILE* f, const void* data, size_t bytes, const std::string& path) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, f) != bytes)
    return Status::IOError("cannot write '" + path + "': " + errno_text() + " (disk full?)");
  return Status::Ok();
}

// Flushes, fsyncs and closes; the FILE* is closed even on failure.
Status close_durably(std::FILE* f, const std::string& path) {
  bool ok = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  std::string why = ok ? "" : errno_text();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return Status::IOError("cannot finish writing '" + path + "': " + (why.empty() ? errno_text() : why));
  return Status::Ok();
}

void fsync_directory_of(const std::string& path) {
  // Makes the renames durable. Best effort: some filesystems refuse fsync on directories.
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// ---- Builder ------------------------------------------------------------------------------------

struct IndexedDatasetBuilder::Impl {
  std::string prefix;
  DType dtype = DType::kU16;
  std::FILE* bin = nullptr;
  std::vector<int32_t> sequence_lengths;  // one sequence per document
  std::vector<uint8_t> scratch;           // the document's tokens in the file dtype
  bool finished = false;

  std::string bin_tmp() const { return prefix + ".bin.tmp"; }
  std::string idx_tmp() const { return prefix + ".idx.tmp"; }

  ~Impl() {
    // Abandoned before Finish (an error upstream): leave nothing half-written behind.
    if (bin != nullptr) std::fclose(bin);
    if (!finished) {
      std::remove(bin_tmp().c_str());
      std::remove(idx_tmp().c_str());
    }
  }
};

IndexedDatasetBuilder::IndexedDatasetBuilder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IndexedDatasetBuilder::IndexedDatasetBuilder(IndexedDatasetBuilder&&) noexcept = default;
IndexedDatasetBuilder& IndexedDatasetBuilder::operator=(IndexedDatasetBuilder&&) noexcept = default;
IndexedDatasetBuilder::~IndexedDatasetBuilder() = default;

StatusOr<IndexedDatasetBuilder> IndexedDatasetBuilder::Create(const std::string& prefix, DType token_dtype) {
  if (token_dtype != DType::kU16 && token_dtype != DType::kI32)
    return Status::InvalidArgument("dataset '" + prefix + "': token dtype " + std::string(dtype_name(token_dtype)) +
                                   " is not supported; use u16 (vocabulary <= 65535) or i32");
  if (prefix.empty()) return Status::InvalidArgument("dataset output prefix is empty; pass --output-prefix");
  auto impl = std::make_unique<Impl>();
  impl->prefix = prefix;
  impl->dtype = token_dtype;
  impl->bin = std::fopen(impl->bin_tmp().c_str(), "wb");
  if (impl->bin == nullptr)
    return Status::IOError("cannot create '" + impl->bin_tmp() + "': " + errno_text() +
                           " (does the output directory exist and is it writable?)");
  return IndexedDatasetBuilder(std::move(impl));
}

Status IndexedDatasetBuilder::AddDocument(std::span<const int32_t> tokens) {
  OM_CHECK(impl_ != nullptr && !impl_->finished, "AddDocument after Finish on dataset builder");
  Impl& m = *impl_;
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return Status::InvalidArgument("dataset '" + m.prefix + "': a document of " + std::to_string(tokens.size()) +
                                   " tokens exceeds the format's int32 sequence length; split the document");
  const int64_t max_id = m.dtype == DType::kU16 ? std::numeric_limits<uint16_t>::max()
                                                : std::numeric_limits<int32_t>::max();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] > max_id)
      return Status::InvalidArgument("dataset '" + m.prefix + "': token id " + std::to_string(tokens[i]) +
                                     " at position " + std::to_string(i) + " does not fit the " +
                                     std::string(dtype_name(m.dtype)) + " token dtype");
  }
  const size_t bytes = tokens.size() * dtype_size(m.dtype);
  if (m.dtype == DType::kI32) {
    OM_RETURN_IF_ERROR(write_all(m.bin, tokens.data(), bytes, m.bin_tmp()));
  } else {
    m.scratch.resize(bytes);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const uint16_t v = static_cast<uint16_t>(tokens[i]);
      std::memcpy(m.scratch.data() + 2 * i, &v, 2);
    }
    OM_RETURN_IF_ERROR(write_all(m.bin, m.scratch.data(), bytes, m.bin_tmp()));
  }
  m.sequence_lengths.push_back(static_cast<int32_t>(tokens.size()));
  return Status::Ok();
}

Status IndexedDatasetBuilder::Finish() {
  OM_CHECK(impl_ != nullptr && !impl_->finished, "Finish called twice on dataset builder");
  Impl& m = *impl_;
  std::FILE* bin = std::exchange(m.bin, nullptr);
  OM_RETURN_IF_ERROR(close_durably(bin, m.bin_tmp()));

  // Serialise the whole index in memory (20 bytes per document), then write it in one go.
  const uint64_t n = m.sequence_lengths.size();
  const uint64_t doc_index_count = n + 1;  // document_indices = 0, 1, ..., n
  const uint8_t code = static_cast<uint8_t>(m.dtype == DType::kU16 ? MegatronDTypeCode::kUint16
                                                                   : MegatronDTypeCode::kInt32);
  std::string idx;
  idx.reserve(kHeaderBytes + 20 * n + 8);
  auto put = [&idx](const auto& v) { idx.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  idx.append(kIndexMagic, sizeof(kIndexMagic));
  put(kIndexVersion);
  put(code);
  put(n);
  put(doc_index_count);
  for (int32_t len : m.sequence_lengths) put(len);
  int64_t pointer = 0;
  for (int32_t len : m.sequence_lengths) {
    put(pointer);
    pointer += static_cast<int64_t>(len) * static_cast<int64_t>(dtype_size(m.dtype));
  }
  for (uint64_t d = 0; d <= n; ++d) put(static_cast<int64_t>(d));

  std::FILE* f = std::fopen(m.idx_tmp().c_str(), "wb");
  if (f == nullptr) return Status::IOError("cannot create '" + m.idx_tmp() + "': " + errno_text());
  Status s = write_all(f, idx.data(), idx.size(), m.idx_tmp());
  Status c = close_durably(f, m.idx_tmp());
  OM_RETURN_IF_ERROR(s);
  OM_RETURN_IF_ERROR(c);

  // Publish: the .bin first, so a crash in between leaves an index that fails validation against
  // the new .bin rather than a valid-looking pair.
  for (const char* ext : {".bin", ".idx"}) {
    const std::string tmp = m.prefix + ext + ".tmp", final_path = m.prefix + ext;
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0)
      return Status::IOError("cannot rename '" + tmp + "' to '" + final_path + "': " + errno_text());
  }
  fsync_directory_of(m.prefix + ".idx");
  m.finished = true;
  return Status::Ok();
}

// ---- Reader -------------------------------------------------------------------------------------

struct IndexedDataset::Impl {
  std::string prefix;
  MappedFile idx, bin;
  DType dtype = DType::kU16;
  int64_t itemsize = 2;
  int64_t num_sequences = 0;
  int64_t num_documents = 0;  // document index entries - 1
  int64_t num_tokens = 0;
  const uint8_t* lengths = nullptr;      // int32[num_sequences]
  const uint8_t* pointers = nullptr;     // int64[num_sequences], byte offsets into .bin
  const uint8_t* doc_indices = nullptr;  // int64[num_documents + 1]

  int64_t sequence_pointer(int64_t s) const { return load_le<int64_t>(pointers + 8 * s); }
  int64_t doc_index(int64_t d) const { return load_le<int64_t>(doc_indices + 8 * d); }
  // Token offset of document d's first token in the .bin (= in the concatenated stream).
  int64_t document_start(int64_t d) const {
    const int64_t s = doc_index(d);
    return s < num_sequences ? sequence_pointer(s) / itemsize : num_tokens;
  }
};

IndexedDataset::IndexedDataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IndexedDataset::IndexedDataset(IndexedDataset&&) noexcept = default;
IndexedDataset& IndexedDataset::operator=(IndexedDataset&&) noexcept = default;
IndexedDataset::~IndexedDataset() = default;

StatusOr<IndexedDataset> IndexedDataset::Open(const std::string& prefix) {
  auto m = std::make_unique<Impl>();
  m->prefix = prefix;
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  OM_ASSIGN_OR_RETURN(m->idx, MappedFile::Open(idx_path, prefix));
  OM_ASSIGN_OR_RETURN(m->bin, MappedFile::Open(bin_path, prefix));
  const std::string hint = regenerate_hint(prefix);
  auto corrupt = [&](const std::string& file, const std::string& what) {
    return Status::Corruption("dataset file '" + file + "' " + what + hint);
  };

  const uint8_t* p = m->idx.data();
  const uint64_t idx_size = m->idx.size();
  if (idx_size < kHeaderBytes)
    return corrupt(idx_path, "is " + std::to_string(idx_size) + " bytes, shorter than the " +
                                 std::to_string(kHeaderBytes) + "-byte header (truncated?)");
  if (std::memcmp(p, kIndexMagic, sizeof(kIndexMagic)) != 0)
    return corrupt(idx_path, "does not start with the MMIDIDX magic: not a Megatron indexed-dataset index");
  const uint64_t version = load_le<uint64_t>(p + 9);
  if (version != kIndexVersion)
    return corrupt(idx_path, "has format version " + std::to_string(version) + "; only version 1 exists");
  const uint8_t code = p[17];
  const char* code_name = megatron_dtype_name(code);
  if (code_name == nullptr) return corrupt(idx_path, "has unknown token dtype code " + std::to_string(code));
  if (code == static_cast<uint8_t>(MegatronDTypeCode::kUint16)) {
    m->dtype = DType::kU16;
  } else if (code == static_cast<uint8_t>(MegatronDTypeCode::kInt32)) {
    m->dtype = DType::kI32;
  } else {
    return Status::InvalidArgument("dataset file '" + idx_path + "' stores tokens as " + code_name +
                                   "; ortho-megatron reads uint16 and int32 tokens" + hint);
  }
  m->itemsize = static_cast<int64_t>(dtype_size(m->dtype));
  const uint64_t n = load_le<uint64_t>(p + 18);
  const uint64_t doc_index_count = load_le<uint64_t>(p + 26);

  // Size check before touching the arrays; the divisions keep the products from overflowing.
  const uint64_t body = idx_size - kHeaderBytes;
  if (doc_index_count == 0 || n > body / 12 || doc_index_count > (body - 12 * n) / 8 ||
      body != 12 * n + 8 * doc_index_count) {
    return corrupt(idx_path, "is " + std::to_string(idx_size) + " bytes, but its header declares " +
                                 std::to_string(n) + " sequences and " + std::to_string(doc_index_count) +
                                 " document indices (" +
                                 (n <= body / 12 && doc_index_count <= body / 8
                                      ? std::to_string(kHeaderBytes + 12 * n + 8 * doc_index_count)
                                      : std::string("more than that many")) +
                                 " bytes expected; truncated, or written with per-sequence modes)");
  }
  m->num_sequences = static_cast<int64_t>(n);
  m->num_documents = static_cast<int64_t>(doc_index_count) - 1;
  m->lengths = p + kHeaderBytes;
  m->pointers = m->lengths + 4 * n;
  m->doc_indices = m->pointers + 8 * n;

  // Document indices: 0 first, non-decreasing, n last (Megatron asserts the last one too).
  if (m->doc_index(0) != 0) return corrupt(idx_path, "has a first document index other than 0");
  for (int64_t d = 0; d < m->num_documents; ++d) {
    if (m->doc_index(d + 1) < m->doc_index(d))
      return corrupt(idx_path, "has decreasing document indices at document " + std::to_string(d));
  }
  if (m->doc_index(m->num_documents) != m->num_sequences)
    return corrupt(idx_path, "ends its document indices at " + std::to_string(m->doc_index(m->num_documents)) +
                                 " instead of the sequence count " + std::to_string(n));

  // Sequences must tile the .bin back to back: that makes the .bin the concatenated token stream.
  int64_t expected_pointer = 0;
  for (int64_t s = 0; s < m->num_sequences; ++s) {
    const int32_t len = load_le<int32_t>(m->lengths + 4 * s);
    if (len < 0) return corrupt(idx_path, "has a negative length for sequence " + std::to_string(s));
    if (m->sequence_pointer(s) != expected_pointer)
      return corrupt(idx_path, "has sequence " + std::to_string(s) + " at byte " +
                                   std::to_string(m->sequence_pointer(s)) + " instead of " +
                                   std::to_string(expected_pointer) + " (sequences must be back to back)");
    expected_pointer += static_cast<int64_t>(len) * m->itemsize;
  }
  if (static_cast<uint64_t>(expected_pointer) != m->bin.size())
    return corrupt(bin_path, "is " + std::to_string(m->bin.size()) + " bytes, but its index '" + idx_path +
                                 "' describes " + std::to_string(expected_pointer) + " bytes of " + code_name +
                                 " tokens (truncated, or the two files come from different runs)");
  m->num_tokens = expected_pointer / m->itemsize;
  return IndexedDataset(std::move(m));
}

int64_t IndexedDataset::num_documents() const { return impl_->num_documents; }
int64_t IndexedDataset::num_tokens() const { return impl_->num_tokens; }
DType IndexedDataset::token_dtype() const { return impl_->dtype; }

int64_t IndexedDataset::document_length(int64_t doc) const {
  OM_CHECK(doc >= 0 && doc < impl_->num_documents, "document %lld out of range [0, %lld)",
           static_cast<long long>(doc), static_cast<long long>(impl_->num_documents));
  return impl_->document_start(doc + 1) - impl_->document_start(doc);
}

void IndexedDataset::ReadTokens(int64_t doc, int64_t offset, std::span<int32_t> out) const {
  const int64_t len = document_length(doc);
  const int64_t count = static_cast<int64_t>(out.size());
  OM_CHECK(offset >= 0 && offset + count <= len, "tokens [%lld, %lld) outside document %lld of length %lld",
           static_cast<long long>(offset), static_cast<long long>(offset + count), static_cast<long long>(doc),
           static_cast<long long>(len));
  const int64_t start = impl_->document_start(doc) + offset;
  const uint8_t* src = impl_->bin.data() + start * impl_->itemsize;
  if (count == 0) return;
  if (impl_->dtype == DType::kI32) {
    std::memcpy(out.data(), src, static_cast<size_t>(count) * 4);
  } else {
    // The .bin mapping is page-aligned and sequence pointers are multiples of the item size.
    const uint16_t* s16 = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < count; ++i) out[i] = s16[i];
  }
}

}  // namespace om
