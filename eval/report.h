// The evaluator's report (DESIGN.md "Evaluator", PAPER.md "Metrics"): every number in report.json,
// paper-style tables in report.md, and a self-contained report.html with inline SVG plots (no
// scripts, no external files).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace om {

struct QuantResult {
  std::string scheme;   // "w8a8-coarse", ...
  double ppl = 0.0;     // perplexity of the fake-quantised model
  double penalty = 0.0; // ppl − ppl(full precision), in perplexity points
};

struct EvalReport {
  nlohmann::json meta;         // checkpoint, step, model, data, settings (printed as given)
  int64_t tokens = 0;          // scored target tokens
  int64_t sequences = 0;       // windows of T tokens
  double loss = 0.0;           // mean cross-entropy, nats
  double ppl = 0.0;            // exp(loss)
  double bits_per_byte = NAN;  // NaN when the tokenizer was not available

  // First-token attention (query 0 excluded), per layer [l][h] and overall; chance for T.
  int64_t seq_length = 0;
  double chance = 0.0;                               // (H_T − 1) / (T − 1)
  std::vector<std::vector<double>> first_mass;      // mean attention weight on key 0
  std::vector<std::vector<double>> first_argmax;    // share of queries whose largest weight is on key 0
  double first_mass_overall = 0.0, first_argmax_overall = 0.0;
  // Mean attention weight on each key position j (over queries i ≥ max(j, 1)), [l][h][j].
  std::vector<std::vector<std::vector<double>>> key_share;

  // Hidden states (each block's output): per layer, first token vs the others.
  std::vector<double> kurtosis_first, kurtosis_rest, maxabs_first, maxabs_rest;  // [l]
  double kurtosis_first_mean = 0.0, kurtosis_rest_mean = 0.0, maxabs_first_mean = 0.0, maxabs_rest_mean = 0.0;

  std::vector<QuantResult> quant;
};

nlohmann::json report_to_json(const EvalReport& r);
std::string report_to_markdown(const EvalReport& r);
std::string report_to_html(const EvalReport& r);
// Writes DIR/report.json, report.md, report.html (DIR created); IOError names the file.
Status write_report(const std::string& dir, const EvalReport& r);

}  // namespace om
