#!/usr/bin/env bash
# Makes docs/figures/: a unit-time Gantt chart (SVG and PNG, one column wide) of every registered schedule
# with p=4, m=8 (v=2 for schedules that need chunks), plus one with real costs and
# communication lanes (1f1b-timed). Schedules that do not support the shape are skipped
# with the reason. Needs the npm packages (tools/setup.sh) and rsvg-convert.
#   tools/figures.sh [OUT_DIR]        PPSIM=path/to/ppsim to use a given binary
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
out=${1:-docs/figures}

ppsim=${PPSIM:-}
if [ -z "$ppsim" ]; then
  # An existing build, if it is recent enough to know --unit-time.
  for candidate in build/bin/ppsim build-fig/bin/ppsim; do
    if [ -x "$candidate" ] && "$candidate" run --help 2>/dev/null | grep -q -- --unit-time; then
      ppsim=$candidate; break
    fi
  done
fi
if [ -z "$ppsim" ]; then
  echo "figures: building ppsim (tools/build.sh)" >&2
  tools/build.sh build -DPPSIM_BUILD_TESTS=OFF -DPPSIM_BUILD_BENCHMARKS=OFF >/dev/null
  ppsim=build/bin/ppsim
fi
if [ ! -d node_modules/vega-lite ] || ! command -v rsvg-convert >/dev/null; then
  echo "figures: needs node_modules (vega, vega-lite) and rsvg-convert: run tools/setup.sh" >&2
  exit 2
fi
export PPSIM_DATA_DIR=$repo

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Synthetic model: 16 equal layers, so 4 or 8 equal stages; 64 MiB of activations per
# layer and micro-batch so the memory panel shows what each schedule stashes.
cat >"$tmp/config.json" <<'JSON'
{
  "model": { "layers": [ { "repeat": 16, "forward_ms": 1.0, "backward_ms": 2.0,
                            "activation_bytes": 67108864, "parameter_bytes": 33554432,
                            "output_bytes": 16777216 } ] },
  "cluster": { "devices": 4, "link": { "latency_us": 20, "bandwidth_GBps": 25 } },
  "pipeline": { "schedule": "1f1b", "stages": 4, "microbatches": 8, "chunks": 1 }
}
JSON

made=()
for name in $("$ppsim" schedule --list | awk '{print $1}'); do
  ok=0
  for chunks in 1 2; do
    if err=$("$ppsim" run "$tmp/config.json" --schedule "$name" --stages 4 --microbatches 8 \
               --chunks "$chunks" --unit-time --svg "$out/$name.svg" --png "$out/$name.png" 2>&1 >/dev/null); then
      ok=1; break
    fi
  done
  if [ "$ok" = 1 ]; then made+=("$name"); else echo "figures: skipped $name: $(printf "%s" "$err" | tail -n 1)" >&2; fi
done
"$ppsim" run "$tmp/config.json" --schedule 1f1b --stages 4 --microbatches 8 \
  --svg "$out/1f1b-timed.svg" --png "$out/1f1b-timed.png" >/dev/null
# At page width a half-slot box holds its micro-batch number: ZB-V as its paper draws it.
"$ppsim" run "$tmp/config.json" --schedule zbv --stages 4 --microbatches 8 --chunks 2 --unit-time \
  --width page --one-based --no-memory --svg "$out/zbv-page.svg" --png "$out/zbv-page.png" >/dev/null
# An index, so the folder reads as a gallery on the forge.
{
  echo "# Schedule figures"
  echo
  echo "Unit time as the papers draw it (a stage's F one slot, backward two; split backward: B one,"
  echo "W one; a chunk op of a device holding v chunks 1/v of that; free links), p=4, m=8 (v=2 where"
  echo "the schedule needs chunks), at the default print width (\`--width column\`, 3.33 in; PNG at"
  echo "2x 96 dpi). Made by \`tools/figures.sh\`; do not edit by hand."
  echo
  for name in "${made[@]}"; do
    echo "## $name"
    echo
    echo "![$name]($name.png)"
    echo
  done
  echo "## zbv at page width"
  echo
  echo "\`--width page --one-based --no-memory\`: at 7 in every half-slot box holds its micro-batch number."
  echo
  echo "![zbv page width](zbv-page.png)"
  echo
  echo "## 1f1b with real costs"
  echo
  echo "4 layers per stage, each 1 ms forward and 2 ms backward; 16 MiB sent per stage boundary over 25 GB/s links with 20 us latency: send/recv lanes under each device."
  echo
  echo "![1f1b timed](1f1b-timed.png)"
} >"$out/README.md"
echo "figures: wrote ${#made[@]} schedules (${made[*]}), zbv-page and 1f1b-timed to $out/" >&2
