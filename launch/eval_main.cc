// ortho_eval: evaluate a checkpoint (any layout) on a held-out set: perplexity and bits per byte,
// first-token attention, hidden-state kurtosis and max activation, and the perplexity penalty of
// fake-quantised weights (eval/evaluator.h); writes report.json, report.md and report.html.
//   ortho_eval --load CKPT --data-path HELDOUT [--eval-tokens N] [--quant LIST] --report DIR
// One process, no mpirun needed; under mpirun the windows are shared among the ranks and rank 0 writes
// the report. Exit status: 0 done, 1 a failure (the message names the file), 2 bad flags.
#include <mpi.h>
#include <omp.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "core/check.h"
#include "core/log.h"
#include "eval/evaluator.h"
#include "launch/mpi_session.h"
#include "parallel/mpi_comm.h"

namespace po = boost::program_options;

namespace {

int run(int argc, char** argv, int rank, int size);

}  // namespace

int main(int argc, char** argv) {
  const om::MpiSession mpi(&argc, &argv);  // MPI only under a launcher
  om::set_process_rank(mpi.rank);
  const int rc = run(argc, argv, mpi.rank, mpi.size);
  if (rc == 1 && mpi.size > 1) MPI_Abort(MPI_COMM_WORLD, rc);  // the other ranks may wait in a collective
  return rc;
}

namespace {

int run(int argc, char** argv, int rank, int size) {
  om::EvalOptions o;
  std::string quant = "all", report;
  int threads = 0;
  bool no_metrics = false;
  po::options_description desc("ortho_eval: evaluate a checkpoint\n\nUsage: ortho_eval --load CKPT --data-path "
                               "HELDOUT --report DIR [flags]");
  desc.add_options()
      ("load", po::value(&o.load), "checkpoint: a run directory (its latest) or a step_* directory, any layout")
      ("data-path", po::value(&o.data_path), "held-out dataset prefix (from `ortho_data preprocess`)")
      ("eval-tokens", po::value(&o.eval_tokens)->default_value(o.eval_tokens),
       "tokens to score, in whole windows of the model's sequence length; 0 = the whole held-out set")
      ("quant", po::value(&quant)->default_value(quant),
       "fake-quantised passes: all, none, or a list of w8a8-coarse, w8a8-moderate, w8a8-fine, w4, w4-g128")
      ("report", po::value(&report), "directory for report.json, report.md, report.html")
      ("micro-batch-size", po::value(&o.micro_batch)->default_value(o.micro_batch), "windows per forward")
      ("no-metrics", po::bool_switch(&no_metrics), "skip the attention and hidden-state metrics")
      ("threads", po::value(&threads)->default_value(threads), "OpenMP threads; 0 = OMP_NUM_THREADS or all")
      ("help,h", "show this help");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "ortho_eval: %s; run ortho_eval --help for the flags\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  auto bad = [](const std::string& m) {
    std::fprintf(stderr, "ortho_eval: %s\n", m.c_str());
    return 2;
  };
  if (o.load.empty()) return bad("--load is required: a checkpoint directory written by ortho_megatron --save");
  if (o.data_path.empty()) return bad("--data-path is required: a held-out dataset prefix (e.g. build/demo/moby_valid)");
  if (report.empty()) return bad("--report DIR is required (where report.json/.md/.html go)");
  if (o.eval_tokens < 0 || o.micro_batch < 1) return bad("--eval-tokens must be >= 0 and --micro-batch-size >= 1");
  if (quant != "none") {
    om::StatusOr<std::vector<om::QuantScheme>> schemes = om::parse_quant_list(quant);
    if (!schemes.ok()) return bad(schemes.status().message());
    o.quant = *schemes;
  }
  o.metrics = !no_metrics;
  if (threads > 0) omp_set_num_threads(threads);

  std::optional<om::MpiComm> world;
  if (size > 1) world.emplace(MPI_COMM_WORLD, "world", om::CommOwnership::kBorrowed);
  om::StatusOr<om::EvalReport> r = om::evaluate(o, world ? &*world : nullptr);
  if (!r.ok()) {
    std::fprintf(stderr, "ortho_eval [%s]: %s\n", om::process_identity().c_str(), r.status().ToString().c_str());
    return 1;
  }
  if (rank != 0) return 0;
  const om::Status written = om::write_report(report, *r);
  if (!written.ok()) {
    std::fprintf(stderr, "ortho_eval: %s\n", written.ToString().c_str());
    return 1;
  }
  std::cout << om::report_to_markdown(*r);
  std::printf("\nreport: %s/report.json, report.md, report.html\n", report.c_str());
  return 0;
}

}  // namespace
