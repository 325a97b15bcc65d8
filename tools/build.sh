#!/usr/bin/env bash
# Configures and builds ppsim into build/ (or $1). Finds nvcc in /usr/local/cuda when it
# is not on PATH so the CUDA calibration backend is compiled where a toolkit exists.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
cuda_args=()
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_args=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "${cuda_args[@]}" "$@" >/dev/null
# TARGETS="ppsim" builds only those targets (the demo needs nothing else).
cmake --build "$dir" -j"$(nproc)" ${TARGETS:+--target $TARGETS}
