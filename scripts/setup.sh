#!/usr/bin/env bash
# Installs exactly the Debian packages the build and tests need (only the missing ones; idempotent,
# non-interactive), then configures and builds into ${OM_BUILD_DIR:-build}.
#   OM_CMAKE_ARGS="-DOM_WITH_CUDA=OFF" bash scripts/setup.sh     # extra CMake arguments
# CUDA is used when nvcc is found (OM_WITH_CUDA defaults ON then); the CUDA toolkit itself is not a
# Debian package here and is never installed by this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  g++ cmake ninja-build pkg-config           # toolchain
  libopenmpi-dev openmpi-bin                 # MPI (C API; mpirun for multi-rank tests)
  libhdf5-dev                                # serial HDF5 (checkpoints)
  libboost-program-options-dev               # command-line and config-file options
  libopenblas-dev libdnnl-dev                # CPU GEMM candidates (oneDNN is the one used; bench/results)
  ocl-icd-opencl-dev                         # only a Recommends of libdnnl-dev, but its CMake config requires OpenCL
  libsentencepiece-dev sentencepiece         # tokenizer library and spm_train
  nlohmann-json3-dev zlib1g-dev              # manifests, metrics, reports; gzip JSON lines
  libgtest-dev libgmock-dev libbenchmark-dev # tests and benchmarks
  python3-h5py python3-numpy                 # tests: h5py reads a checkpoint's index.h5
  chromium fonts-dejavu-core                 # tests: the evaluator's report.html renders headless
  slurmctld slurmd slurm-client munge        # tests: a private one-node SLURM for slurm/train.sbatch
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc lives outside PATH in the usual toolkit location; let CMake find it.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

BUILD_DIR=${OM_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${OM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
