#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, PPSIM_FUZZ=ON, clang) into build-fuzz/ and runs
# each for SECONDS (default 30) from seed corpora made of the shipped configs and
# tests/data. A crash leaves its input as build-fuzz/findings/<reader>/crash-*: copy it
# to tests/data/fuzz/<reader>/ so ctest replays it (fuzz_replay_<reader>).
#   tools/fuzz.sh [SECONDS] [READER...]     readers: config sweep user_schedule profile torch_trace
# Exit: 0 nothing found; 1 a target crashed; 77 clang has no libFuzzer (nothing run).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}; shift || true
readers=("$@")
[ ${#readers[@]} -gt 0 ] || readers=(config sweep user_schedule profile torch_trace)
dir=${PPSIM_FUZZ_BUILD:-build-fuzz}

probe=$(mktemp -d)
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/p.cpp"
if ! command -v clang++ >/dev/null ||
   ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>/dev/null; then
  rm -rf "$probe"
  echo "fuzz: skipped: clang++ with libFuzzer (-fsanitize=fuzzer) not found" >&2
  exit 77
fi
rm -rf "$probe"

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPSIM_FUZZ=ON \
  -DPPSIM_BUILD_TESTS=OFF -DPPSIM_BUILD_BENCHMARKS=OFF -DPPSIM_WITH_CUDA=OFF "${launcher[@]}" >/dev/null || exit 1
targets=()
for r in "${readers[@]}"; do targets+=("fuzz_$r"); done
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" >"$dir/build.log" 2>&1 ||
  { tail -30 "$dir/build.log" >&2; exit 1; }

# Seeds: every shipped file of the reader's kind, and its regression inputs.
seed() {
  local reader=$1 corpus=$dir/corpus/$1
  mkdir -p "$corpus"
  case $reader in
    config) cp configs/default.json configs/experiments/*.json configs/models/*.json "$corpus/" ;;
    sweep) cp configs/sweeps/*.json "$corpus/" ;;
    user_schedule) cp tests/data/cycle_schedule.json "$corpus/"
      printf '%s' '{"name":"mine","devices":2,"microbatches":2,"ops":[["F0","F1","B0","B1"],["F0","B0","F1","B1"]]}' \
        >"$corpus/two-devices.json"
      printf '%s' '{"name":"zb","devices":2,"microbatches":2,"chunks":1,"pipes":1,"split_backward":true,"ops":[["F0","F1","B0","W0","B1","W1"],["F0","B0","F1","W0","B1","W1"]]}' \
        >"$corpus/split.json" ;;
    profile) cp configs/profiles/*.json "$corpus/" ;;
    torch_trace) cp tests/data/traces/*.json "$corpus/" ;;
  esac
  cp tests/data/fuzz/"$reader"/* "$corpus/" 2>/dev/null || true
}

status=0
for r in "${readers[@]}"; do
  seed "$r"
  findings=$dir/findings/$r
  mkdir -p "$findings"
  echo "== fuzz_$r for ${seconds}s" >&2
  "$dir/fuzz/fuzz_$r" "$dir/corpus/$r" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=4096 \
    -timeout=20 -artifact_prefix="$findings/" -print_final_stats=1 >"$dir/fuzz_$r.log" 2>&1
  rc=$?
  grep -E "^#[0-9]+.*(DONE|cov:)" "$dir/fuzz_$r.log" | tail -1 >&2
  grep -E "stat::number_of_executed_units" "$dir/fuzz_$r.log" >&2
  if [ $rc -ne 0 ]; then
    status=1
    echo "fuzz_$r: FOUND a crash (exit $rc): $(ls "$findings")" >&2
    grep -E "ERROR|undocumented|SUMMARY" "$dir/fuzz_$r.log" | head -5 >&2
  fi
done
exit $status
