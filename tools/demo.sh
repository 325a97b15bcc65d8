#!/usr/bin/env bash
# The main job on the shipped default config: installs what is missing, builds, runs
# `ppsim run configs/default.json` and writes the report and timeline under out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
TARGETS=ppsim tools/build.sh build >/dev/null
mkdir -p out
./build/bin/ppsim run configs/default.json --report out/report.json --timeline out/timeline.json "$@"
echo "wrote out/report.json and out/timeline.json" >&2
