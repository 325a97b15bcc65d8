#!/usr/bin/env bash
# The main job on the shipped default config: installs what is missing, builds, runs
# `ppsim run configs/default.json` and writes the report, the timeline and the Gantt chart
# (a print-ready SVG and an interactive HTML page) under out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
TARGETS=ppsim tools/build.sh build >/dev/null
mkdir -p out
figures=(--svg out/gantt.svg --html out/gantt.html)
if [ ! -d node_modules/vega-embed ] || ! command -v node >/dev/null; then
  echo "demo: no node_modules (tools/setup.sh could not run npm ci): skipping the Gantt chart" >&2
  figures=()
fi
./build/bin/ppsim run configs/default.json --report out/report.json --timeline out/timeline.json \
  "${figures[@]}" "$@"
echo "wrote out/report.json and out/timeline.json" >&2
if [ "${#figures[@]}" -gt 0 ]; then
  echo "wrote the Gantt chart: $(pwd)/out/gantt.svg (print, one column wide)" >&2
  echo "                       $(pwd)/out/gantt.html (interactive: open it in a browser, no network needed)" >&2
fi
