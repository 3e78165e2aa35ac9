#include "eval/evaluator.h"

#include <cmath>
#include <memory>

#include "checkpoints/checkpoint.h"
#include "core/log.h"
#include "data/dataset_info.h"
#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "data/tokenizer.h"
#include "eval/metrics.h"
#include "kernels/cross_entropy.h"
#include "model/llama.h"
#include "optim/distributed_optimizer.h"
#include "parallel/local_comm.h"

namespace om {
namespace {

StatusOr<LlamaConfig> config_from_manifest(const nlohmann::json& m, const std::string& dir) {
  LlamaConfig c;
  try {
    c.name = m.at("name").get<std::string>();
    c.vocab_size = m.at("vocab_size").get<int64_t>();
    c.hidden = m.at("hidden").get<int64_t>();
    c.ffn = m.at("ffn").get<int64_t>();
    c.n_heads = m.at("n_heads").get<int64_t>();
    c.n_layers = m.at("n_layers").get<int64_t>();
    c.seq_length = m.at("seq_length").get<int64_t>();
    OM_ASSIGN_OR_RETURN(c.attention, parse_attention_kind(m.at("attention").get<std::string>()));
    OM_ASSIGN_OR_RETURN(c.norm, parse_norm_kind(m.at("norm").get<std::string>()));
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption("checkpoint '" + dir + "': manifest.json \"model\" is incomplete (" + e.what() + ")");
  }
  OM_RETURN_IF_ERROR(c.Validate());
  return c;
}

// Fake-quantises the inputs of the linear layers (and records the attention/hidden metrics).
class EvalProbe final : public ForwardProbe {
 public:
  EvalProbe(MetricsAccumulator* metrics, const QuantScheme* scheme) : metrics_(metrics), scheme_(scheme) {}
  bool wants_attention() const override { return metrics_ != nullptr; }
  void OnAttention(int64_t layer, ConstTensorView probs) override { metrics_->AddAttention(layer, probs); }
  void OnBlockOutput(int64_t layer, ConstTensorView x) override {
    if (metrics_ != nullptr) metrics_->AddHidden(layer, x);
  }
  void OnLinearInput(TensorView x) override {
    if (scheme_ != nullptr) fake_quant_activation(*scheme_, x.data_as<float>(), x.dim(0), x.numel() / x.dim(0));
  }

 private:
  MetricsAccumulator* metrics_;
  const QuantScheme* scheme_;
};

// The quantised layers: every logical block of the linear weights (q, k, v, o, gate, up, down, LM head),
// not the embedding or the norm gains.
bool is_linear(const Parameter& p) { return p.weight_decay && p.name != "embed.weight"; }

// Bytes of text each token id stands for (see evaluator.h).
std::vector<int64_t> token_bytes(const Tokenizer& tok) {
  std::vector<int64_t> out(static_cast<size_t>(tok.vocab_size()), 0);
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string piece = tok.Piece(id);
    if (id == tok.eod_id() || id == tok.bos_id() || (piece.size() > 2 && piece.front() == '<' && piece.back() == '>' &&
                                                     piece.rfind("<0x", 0) != 0)) {
      continue;  // control tokens
    }
    if (piece.rfind("<0x", 0) == 0 && piece.size() == 6) {
      out[id] = 1;
      continue;
    }
    int64_t n = 0;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {  // ▁
        n += 1;
        i += 3;
      } else {
        n += 1;
        i += 1;
      }
    }
    out[id] = n;
  }
  return out;
}

}  // namespace

StatusOr<EvalReport> evaluate(const EvalOptions& o, Comm* world) {
  OM_ASSIGN_OR_RETURN(std::string dir, resolve_checkpoint(o.load));
  OM_ASSIGN_OR_RETURN(nlohmann::json manifest, read_manifest(dir));
  OM_RETURN_IF_ERROR(verify_checkpoint(dir, manifest).WithContext("--load"));
  OM_ASSIGN_OR_RETURN(LlamaConfig config, config_from_manifest(manifest["model"], dir));
  const int64_t T = config.seq_length;

  OM_ASSIGN_OR_RETURN(DatasetInfo info, read_dataset_info(o.data_path));
  if (info.vocab_size > config.vocab_size) {
    return Status::FailedPrecondition(format_message(
        "--data-path '%s' was tokenized with a vocabulary of %ld, the checkpoint's model has %ld: use held-out data "
        "preprocessed with the training tokenizer",
        o.data_path.c_str(), static_cast<long>(info.vocab_size), static_cast<long>(config.vocab_size)));
  }
  StatusOr<IndexedDataset> opened = IndexedDataset::Open(o.data_path);
  if (!opened.ok()) return opened.status().WithContext("--data-path '" + o.data_path + "'");
  const IndexedDataset data = std::move(*opened);
  if (data.num_tokens() < T + 1) {
    return Status::InvalidArgument("--data-path '" + o.data_path + "' holds fewer tokens than one window of " +
                                   std::to_string(T + 1));
  }
  // A model trained with --bos saw "<s>" at position 0 of every sequence: evaluate it the same way (the
  // first-token metrics then measure the "<s>" position, as the paper's do).
  const bool bos = manifest.contains("data") && manifest["data"].value("bos", false);
  if (bos && info.bos_id < 0) {
    return Status::FailedPrecondition("--load '" + dir + "' was trained with --bos but the tokenizer of --data-path '" +
                                      o.data_path + "' has no <s> piece; use held-out data preprocessed with the "
                                      "training tokenizer");
  }
  const GptSampler sampler(data, T, 0, bos ? info.bos_id : -1);
  const int64_t wanted = o.eval_tokens > 0 ? (o.eval_tokens + T - 1) / T : sampler.samples_per_epoch();
  const int64_t windows = std::min(wanted, sampler.samples_per_epoch());
  const int64_t mb = std::min(o.micro_batch, windows);

  Llama model(config, mb);
  LocalComm local("dp");
  {
    DistributedOptimizer loader(model.parameters(), OptimizerConfig{}, local);
    OM_RETURN_IF_ERROR(load_checkpoint(dir, manifest, loader, /*load_optim=*/false, nullptr).status());
  }

  EvalReport r;
  r.meta = {{"checkpoint", dir},       {"step", manifest["step"]},       {"model", manifest["model"]},
            {"optimizer", manifest["optimizer"]}, {"data_path", o.data_path}, {"micro_batch", mb}, {"bos", bos}};
  std::vector<int64_t> bytes_of;
  {
    StatusOr<Tokenizer> tok = Tokenizer::Load(info.tokenizer_model);
    if (tok.ok()) {
      bytes_of = token_bytes(*tok);
    } else {
      r.meta["bits_per_byte_note"] = "tokenizer '" + info.tokenizer_model + "' not loadable: " + tok.status().ToString();
    }
  }

  std::vector<int32_t> tokens(static_cast<size_t>(mb * T)), targets(tokens.size());
  // One pass over the windows: the mean loss over scored targets; bytes of those targets.
  auto pass = [&](ForwardProbe* probe, double* bytes) {
    model.set_probe(probe);
    double sums[3] = {0.0, 0.0, 0.0};  // nll, count, nbytes
    double &nll = sums[0], &count = sums[1], &nbytes = sums[2];
    const int64_t rank = world != nullptr ? world->rank() : 0, ranks = world != nullptr ? world->size() : 1;
    for (int64_t first = rank * mb; first < windows; first += ranks * mb) {
      const int64_t b = std::min(mb, windows - first);
      sampler.MicroBatch(first, 0, b, 0, 1, std::span<int32_t>(tokens.data(), static_cast<size_t>(b * T)),
                         std::span<int32_t>(targets.data(), static_cast<size_t>(b * T)));
      int64_t scored = 0;
      for (int64_t k = 0; k < b * T; ++k) {
        if (targets[k] == kIgnoreTarget) continue;
        ++scored;
        if (!bytes_of.empty() && targets[k] < static_cast<int32_t>(bytes_of.size())) nbytes += bytes_of[targets[k]];
      }
      const double loss = model.Forward(make_view(tokens.data(), DType::kI32, {b, T}, Device::Cpu(), "eval.tokens"),
                                        make_view(targets.data(), DType::kI32, {b, T}, Device::Cpu(), "eval.targets"));
      nll += loss * static_cast<double>(scored);
      count += static_cast<double>(scored);
    }
    model.set_probe(nullptr);
    if (world != nullptr) {
      world->all_reduce(make_view(sums, DType::kF64, Shape{3}, Device::Cpu(), "eval.sums"), ReduceOp::kSum);
    }
    if (bytes != nullptr) *bytes = nbytes;
    r.tokens = static_cast<int64_t>(count);
    return count > 0 ? nll / count : 0.0;
  };

  MetricsAccumulator metrics(config.n_layers, config.n_heads, T);
  EvalProbe full(o.metrics ? &metrics : nullptr, nullptr);
  double nbytes = 0.0;
  r.loss = pass(&full, &nbytes);
  r.ppl = std::exp(r.loss);
  r.sequences = windows;
  r.bits_per_byte = nbytes > 0 ? r.loss * static_cast<double>(r.tokens) / std::log(2.0) / nbytes : NAN;
  if (o.metrics) {
    if (world != nullptr) metrics.Reduce(*world);
    metrics.Fill(r);
  }
  OM_LOG_INFO("full precision: %ld tokens, loss %.4f, perplexity %.3f", static_cast<long>(r.tokens), r.loss, r.ppl);

  // Quantised passes: each on a fresh copy of the full-precision weights, restored afterwards.
  std::vector<std::vector<float>> saved;
  for (const Parameter& p : model.parameters()) {
    const float* v = p.value.data_as<const float>();
    saved.emplace_back(is_linear(p) ? std::vector<float>(v, v + p.value.numel()) : std::vector<float>());
  }
  for (const QuantScheme& scheme : o.quant) {
    for (const Parameter& p : model.parameters()) {
      if (!is_linear(p)) continue;
      for (const LogicalBlock& b : p.blocks) {  // per logical tensor (q, k, v are quantised separately)
        fake_quant_weight(scheme, p.value.data_as<float>() + b.row0 * p.cols(), b.rows, p.cols());
      }
    }
    EvalProbe probe(nullptr, &scheme);
    const double loss = pass(&probe, nullptr);
    const double ppl = std::exp(loss);
    r.quant.push_back({std::string(quant_scheme_name(scheme)), ppl, ppl - r.ppl});
    OM_LOG_INFO("%-14s perplexity %.3f (penalty %+.3f)", std::string(quant_scheme_name(scheme)).c_str(), ppl,
                ppl - r.ppl);
    for (size_t i = 0; i < saved.size(); ++i) {
      if (saved[i].empty()) continue;
      std::copy(saved[i].begin(), saved[i].end(), model.parameters()[i].value.data_as<float>());
    }
  }
  return r;
}

}  // namespace om
