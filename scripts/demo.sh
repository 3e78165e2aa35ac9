#!/usr/bin/env bash
# The README's main job. For now: set up, build, and run the kernel self-check (every op's gradients
# against finite differences, f32 against f64, softmax-1 facts). The training demo replaces it when
# the trainer lands.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/mpi_env.sh
"${OM_BUILD_DIR:-build}"/launch/ortho_selfcheck "$@"
