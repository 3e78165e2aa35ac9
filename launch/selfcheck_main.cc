// ortho_selfcheck: runs every kernel check (gradients against finite differences in f64, f32 against
// f64, the ops' numerical facts) on this machine and prints one line per check and a summary.
// Exit status 0 when every check passes, 1 otherwise, 2 on a bad flag. Until the trainer lands this is
// the README's main job; afterwards it remains the "is this machine sane" tool (like nccl-tests).
#include <omp.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "core/device.h"
#include "core/timer.h"
#include "kernels/check/checks.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  po::options_description desc("ortho_selfcheck: check every kernel against its reference");
  std::string only;
  int threads = 0;
  desc.add_options()("help,h", "show this help")(
      "op", po::value<std::string>(&only), "run only this op's checks (e.g. attention); --list shows them")(
      "list", "list the ops and exit")("threads", po::value<int>(&threads),
                                       "OpenMP threads (default: OMP_NUM_THREADS or all cores)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "ortho_selfcheck: %s\n%s", e.what(), "run ortho_selfcheck --help for the flags\n");
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("list")) {
    for (const om::KernelCheck& k : om::all_kernel_checks()) std::printf("%s\n", k.op);
    return 0;
  }
  if (threads < 0) {
    std::fprintf(stderr, "ortho_selfcheck: --threads must be >= 1 (or omitted), got %d\n", threads);
    return 2;
  }
  if (threads > 0) omp_set_num_threads(threads);
  bool known = only.empty();
  for (const om::KernelCheck& k : om::all_kernel_checks()) known = known || only == k.op;
  if (!known) {
    std::fprintf(stderr, "ortho_selfcheck: --op '%s' is not a kernel; run ortho_selfcheck --list\n", only.c_str());
    return 2;
  }

  std::printf("ortho_selfcheck: CPU reference kernels, %d OpenMP threads, CUDA device %s\n", omp_get_max_threads(),
              om::cuda_available() ? "present (CUDA kernel checks arrive with the CUDA backend)" : "not present");
  int passed = 0, failed = 0;
  om::Timer total;
  for (const om::KernelCheck& k : om::all_kernel_checks()) {
    if (!only.empty() && only != k.op) continue;
    om::Timer t;
    om::CheckList results = k.run();
    for (const om::CheckResult& r : results) {
      std::printf("%s\n", r.ToString().c_str());
      (r.ok() ? passed : failed)++;
    }
    std::printf("     -- %s: %zu checks in %.2f s\n", k.op, results.size(), t.Seconds());
  }
  std::printf("%d passed, %d failed (%.1f s)\n", passed, failed, total.Seconds());
  return failed == 0 ? 0 : 1;
}
