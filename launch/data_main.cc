// ortho_data: tokenizer training, dataset preprocessing and inspection (data/preprocess.h does the
// work; this file parses flags). Subcommands:
//   ortho_data tokenizer-train --input F [--input F2 ...] --model-prefix P --vocab-size N
//   ortho_data preprocess --input F [...] --tokenizer-model P.model --output-prefix OUT
//   ortho_data inspect --data-path PREFIX [--tokenizer-model M] [--num-docs K]
// tokenizer-train and preprocess share --valid-fraction/--seed (the held-out split) and the reader
// flags; give both the same values. Exit status: 0 ok, 1 failure, 2 bad flag or subcommand.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "data/preprocess.h"

namespace po = boost::program_options;

namespace {

constexpr int kExitOk = 0, kExitFailure = 1, kExitBadFlag = 2;

const char* kUsage =
    "usage: ortho_data <subcommand> [flags]   (ortho_data <subcommand> --help for its flags)\n"
    "  tokenizer-train  train a SentencePiece BPE tokenizer on the inputs (held-out documents excluded)\n"
    "  preprocess       tokenize the inputs into OUT_train / OUT_valid Megatron .bin/.idx datasets\n"
    "  inspect          summarise a dataset: counts, lengths, first tokens decoded\n";

struct Flags {
  std::vector<std::string> inputs;
  std::string input_format = "auto", json_key = "text", text_split = "file";
  double valid_fraction = 0.05;
  uint64_t seed = 1234;
};

void add_input_flags(po::options_description& desc, Flags& f) {
  desc.add_options()("input", po::value(&f.inputs)->required()->composing(),
                     "input file, repeatable: JSON lines (.jsonl/.json) or text (.txt), optionally .gz")(
      "input-format", po::value(&f.input_format)->default_value(f.input_format), "auto | jsonl | text")(
      "json-key", po::value(&f.json_key)->default_value(f.json_key), "JSON lines: the field holding the text")(
      "text-split", po::value(&f.text_split)->default_value(f.text_split),
      "plain text: one document per 'file' or per 'blank-line'-separated block")(
      "valid-fraction", po::value(&f.valid_fraction)->default_value(f.valid_fraction),
      "share of documents held out for validation, in [0, 1); same value for tokenizer-train and preprocess")(
      "seed", po::value(&f.seed)->default_value(f.seed), "seed of the held-out split");
}

// Turns the shared flags into reader and split options; a bad value is a flag error.
bool to_options(const Flags& f, om::ReaderOptions* reader, om::SplitOptions* split) {
  om::StatusOr<om::InputFormat> format = om::parse_input_format(f.input_format);
  om::StatusOr<om::TextSplit> text_split = om::parse_text_split(f.text_split);
  for (const om::Status& s : {format.status(), text_split.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "ortho_data: %s\n", s.message().c_str());
      return false;
    }
  }
  reader->format = *format;
  reader->text_split = *text_split;
  reader->json_key = f.json_key;
  split->valid_fraction = f.valid_fraction;
  split->seed = f.seed;
  return true;
}

// Parses args into vm; prints help (returns kExitOk) or the error (kExitBadFlag); -1 to go on.
int parse(const std::string& command, const std::vector<std::string>& args, const po::options_description& desc,
          po::variables_map& vm) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << "ortho_data " << command << "\n" << desc;
      return kExitOk;
    }
  }
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "ortho_data %s: %s\nrun ortho_data %s --help for the flags\n", command.c_str(), e.what(),
                 command.c_str());
    return kExitBadFlag;
  }
  return -1;
}

int fail(const std::string& command, const om::Status& s) {
  std::fprintf(stderr, "ortho_data %s: %s\n", command.c_str(), s.ToString().c_str());
  return s.code() == om::StatusCode::kInvalidArgument && s.message().rfind("--", 0) == 0 ? kExitBadFlag
                                                                                          : kExitFailure;
}

int tokenizer_train(const std::vector<std::string>& args) {
  const std::string cmd = "tokenizer-train";
  Flags f;
  om::TokenizerTrainConfig config;
  po::options_description desc("train a SentencePiece BPE tokenizer (byte fallback) on the non-held-out documents");
  add_input_flags(desc, f);
  desc.add_options()("model-prefix", po::value(&config.tokenizer.model_prefix)->required(),
                     "writes PREFIX.model, PREFIX.vocab and PREFIX.json (how it was trained)")(
      "vocab-size", po::value(&config.tokenizer.vocab_size)->required(), "vocabulary size (>= 300)")(
      "threads", po::value(&config.tokenizer.num_threads)->default_value(2), "SentencePiece trainer threads");
  po::variables_map vm;
  if (int rc = parse(cmd, args, desc, vm); rc >= 0) return rc;
  if (!to_options(f, &config.reader, &config.split)) return kExitBadFlag;
  config.inputs = f.inputs;
  om::StatusOr<om::TokenizerTrainReport> r = om::run_tokenizer_train(config);
  if (!r.ok()) return fail(cmd, r.status());
  std::printf("tokenizer %s.model: vocab %d, trained on %lld documents (%lld held out), %lld lines, %lld bytes "
              "in %.2f s\n",
              config.tokenizer.model_prefix.c_str(), config.tokenizer.vocab_size,
              static_cast<long long>(r->documents_used), static_cast<long long>(r->documents_heldout),
              static_cast<long long>(r->lines), static_cast<long long>(r->bytes), r->seconds);
  return kExitOk;
}

int preprocess(const std::vector<std::string>& args) {
  const std::string cmd = "preprocess";
  Flags f;
  om::PreprocessConfig config;
  po::options_description desc("tokenize inputs into OUT_train and OUT_valid datasets (Megatron .bin/.idx + .json)");
  add_input_flags(desc, f);
  desc.add_options()("tokenizer-model", po::value(&config.tokenizer_model)->required(), "SentencePiece .model")(
      "output-prefix", po::value(&config.output_prefix)->required(),
      "writes OUT_train.{bin,idx,json} and, with --valid-fraction > 0, OUT_valid.{bin,idx,json}");
  po::variables_map vm;
  if (int rc = parse(cmd, args, desc, vm); rc >= 0) return rc;
  if (!to_options(f, &config.reader, &config.split)) return kExitBadFlag;
  config.inputs = f.inputs;
  om::StatusOr<om::PreprocessReport> r = om::run_preprocess(config);
  if (!r.ok()) return fail(cmd, r.status());
  std::printf("%s_train: %lld documents, %lld tokens\n", config.output_prefix.c_str(),
              static_cast<long long>(r->train.documents), static_cast<long long>(r->train.tokens));
  if (config.split.valid_fraction > 0)
    std::printf("%s_valid: %lld documents, %lld tokens\n", config.output_prefix.c_str(),
                static_cast<long long>(r->valid.documents), static_cast<long long>(r->valid.tokens));
  std::printf("token dtype %s (vocab %d), %lld empty documents skipped, %.2f s\n",
              std::string(om::dtype_name(r->token_dtype)).c_str(), r->vocab_size,
              static_cast<long long>(r->empty_skipped), r->seconds);
  return kExitOk;
}

int inspect(const std::vector<std::string>& args) {
  const std::string cmd = "inspect";
  om::InspectConfig config;
  po::options_description desc("summarise a dataset: counts, document lengths, first tokens decoded");
  desc.add_options()("data-path", po::value(&config.data_path)->required(), "dataset prefix (PREFIX.bin/.idx)")(
      "tokenizer-model", po::value(&config.tokenizer_model), "decode with this model (default: the one in PREFIX.json)")(
      "num-docs", po::value(&config.num_docs)->default_value(config.num_docs), "documents to show")(
      "num-tokens", po::value(&config.tokens_shown)->default_value(config.tokens_shown),
      "leading tokens to show per document");
  po::variables_map vm;
  if (int rc = parse(cmd, args, desc, vm); rc >= 0) return rc;
  if (config.num_docs < 0 || config.tokens_shown < 0) {
    std::fprintf(stderr, "ortho_data inspect: --num-docs and --num-tokens must be >= 0\n");
    return kExitBadFlag;
  }
  om::StatusOr<std::string> r = om::inspect_dataset(config);
  if (!r.ok()) return fail(cmd, r.status());
  std::fputs(r->c_str(), stdout);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitBadFlag;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (command == "tokenizer-train") return tokenizer_train(args);
  if (command == "preprocess") return preprocess(args);
  if (command == "inspect") return inspect(args);
  std::fprintf(stderr, "ortho_data: unknown subcommand '%s'\n%s", command.c_str(), kUsage);
  return kExitBadFlag;
}
