#include "data/dataset_info.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>
#include <utility>

#include "core/file_util.h"

namespace om {
namespace {

using nlohmann::json;

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

// Field access for a parsed PREFIX.json: every failure becomes a Corruption naming file and key.
class Fields {
 public:
  Fields(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  template <typename T>
  Status Get(const char* key, T* out) const {
    auto it = j_.find(key);
    if (it == j_.end()) return Bad(key, "is missing");
    bool right_type;
    if constexpr (std::is_same_v<T, std::string>) {
      right_type = it->is_string();
    } else if constexpr (std::is_floating_point_v<T>) {
      right_type = it->is_number();
    } else {
      right_type = it->is_number_integer();
    }
    if (!right_type) return Bad(key, "has the wrong type");
    *out = it->get<T>();
    return Status::Ok();
  }

  Status Bad(const char* key, const std::string& what) const {
    return Status::Corruption("dataset info '" + path_ + "': field \"" + key + "\" " + what +
                              "; re-run ortho_data preprocess to regenerate it");
  }

 private:
  const json& j_;
  std::string path_;
};

}  // namespace

StatusOr<uint64_t> file_fnv1a64(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));
  uint64_t h = 0xcbf29ce484222325ull;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      h ^= buf[i];
      h *= 0x100000001b3ull;
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status::IOError("cannot read '" + path + "'");
  return h;
}

Status write_dataset_info(const std::string& prefix, const DatasetInfo& info) {
  json j = {
      {"format", "ortho-megatron indexed dataset (Megatron MMIDIDX .bin/.idx)"},
      {"format_version", info.format_version},
      {"split", info.split},
      {"tokenizer_model", info.tokenizer_model},
      {"tokenizer_fnv1a64", hex64(info.tokenizer_fnv1a64)},
      {"vocab_size", info.vocab_size},
      {"eod_id", info.eod_id},
      {"bos_id", info.bos_id},
      {"num_documents", info.num_documents},
      {"num_tokens", info.num_tokens},
      {"token_dtype", std::string(dtype_name(info.token_dtype))},
      {"valid_fraction", info.valid_fraction},
      {"seed", info.seed},
      {"inputs", info.inputs},
  };
  return write_file_atomically(prefix + ".json", j.dump(2) + "\n");
}

StatusOr<DatasetInfo> read_dataset_info(const std::string& prefix) {
  const std::string path = prefix + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::NotFound("dataset info '" + path + "' does not exist; create the dataset with ortho_data "
                            "preprocess (or fix --data-path '" + prefix + "')");
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  // nlohmann reports bad JSON by exception; it is caught here and never crosses the API.
  try {
    j = json::parse(ss.str());
  } catch (const json::parse_error& e) {
    return Status::Corruption("dataset info '" + path + "' is not valid JSON (" + e.what() +
                              "); re-run ortho_data preprocess to regenerate it");
  }
  if (!j.is_object())
    return Status::Corruption("dataset info '" + path + "' is not a JSON object; re-run ortho_data preprocess");
  Fields fields(j, path);
  DatasetInfo info;
  OM_RETURN_IF_ERROR(fields.Get("format_version", &info.format_version));
  if (info.format_version != kDatasetInfoFormatVersion)
    return fields.Bad("format_version", "is " + std::to_string(info.format_version) + ", this build reads " +
                                            std::to_string(kDatasetInfoFormatVersion));
  std::string fnv, dtype;
  OM_RETURN_IF_ERROR(fields.Get("split", &info.split));
  OM_RETURN_IF_ERROR(fields.Get("tokenizer_model", &info.tokenizer_model));
  OM_RETURN_IF_ERROR(fields.Get("tokenizer_fnv1a64", &fnv));
  OM_RETURN_IF_ERROR(fields.Get("vocab_size", &info.vocab_size));
  OM_RETURN_IF_ERROR(fields.Get("eod_id", &info.eod_id));
  OM_RETURN_IF_ERROR(fields.Get("bos_id", &info.bos_id));
  OM_RETURN_IF_ERROR(fields.Get("num_documents", &info.num_documents));
  OM_RETURN_IF_ERROR(fields.Get("num_tokens", &info.num_tokens));
  OM_RETURN_IF_ERROR(fields.Get("token_dtype", &dtype));
  OM_RETURN_IF_ERROR(fields.Get("valid_fraction", &info.valid_fraction));
  OM_RETURN_IF_ERROR(fields.Get("seed", &info.seed));
  if (std::sscanf(fnv.c_str(), "0x%" SCNx64, &info.tokenizer_fnv1a64) != 1)
    return fields.Bad("tokenizer_fnv1a64", "is not a 0x-prefixed hex number");
  if (dtype == dtype_name(DType::kU16)) {
    info.token_dtype = DType::kU16;
  } else if (dtype == dtype_name(DType::kI32)) {
    info.token_dtype = DType::kI32;
  } else {
    return fields.Bad("token_dtype", "is '" + dtype + "', not u16 or i32");
  }
  auto inputs = j.find("inputs");
  if (inputs != j.end() && inputs->is_array()) {
    for (const json& v : *inputs)
      if (v.is_string()) info.inputs.push_back(v.get<std::string>());
  }
  if (info.vocab_size <= 0 || info.eod_id < 0 || info.eod_id >= info.vocab_size)
    return fields.Bad("eod_id", "(" + std::to_string(info.eod_id) + ") is outside vocab_size " +
                                    std::to_string(info.vocab_size));
  return info;
}

Status verify_dataset_info(const std::string& prefix, const DatasetInfo& info, const IndexedDataset& dataset) {
  auto mismatch = [&](const char* what, const std::string& json_value, const std::string& data_value) {
    return Status::FailedPrecondition("dataset '" + prefix + "': " + prefix + ".json says " + what + " " +
                                      json_value + " but " + prefix + ".idx holds " + data_value +
                                      "; the files come from different runs, re-run ortho_data preprocess");
  };
  if (info.num_documents != dataset.num_documents())
    return mismatch("num_documents", std::to_string(info.num_documents), std::to_string(dataset.num_documents()));
  if (info.num_tokens != dataset.num_tokens())
    return mismatch("num_tokens", std::to_string(info.num_tokens), std::to_string(dataset.num_tokens()));
  if (info.token_dtype != dataset.token_dtype())
    return mismatch("token_dtype", std::string(dtype_name(info.token_dtype)),
                    std::string(dtype_name(dataset.token_dtype())));
  return Status::Ok();
}

}  // namespace om
