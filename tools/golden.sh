#!/usr/bin/env bash
# Writes every output ppsim makes for the shipped configs and for each registered
# schedule on a small grid into OUTDIR, so that a refactor can be checked byte for byte:
#   tools/golden.sh /tmp/before build/bin/ppsim   # before the change
#   tools/golden.sh /tmp/after  build/bin/ppsim   # after it
#   diff -r /tmp/before /tmp/after                # only the numbers a fix changed
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/golden.sh OUTDIR [PPSIM]}
ppsim=${2:-build/bin/ppsim}
[ -x "$ppsim" ] || { echo "golden: no ppsim binary at $ppsim" >&2; exit 2; }
ppsim=$(realpath "$ppsim")
mkdir -p "$out"
out=$(realpath "$out")

# One run: table, report, timeline, trace and Vega-Lite of CONFIG with extra flags.
one() {
  local name=$1 config=$2; shift 2
  local d="$out/$name"
  mkdir -p "$d"
  if "$ppsim" run "$config" "$@" --report "$d/report.json" --timeline "$d/timeline.json" \
      --trace "$d/trace.json" --vega "$d/vega.json" >"$d/table.txt" 2>"$d/stderr.txt"; then :; else
    echo "exit $?" >>"$d/stderr.txt"
  fi
}

for c in configs/default.json configs/experiments/*.json; do
  one "config-$(basename "$c" .json)" "$c"
  "$ppsim" compare "$c" >"$out/config-$(basename "$c" .json)/compare.txt" 2>&1 || true
done

# Each registered schedule on a small grid, with links that cost time.
cat >"$out/grid.json" <<'EOF'
{
  "model": { "layers": [ { "repeat": 24, "forward_ms": 1.0, "backward_ms": 2.0, "weight_grad_ms": 0.8,
                            "activation_bytes": 1048576, "parameter_bytes": 2097152,
                            "output_bytes": 65536, "flops": 1e12 } ],
             "micro_batch_size": 2, "sequence_length": 1024 },
  "cluster": { "devices": 8, "link": { "latency_us": 10.0, "bandwidth_GBps": 25.0 }, "device_peak_tflops": 300 },
  "pipeline": { "schedule": "1f1b", "stages": 4, "microbatches": 8, "chunks": 1 }
}
EOF
"$ppsim" schedule --list >"$out/schedule-list.txt"
schedules=$(awk 'NF && $1 !~ /^#/ {print $1}' "$out/schedule-list.txt" | grep -E '^[a-z0-9-]+$' || true)
for s in $schedules; do
  for p in 2 4; do
    for m in 4 8; do
      for v in 1 2; do
        one "grid-$s-p$p-m$m-v$v" "$out/grid.json" --schedule "$s" --stages "$p" --microbatches "$m" --chunks "$v"
        "$ppsim" schedule --schedule "$s" --stages "$p" --microbatches "$m" --chunks "$v" \
          >"$out/grid-$s-p$p-m$m-v$v/schedule.txt" 2>&1 || true
      done
    done
  done
done
# Relative paths from here on: the printed paths must not name OUTDIR.
sweep=$(realpath configs/sweeps/gpt3-13b-dgx-h100.json)
cd "$out"
"$ppsim" compare grid.json >grid-compare.txt 2>&1 || true
# A sweep (CSV and JSON rows).
"$ppsim" sweep "$sweep" -j 2 --csv sweep.csv --json sweep.json --vega sweep.vl.json >sweep.txt 2>/dev/null || true
find "$out" -type f | wc -l | xargs echo "golden: files written:" >&2
