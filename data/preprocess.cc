#include "data/preprocess.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/log.h"
#include "core/timer.h"
#include "data/dataset_info.h"
#include "data/heldout.h"
#include "data/indexed_dataset.h"

namespace om {
namespace {

using nlohmann::json;

constexpr double kProgressSeconds = 10.0;  // how often long runs log progress

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// Inputs as absolute, normalised paths, so "data/x.jsonl" and "../repo/data/x.jsonl" compare equal.
std::vector<std::string> canonical_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const std::string& p : inputs) {
    std::error_code ec;
    const std::filesystem::path c = std::filesystem::weakly_canonical(p, ec);
    out.push_back(ec ? p : c.string());
  }
  return out;
}

Status check_split(const SplitOptions& split) {
  if (!(split.valid_fraction >= 0.0 && split.valid_fraction < 1.0))
    return Status::InvalidArgument("--valid-fraction " + number(split.valid_fraction) +
                                   " must be in [0, 1) (0 writes no validation split)");
  return Status::Ok();
}

// MODEL_PREFIX.json for a tokenizer MODEL_PREFIX.model: how it was trained.
std::string tokenizer_record_path(const std::string& model_path) {
  std::string p = model_path;
  const std::string suffix = ".model";
  if (p.size() > suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0)
    p.resize(p.size() - suffix.size());
  return p + ".json";
}

json reader_json(const ReaderOptions& r) {
  return {{"input_format", input_format_name(r.format)},
          {"json_key", r.json_key},
          {"text_split", text_split_name(r.text_split)}};
}

Status write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return Status::IOError("cannot create '" + tmp + "': " + std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::IOError("cannot write '" + path + "'");
  }
  return Status::Ok();
}

// Refuses a split that differs from the one the tokenizer was trained with on the same inputs.
Status check_against_tokenizer_record(const PreprocessConfig& config) {
  const std::string path = tokenizer_record_path(config.tokenizer_model);
  std::ifstream in(path);
  if (!in) {
    OM_LOG_INFO("no training record '%s' next to the tokenizer; cannot check that held-out documents were kept "
                "out of tokenizer training", path.c_str());
    return Status::Ok();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("inputs") || !j.contains("split") ||
      !j.contains("reader")) {
    OM_LOG_WARN("tokenizer training record '%s' is unreadable; skipping the held-out consistency check",
                path.c_str());
    return Status::Ok();
  }
  if (j["inputs"] != json(canonical_inputs(config.inputs))) {
    OM_LOG_INFO("the tokenizer was trained on other inputs (%s); held-out consistency not checked", path.c_str());
    return Status::Ok();
  }
  const json& s = j["split"];
  const bool same_split = s.value("valid_fraction", -1.0) == config.split.valid_fraction &&
                          s.value("seed", uint64_t{0}) == config.split.seed &&
                          j["reader"] == reader_json(config.reader);
  if (!same_split)
    return Status::InvalidArgument(
        "the tokenizer '" + config.tokenizer_model + "' was trained on these inputs with --valid-fraction " +
        s.value("valid_fraction", json(-1.0)).dump() + " --seed " + s.value("seed", json(0)).dump() +
        " and reader options " + j["reader"].dump() + " (" + path + "); preprocess with the same values, or "
        "the validation documents differ from those kept out of tokenizer training");
  return Status::Ok();
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

StatusOr<TokenizerTrainReport> run_tokenizer_train(const TokenizerTrainConfig& config) {
  OM_RETURN_IF_ERROR(check_split(config.split));
  OM_ASSIGN_OR_RETURN(DocumentStream stream, DocumentStream::Open(config.inputs, config.reader));
  Timer timer;
  TokenizerTrainReport report;
  // Documents are pulled one at a time and cut into training lines; only the current document's
  // lines are held, so memory stays small apart from what SentencePiece itself keeps.
  std::vector<std::string> pending;
  size_t next = 0;
  Document doc;
  TrainingLineSource source = [&](std::string* line) -> StatusOr<bool> {
    while (next == pending.size()) {
      OM_ASSIGN_OR_RETURN(bool more, stream.Next(&doc));
      if (!more) return false;
      if (is_heldout(doc.index, config.split.valid_fraction, config.split.seed)) {
        ++report.documents_heldout;
        continue;
      }
      ++report.documents_used;
      pending = split_for_tokenizer_training(doc.text);
      next = 0;
    }
    *line = std::move(pending[next++]);
    ++report.lines;
    report.bytes += static_cast<int64_t>(line->size());
    return true;
  };
  OM_RETURN_IF_ERROR(train_tokenizer(source, config.tokenizer));

  json record = {
      {"tokenizer", config.tokenizer.model_prefix + ".model"},
      {"vocab_size", config.tokenizer.vocab_size},
      {"algorithm", "sentencepiece bpe, byte_fallback, identity normalization, split_digits"},
      {"inputs", canonical_inputs(config.inputs)},
      {"reader", reader_json(config.reader)},
      {"split", {{"valid_fraction", config.split.valid_fraction}, {"seed", config.split.seed}}},
      {"documents_used", report.documents_used},
      {"documents_heldout", report.documents_heldout},
      {"training_lines", report.lines},
      {"training_bytes", report.bytes},
  };
  OM_RETURN_IF_ERROR(write_text_file(config.tokenizer.model_prefix + ".json", record.dump(2) + "\n"));
  report.seconds = timer.Seconds();
  return report;
}

StatusOr<PreprocessReport> run_preprocess(const PreprocessConfig& config) {
  OM_RETURN_IF_ERROR(check_split(config.split));
  if (config.output_prefix.empty()) return Status::InvalidArgument("--output-prefix is empty");
  OM_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::Load(config.tokenizer_model));
  OM_ASSIGN_OR_RETURN(uint64_t fingerprint, file_fnv1a64(config.tokenizer_model));
  OM_RETURN_IF_ERROR(check_against_tokenizer_record(config));
  OM_ASSIGN_OR_RETURN(DocumentStream stream, DocumentStream::Open(config.inputs, config.reader));

  PreprocessReport report;
  report.vocab_size = tokenizer.vocab_size();
  report.token_dtype = tokenizer.vocab_size() <= 65535 ? DType::kU16 : DType::kI32;
  const bool with_valid = config.split.valid_fraction > 0.0;
  const std::string train_prefix = config.output_prefix + "_train", valid_prefix = config.output_prefix + "_valid";
  OM_ASSIGN_OR_RETURN(IndexedDatasetBuilder train, IndexedDatasetBuilder::Create(train_prefix, report.token_dtype));
  std::optional<IndexedDatasetBuilder> valid;
  if (with_valid) {
    OM_ASSIGN_OR_RETURN(IndexedDatasetBuilder v, IndexedDatasetBuilder::Create(valid_prefix, report.token_dtype));
    valid.emplace(std::move(v));
  }

  Timer timer, progress;
  Document doc;
  while (true) {
    OM_ASSIGN_OR_RETURN(bool more, stream.Next(&doc));
    if (!more) break;
    OM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(doc.text));
    ids.push_back(tokenizer.eod_id());
    const bool heldout = is_heldout(doc.index, config.split.valid_fraction, config.split.seed);
    IndexedDatasetBuilder& out = heldout ? *valid : train;
    SplitCounts& counts = heldout ? report.valid : report.train;
    OM_RETURN_IF_ERROR(out.AddDocument(ids).WithContext(doc.source));
    ++counts.documents;
    counts.tokens += static_cast<int64_t>(ids.size());
    if (progress.Seconds() > kProgressSeconds) {
      progress.Reset();
      OM_LOG_INFO("preprocess: %lld documents, %lld tokens (%.0f tokens/s)",
                  static_cast<long long>(report.train.documents + report.valid.documents),
                  static_cast<long long>(report.train.tokens + report.valid.tokens),
                  static_cast<double>(report.train.tokens + report.valid.tokens) / timer.Seconds());
    }
  }
  report.empty_skipped = stream.empty_skipped();
  // Refuse before publishing anything: an empty split would only fail later, in the trainer.
  if (report.train.documents == 0)
    return Status::InvalidArgument("the training split is empty (" + std::to_string(report.valid.documents) +
                                   " documents, all held out); lower --valid-fraction or add inputs");
  if (with_valid && report.valid.documents == 0)
    return Status::InvalidArgument("no document was held out of " + std::to_string(report.train.documents) +
                                   " with --valid-fraction " + number(config.split.valid_fraction) +
                                   "; raise it, change --seed, or pass --valid-fraction 0 for no validation split");

  DatasetInfo info;
  info.tokenizer_model = config.tokenizer_model;
  info.tokenizer_fnv1a64 = fingerprint;
  info.vocab_size = tokenizer.vocab_size();
  info.eod_id = tokenizer.eod_id();
  info.bos_id = tokenizer.bos_id();
  info.token_dtype = report.token_dtype;
  info.valid_fraction = config.split.valid_fraction;
  info.seed = config.split.seed;
  info.inputs = config.inputs;
  OM_RETURN_IF_ERROR(train.Finish());
  info.split = "train";
  info.num_documents = report.train.documents;
  info.num_tokens = report.train.tokens;
  OM_RETURN_IF_ERROR(write_dataset_info(train_prefix, info));
  if (with_valid) {
    OM_RETURN_IF_ERROR(valid->Finish());
    info.split = "valid";
    info.num_documents = report.valid.documents;
    info.num_tokens = report.valid.tokens;
    OM_RETURN_IF_ERROR(write_dataset_info(valid_prefix, info));
  }
  report.seconds = timer.Seconds();
  return report;
}

StatusOr<std::string> inspect_dataset(const InspectConfig& config) {
  if (config.data_path.empty()) return Status::InvalidArgument("--data-path is empty");
  OM_ASSIGN_OR_RETURN(IndexedDataset data, IndexedDataset::Open(config.data_path));
  std::ostringstream out;
  const int64_t D = data.num_documents();
  out << "dataset " << config.data_path << ": " << D << " documents, " << data.num_tokens() << " tokens ("
      << dtype_name(data.token_dtype()) << ")\n";
  if (D > 0) {
    std::vector<int64_t> lengths(static_cast<size_t>(D));
    for (int64_t d = 0; d < D; ++d) lengths[d] = data.document_length(d);
    std::vector<int64_t> sorted = lengths;
    std::sort(sorted.begin(), sorted.end());
    out << "  document length: min " << sorted.front() << ", median " << sorted[sorted.size() / 2] << ", mean "
        << static_cast<double>(data.num_tokens()) / static_cast<double>(D) << ", max " << sorted.back() << "\n";
  }

  std::string tokenizer_path = config.tokenizer_model;
  std::optional<int32_t> eod;
  StatusOr<DatasetInfo> info = read_dataset_info(config.data_path);
  if (info.ok()) {
    const DatasetInfo& i = *info;
    out << "  info " << config.data_path << ".json: split " << i.split << ", tokenizer " << i.tokenizer_model
        << " (vocab " << i.vocab_size << ", eod " << i.eod_id << ", bos " << i.bos_id << "), valid fraction "
        << i.valid_fraction << ", seed " << i.seed << "\n";
    const Status v = verify_dataset_info(config.data_path, i, data);
    out << "  info matches the .idx: " << (v.ok() ? "yes" : v.message()) << "\n";
    if (tokenizer_path.empty()) {
      struct stat st;
      if (::stat(i.tokenizer_model.c_str(), &st) == 0) tokenizer_path = i.tokenizer_model;
    }
    eod = i.eod_id;
  } else {
    out << "  info: " << info.status().message() << "\n";
  }
  std::optional<Tokenizer> tokenizer;
  if (!tokenizer_path.empty()) {
    OM_ASSIGN_OR_RETURN(Tokenizer t, Tokenizer::Load(tokenizer_path));
    if (!eod) eod = t.eod_id();
    tokenizer.emplace(std::move(t));
  }
  if (eod) {
    int64_t ending = 0;
    int32_t last = 0;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t len = data.document_length(d);
      if (len == 0) continue;
      data.ReadTokens(d, len - 1, std::span<int32_t>(&last, 1));
      ending += last == *eod;
    }
    out << "  documents ending with the end-of-document token " << *eod << ": " << ending << " of " << D << "\n";
  }
  for (int64_t d = 0; d < std::min(D, config.num_docs); ++d) {
    const int64_t len = data.document_length(d);
    std::vector<int32_t> ids(static_cast<size_t>(std::min(len, config.tokens_shown)));
    data.ReadTokens(d, 0, ids);
    out << "document " << d << ": " << len << " tokens\n  ids:";
    for (int32_t id : ids) out << ' ' << id;
    out << (len > static_cast<int64_t>(ids.size()) ? " ...\n" : "\n");
    if (tokenizer) {
      StatusOr<std::string> text = tokenizer->Decode(ids);
      out << "  text: " << (text.ok() ? "\"" + printable(*text) + "\"" : text.status().message()) << "\n";
    }
  }
  return out.str();
}

}  // namespace om
