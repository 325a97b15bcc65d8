#!/bin/bash
# BENCHMARKS.md "Communication semantics": iteration time per schedule x semantics on
# uneven-stage configs with 0.1-0.5 ms links. Usage: tools/comm_table.sh build/bin/ppsim
set -euo pipefail
ppsim=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import json, sys
for p in (4, 8):
  for lat in (100, 300, 500):
    layers = [{"name": f"L{k}", "forward_ms": 1.0 + 0.5 * (k % 3), "backward_ms": 2 * (1.0 + 0.5 * (k % 3)),
               "weight_grad_ms": 1.0 + 0.5 * (k % 3), "activation_bytes": 1000000, "output_bytes": 1000000,
               "parameter_bytes": 1000} for k in range(4 * p)]
    cfg = {"model": {"layers": layers}, "cluster": {"devices": p, "link": {"latency_us": lat, "bandwidth_GBps": 100}},
           "pipeline": {"schedule": "1f1b", "stages": p, "microbatches": 2 * p, "chunks": 1}}
    json.dump(cfg, open(f"{sys.argv[1]}/p{p}-lat{lat}.json", "w"))
PY
printf "| p | link latency | schedule | ideal | torch | megatron |\n|---|---|---|---|---|---|\n"
for p in 4 8; do for lat in 100 300 500; do
  for s in 1f1b interleaved zb-h1 dualpipe dualpipe:0.5 dualpipe:1 1f1b-overlap:0.5; do
    name=${s%%:*}; overlap=; [ "$s" != "$name" ] && overlap=${s#*:}
    v=1; [ "$name" = interleaved ] && v=2
    row="| $p | ${lat} us | $name${overlap:+ (overlap $overlap)} |"
    for c in ideal torch megatron; do
      t=$("$ppsim" run "$dir/p$p-lat$lat.json" --schedule "$name" --chunks "$v" --comm "$c" ${overlap:+--overlap "$overlap"} --json 2>/dev/null |
          python3 -c 'import json,sys
try: print("%.3f" % json.load(sys.stdin)["iteration_time_ms"])
except Exception: print("refused")') || true
      row="$row $t |"
    done
    echo "$row"
  done
done; done
