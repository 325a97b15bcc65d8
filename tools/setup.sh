#!/usr/bin/env bash
# Installs what ppsim needs and is missing: Debian packages and the pinned npm packages
# for figure rendering, and headless Chromium for the --html page's browser test. Safe to run again; does nothing when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make libboost-graph-dev libboost-context-dev nlohmann-json3-dev libcli11-dev catch2 libbenchmark-dev
          libopenblas-dev libopenmpi-dev openmpi-bin librsvg2-bin python3 python3-jsonschema nodejs npm
          chromium)
have_node=0
command -v node >/dev/null && command -v npm >/dev/null && have_node=1
missing=()
for p in "${packages[@]}"; do
  # Node may come from outside Debian (it does on these machines): keep it if it works.
  if [ "$have_node" = 1 ] && { [ "$p" = nodejs ] || [ "$p" = npm ]; }; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Pinned renderer packages (vega, vega-lite, vega-embed) for --svg/--png/--pdf, the
# self-contained --html page and the figure tests.
if [ -f package-lock.json ] && command -v npm >/dev/null; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    echo "setup: npm ci (vega, vega-lite, vega-embed)" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null && touch node_modules || echo "setup: npm ci failed; figure rendering will be skipped" >&2
  fi
fi
