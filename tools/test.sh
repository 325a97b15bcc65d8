#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest: first the normal
# build, then the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
jobs=$(nproc)

echo "== build (Release) and test" >&2
tools/build.sh build
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${PPSIM_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== build (ASan+UBSan) and test" >&2
  BUILD_TYPE=RelWithDebInfo tools/build.sh build-asan -DPPSIM_SANITIZE=ON -DPPSIM_BUILD_BENCHMARKS=OFF -DPPSIM_WITH_CUDA=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
