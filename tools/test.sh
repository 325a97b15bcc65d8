#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest: first the normal
# build, then the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer;
# then the sweep tests built with ThreadSanitizer, and a short libFuzzer smoke of every
# input reader (tools/fuzz.sh; skipped with a message where clang lacks libFuzzer).
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

if [ "${PPSIM_SKIP_TSAN:-0}" != "1" ]; then
  # The sweep runs points on threads: its tests under ThreadSanitizer (only the sweep's
  # test files, ppsim_sweep_tests in tests/tsan.cmake, and the ppsim they run are built).
  echo "== build (ThreadSanitizer) and the sweep tests" >&2
  BUILD_TYPE=RelWithDebInfo TARGETS=ppsim_sweep_tests tools/build.sh build-tsan -DPPSIM_TSAN=ON \
    -DPPSIM_BUILD_BENCHMARKS=OFF -DPPSIM_WITH_CUDA=OFF
  ctest --test-dir build-tsan --output-on-failure -R '^tsan_sweep$'
fi

if [ "${PPSIM_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzz smoke (20 s per reader)" >&2
  rc=0
  tools/fuzz.sh "${PPSIM_FUZZ_SECONDS:-20}" || rc=$?
  if [ $rc -eq 77 ]; then echo "== fuzz smoke skipped: no libFuzzer" >&2
  elif [ $rc -ne 0 ]; then exit $rc; fi
fi
