#!/usr/bin/env bash
# Issue 14 on a lent H200 (called by tools/gpu_session.sh; everything under $OUT): replay
# five schedules on one GPU split into P = 4 SM partitions (green contexts) and compare
# each with its simulation. Not run on a GPU yet: the CUDA executor
# (calibrate/cuda/replay_cuda.cpp) and the partition calibration (PPSIM_CUDA_SM_PARTITIONS,
# calibrate/cuda/green.cpp) compile but have never executed. The flow itself runs on the
# CPU in CI (BACKEND=cpu MODEL=tiny P=2, one thread per device; tests/gpu_session_dry.sh).
#
# Steps: calibrate the model's layers (b in $BS) on ONE of the P partitions, and the
# device-local copy, so the profile describes the device the replay runs on; for each b
# and each of 1F1B, interleaved (v = 2), ZB-H1, ZB-V, GPipe at p = P, m = $M: replay,
# writing the measured and simulated timelines, the comparison JSON and the side-by-side
# figure as a Vega-Lite spec (render it with `ppsim-calibrate`'s renderer elsewhere: the
# GPU machine has no Node); then one table of all runs ($OUT/table.md).
#   OUT=/tmp/out tools/gpu_replay.sh     [MODEL=gpt3-1.3b M=4 P=4 BS="1 2" BACKEND=cuda]
# Memory: every stage keeps one copy of its layers per micro-batch it holds at once
# (GPipe: m copies); a run that does not fit is logged and the others go on.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ppsim-replay-out}
MODEL=${MODEL:-gpt3-1.3b}
M=${M:-4}
P=${P:-4}
BS=${BS:-"1 2"}
mkdir -p "$OUT"
. tools/gpu_common.sh
[ -n "${PPSIM:-}" ] && [ -n "${CAL:-}" ] || gpu_binaries "${BUILD:-/tmp/ppsim-gpu-build}" "$OUT/build.log" || exit 1
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
if [ "$GPU_BACKEND" = cuda ]; then
  devices=(--devices partitions) link=device_local
  "$CAL" replay --help | grep -q -- "--devices" || { echo "this ppsim-calibrate has no CUDA replay"; exit 1; }
else
  devices=() link=thread_memcpy
  export OPENBLAS_NUM_THREADS=1  # one thread per device, as the replay runs
fi

PROF="$OUT/profile_partition.json"
step "calibrate $MODEL on one of $P SM partitions ($GPU_DTYPE, b = ${BS// /,})"
PPSIM_CUDA_SM_PARTITIONS=$P "$CAL" layers --backend "$GPU_BACKEND" --model "configs/models/$MODEL.json" \
  --dtype "$GPU_DTYPE" --micro-batches "${BS// /,}" -o "$PROF" --warmup 5 --min-iters 10 --max-iters 50 \
  --target-ms "${TARGET_MS:-200}"
echo "layers rc=$?"
"$CAL" p2p --backend "$GPU_BACKEND" --min-size 64KiB --max-size 256MiB -o "$PROF" --warmup 5 --min-iters 5 \
  --target-ms 50
echo "p2p rc=$?"

for b in $BS; do
  for spec in "1f1b 1" "interleaved 2" "zb-h1 1" "zbv 2" "gpipe 1"; do
    set -- $spec; s=$1; v=$2; name="${s}_v${v}_b${b}"
    cfg="$OUT/cfg_$name.json"
    cat >"$cfg" <<JSON
{ "model": { "preset": "$PWD/configs/models/$MODEL.json", "micro_batch_size": $b, "dtype": "$GPU_DTYPE" },
  "costs": { "profile": "$PROF", "link": "$link" },
  "cluster": { "devices": $P },
  "pipeline": { "schedule": "$s", "stages": $P, "microbatches": $M, "chunks": $v, "partition": "balanced" } }
JSON
    step "replay $name on $P ${devices[*]:-threads}"
    timeout 300 "$CAL" replay "$cfg" --backend "$GPU_BACKEND" "${devices[@]}" --warmup 2 --iterations 5 \
      --timeline "$OUT/measured_$name.json" --sim-timeline "$OUT/simulated_$name.json" \
      --compare "$OUT/compare_$name.json" --vega "$OUT/side_by_side_$name.vg.json"
    echo "replay $name rc=$?"
  done
done

step "table"
python3 - "$OUT" >"$OUT/table.md" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print("| run | simulated ms | measured ms | iteration error | p95 start error (% of iteration) "
      "| duration error median | bubble sim / measured |")
print("|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "compare_*.json"))):
    c = json.load(open(f))
    it = c["iteration_ms"]
    print(f"| {os.path.basename(f)[8:-5]} | {it['simulated']:.2f} | {it['measured']:.2f} | {it['error_percent']:+.1f} % "
          f"| {c['start_error_percent_of_iteration']['p95']:.1f} % | {c['duration_error_percent']['median']:.1f} % "
          f"| {c['bubble_rate']['simulated']:.3f} / {c['bubble_rate']['measured']:.3f} |")
PY
cat "$OUT/table.md"
