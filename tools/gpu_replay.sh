#!/usr/bin/env bash
# Issue 14 on a lent H200: replay five schedules on one GPU split into p = 4 SM partitions
# (green contexts) and compare each with its simulation. PREPARED WITHOUT A GPU AND NOT
# RUN YET: the CUDA executor (calibrate/cuda/replay_cuda.cpp) and the partition
# calibration (PPSIM_CUDA_SM_PARTITIONS, calibrate/cuda/green.cpp) compile but have never
# executed; expect to debug on the first run.
#
# Steps: machine and clocks; build ppsim + ppsim-calibrate with CUDA (the replay needs the
# whole project: Boost.Graph, nlohmann/json, CLI11 headers; the script stops, saying what
# is missing, if the machine lacks them); `check`; calibrate GPT-3 1.3B-like layers (bf16,
# seq 2048, b = 1, 2) on ONE of the 4 partitions, and the device-local copy; for b in 1 2
# and each of 1F1B, interleaved (v = 2), ZB-H1, ZB-V, GPipe at p = 4, m = $M: replay on the
# 4 partitions, write the measured and simulated timelines, the comparison JSON, the
# side-by-side figure (SVG when node + vega are installed, else the Vega-Lite spec), and
# one table of all runs ($OUT/table.md).
# Usage (repo root): OUT=/tmp/out tools/gpu_replay.sh     [M=8 P=4 BS="1 2" ARCH=90]
# Memory: every stage keeps one copy of its layers per micro-batch it holds at once
# (GPipe: m copies); at m = 8, b = 2 GPipe may not fit in 141 GB: its failure is logged
# and the other runs go on.
set -uo pipefail
OUT=${OUT:-/tmp/ppsim-replay-out}
M=${M:-8}
P=${P:-4}
BS=${BS:-"1 2"}
ARCH=${ARCH:-90}
mkdir -p "$OUT/r"
exec > >(tee -a "$OUT/log.txt") 2>&1
B=${BUILD:-/tmp/ppsim-replay-build}
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
  --format=csv || true
nvcc --version 2>/dev/null | tail -1; cmake --version | head -1; nproc

step "build (CUDA arch $ARCH)"
if ! cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DPPSIM_BUILD_TESTS=OFF -DPPSIM_BUILD_BENCHMARKS=OFF \
     -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
     >"$OUT/r/cmake.txt" 2>&1; then
  grep -iE "could not find|not found|error" "$OUT/r/cmake.txt" | head -5
  echo "the replay needs the whole ppsim project (Boost.Graph, nlohmann/json, CLI11); the standalone"
  echo "calibrate/ build has no replay command. Stopping."
  exit 3
fi
cmake --build "$B" -j"$(nproc)" --target ppsim ppsim-calibrate 2>&1 | grep -E "error|Built target" || true
C="$B/calibrate/ppsim-calibrate"
[ -x "$C" ] || { echo "build failed"; exit 1; }
$C replay --help | grep -q -- "--devices" || { echo "this ppsim-calibrate has no CUDA replay"; exit 1; }

step "kernel and layer checks vs the cpu backend"
$C check --backend cuda --dtype bf16 -o "$OUT/r/check_bf16.json" | tail -2; echo "check rc=$?"

PROF="$OUT/profile_partition.json"
step "calibrate on one of $P SM partitions (GPT-3 1.3B-like, bf16, seq 2048, b = ${BS// /,})"
PPSIM_CUDA_SM_PARTITIONS=$P $C layers --backend cuda --model configs/models/gpt3-1.3b.json --dtype bf16 \
  --micro-batches "${BS// /,}" -o "$PROF" --warmup 5 --min-iters 10 --max-iters 50 --target-ms 200; echo "layers rc=$?"
$C p2p --backend cuda --min-size 64KiB --max-size 256MiB -o "$PROF" --warmup 5 --min-iters 5 --target-ms 50; echo "p2p rc=$?"
grep -o '"name": "[^"]*"' "$PROF" | head -1

render=--svg; ext=svg
node -e "require('vega-lite')" 2>/dev/null || { render=--vega; ext=vg.json; }
for b in $BS; do
  for spec in "1f1b 1" "interleaved 2" "zb-h1 1" "zbv 2" "gpipe 1"; do
    set -- $spec; s=$1; v=$2; name="${s}_v${v}_b${b}"
    cfg="$OUT/r/cfg_$name.json"
    cat >"$cfg" <<JSON
{ "model": { "preset": "$PWD/configs/models/gpt3-1.3b.json", "micro_batch_size": $b, "dtype": "bf16" },
  "costs": { "profile": "$PROF", "link": "device_local" },
  "cluster": { "devices": $P },
  "pipeline": { "schedule": "$s", "stages": $P, "microbatches": $M, "chunks": $v, "partition": "balanced" } }
JSON
    step "replay $name on $P SM partitions"
    timeout 300 $C replay "$cfg" --backend cuda --devices partitions --warmup 2 --iterations 5 \
      --timeline "$OUT/measured_$name.json" --sim-timeline "$OUT/simulated_$name.json" \
      --compare "$OUT/compare_$name.json" $render "$OUT/side_by_side_$name.$ext"
    echo "replay $name rc=$?"
  done
done

step "table"
python3 - "$OUT" >"$OUT/table.md" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print("| run | simulated ms | measured ms | iteration error | p95 start error (% of iteration) | duration error median | bubble sim / measured |")
print("|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "compare_*.json"))):
    c = json.load(open(f))
    it = c["iteration_ms"]
    print(f"| {os.path.basename(f)[8:-5]} | {it['simulated']:.2f} | {it['measured']:.2f} | {it['error_percent']:+.1f} % "
          f"| {c['start_error_percent_of_iteration']['p95']:.1f} % | {c['duration_error_percent']['median']:.1f} % "
          f"| {c['bubble_rate']['simulated']:.3f} / {c['bubble_rate']['measured']:.3f} |")
PY
cat "$OUT/table.md"
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv || true
