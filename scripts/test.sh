#!/usr/bin/env bash
# The README's test command: set up, build, run every test (ctest labels cpu, mpi; cuda tests are
# reported as skipped on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi_env.sh
ctest --test-dir "${OM_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
