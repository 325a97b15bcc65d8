#!/usr/bin/env bash
# The lent-GPU session script (tools/gpu_session.sh, with gpu_issue13.sh and gpu_replay.sh)
# run whole on the CPU with this build's binaries and the tiny model, so that the script a
# GPU session runs once, with minutes of device time, is known to work: every step exits 0,
# at most 8 files come back (what a device run returns), the tables have their rows, the
# archive holds every result, and the measured timelines validate against the schema.
# Timing errors on a shared CPU are not asserted.
#   gpu_session_dry.sh PPSIM PPSIM_CALIBRATE SCHEMA PYTHON WORKDIR
set -uo pipefail
ppsim=$1 cal=$2 schema=$3 python=$4 dir=$5
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "FAIL: $*"; exit 1; }
rm -rf "$dir" && mkdir -p "$dir"
BACKEND=cpu MODELS=tiny MODEL=tiny BS=2 P=2 M=4 TARGET_MS=5 WARMUP=1 LIMIT=400 \
  PPSIM=$ppsim CAL=$cal OUT="$dir/out" WORK="$dir/work" "$root/tools/gpu_session.sh" >"$dir/session.txt" 2>&1
rc=$?
[ $rc -eq 0 ] || { tail -30 "$dir/session.txt"; fail "gpu_session.sh exited $rc"; }
out=$dir/out
for part in binaries issue13 issue14; do
  grep -q "^$part rc=0 " "$out/status.txt" || { cat "$out/status.txt"; fail "$part did not exit 0"; }
done
[ "$(find "$out" -type f | wc -l)" -le 8 ] || fail "more than 8 files in OUT (a device run returns 8)"
find "$out" -type f -size +16M | grep -q . && fail "a file over 16 MiB in OUT"
mkdir -p "$dir/unpacked" && tar -xzf "$out/results.tar.gz" -C "$dir/unpacked" || fail "results.tar.gz does not unpack"
u=$dir/unpacked
if grep -h " rc=[1-9]" "$u/issue13.log" "$u/issue14.log"; then fail "a step failed"; fi
for f in issue13/check.json issue13/plain-tiny.json issue13/fused-tiny.json issue13/links.json machine.txt; do
  [ -s "$u/$f" ] || fail "missing $f"
done
for s in 1f1b_v1 interleaved_v2 zb-h1_v1 zbv_v2 gpipe_v1; do
  for k in compare measured simulated; do [ -s "$u/issue14/${k}_${s}_b2.json" ] || fail "missing ${k}_${s}_b2.json"; done
  [ -s "$u/issue14/side_by_side_${s}_b2.vg.json" ] || fail "missing side_by_side_${s}_b2.vg.json"
  grep -Eq "^\| ${s}_b2 \| [0-9.]+ \| [0-9.]+ \|" "$out/issue14-table.md" || fail "no row for $s in issue14-table.md"
done
grep -Eq '^\| tiny \| 2 \| [0-9.]+ \| [0-9.]+ \| nan \|' "$out/issue13-table.md" ||
  { cat "$out/issue13-table.md"; fail "no ppsim plain and fused row for tiny in issue13-table.md"; }
"$python" "$root/tools/check_timeline.py" --files "$schema" "$u"/issue14/measured_*.json "$u"/issue14/simulated_*.json
rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "timelines do not validate"
echo "gpu_session.sh dry run: all steps passed; $(find "$out" -type f | wc -l) files come back"
