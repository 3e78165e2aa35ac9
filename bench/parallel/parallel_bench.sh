#!/usr/bin/env bash
# tp·dp step time and communication share on the `tiny` preset (seq 256, global batch 8, softmax-1):
# tp1·dp1 as one process with 2 and 1 threads, then tp2·dp2 and tp2·dp4 under mpirun, 1 thread per rank.
#   bash bench/parallel/parallel_bench.sh [STEPS=8]   (needs ${OM_BUILD_DIR:-build}/bench/parallel_step_bench
#   and the demo dataset ${OM_DATA:-build/demo/moby_train}, made by scripts/demo.sh)
# On a 2-core machine 4 and 8 ranks are oversubscribed 2x and 4x: functional numbers, not scaling.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-8}
BIN=${OM_BUILD_DIR:-build}/bench/parallel_step_bench
DATA=${OM_DATA:-build/demo/moby_train}
source scripts/mpi_env.sh
run() {  # NP TP DP THREADS
  OMP_NUM_THREADS=$4 mpirun -np "$1" "$BIN" "$2" "$3" "$DATA" "$STEPS" 256 8 "$4" 2>&1 | grep '^tp'
}
run 1 1 1 2
run 1 1 1 1
run 4 2 2 1
run 8 2 4 1
