// ortho_eval's engine (DESIGN.md "Evaluator"): loads a checkpoint saved with any layout into a
// single-process model, scores held-out windows and measures the paper's metrics, then the perplexity
// of each fake-quantised variant (eval/quantize.h).
//
// Windows: the held-out dataset's samples of T + 1 tokens in the fixed order of a GptSampler with seed 0
// (the trainer's validation order), ceil(eval_tokens / T) of them (at most one epoch). The same windows
// are scored by every pass. Per-tensor activation scales are dynamic per forward call (one micro-batch).
// Bits per byte: Σ NLL / ln 2 / Σ bytes of the target tokens, each token's bytes from its SentencePiece
// piece (▁ = one space byte, <0xNN> = one byte, control tokens none), when the dataset's tokenizer model
// (PREFIX.json "tokenizer_model") can be loaded; otherwise NaN with a note in meta.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "eval/quantize.h"
#include "eval/report.h"
#include "parallel/comm.h"

namespace om {

struct EvalOptions {
  std::string load;                // a run directory (its latest checkpoint) or a step_* directory
  std::string data_path;           // held-out dataset prefix (PREFIX.bin/.idx/.json)
  int64_t eval_tokens = 65536;     // scored tokens, rounded up to whole windows; 0 = one whole epoch
  int64_t micro_batch = 4;         // windows per forward
  std::vector<QuantScheme> quant;  // fake-quantised passes after the full-precision one
  bool metrics = true;             // attention and hidden-state metrics on the full-precision pass
};

// `world` (optional, e.g. under mpirun): the micro-batches of windows are dealt round-robin to its ranks
// (micro-batch k to rank k mod P, so per-tensor activation scales see the same batches as in one process)
// and every sum is all-reduced; each rank then returns the same report. Collective over `world`.
StatusOr<EvalReport> evaluate(const EvalOptions& options, Comm* world = nullptr);

}  // namespace om
