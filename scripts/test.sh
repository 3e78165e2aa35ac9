#!/usr/bin/env bash
# The README's test command: set up, build, run every test (ctest labels cpu, mpi; cuda tests are
# reported as skipped on a machine without a GPU), then build the CUDA code against the CPU emulator
# (cuda_emu/README.md) in ${OM_EMU_BUILD_DIR:-build-emu} and run the cuda tests there.
#   OM_SKIP_EMULATOR=1 bash scripts/test.sh     # the first part only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi_env.sh
ctest --test-dir "${OM_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"

if [ "${OM_SKIP_EMULATOR:-0}" = "1" ]; then
  echo "test: OM_SKIP_EMULATOR=1, the cuda tests did not run under the emulator"
  exit 0
fi
CUDA_INCLUDE=${CUDA_HOME:-/usr/local/cuda}/include
if [ ! -f "$CUDA_INCLUDE/cuda_runtime_api.h" ]; then
  echo "test: no CUDA headers in $CUDA_INCLUDE (set CUDA_HOME): the cuda tests did not run under the emulator"
  exit 0
fi
EMU_DIR=${OM_EMU_BUILD_DIR:-build-emu}
cmake -S . -B "$EMU_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOM_WITH_CUDA=OFF -DOM_CUDA_EMULATION=ON \
      -DOM_BUILD_BENCHMARKS=OFF -DOM_CUDA_INCLUDE_DIR="$CUDA_INCLUDE" >/dev/null
cmake --build "$EMU_DIR" -j "$(nproc)" --target om_cuda_tests
ctest --test-dir "$EMU_DIR" --output-on-failure -j 2 -L cuda "$@"
