#!/usr/bin/env bash
# One lent-GPU session for both GPU issues, within the 15 minutes of device time a drawn
# task has (machine start-up included, so about 10 minutes of commands): issue 13's run
# (tools/gpu_issue13.sh: check, plain and fused blocks, PyTorch reference, trace import,
# links) and then issue 14's (tools/gpu_replay.sh: five schedules replayed on four SM
# partitions), each under its own time limit so that one stuck step cannot eat the other's
# time. Everything goes under $OUT/issue13 and $OUT/issue14, with each part's exit status
# in $OUT/status.txt.
#   OUT=/tmp/out tools/gpu_session.sh          [T13=270 T14=270 seconds; M=4 micro-batches]
# From the session: run(command="OUT=$OUT tools/gpu_session.sh", timeout_s=590).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder that comes back}
T13=${T13:-270}
T14=${T14:-270}
mkdir -p "$OUT"
part() {  # name, seconds, command...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $(date -u +%H:%M:%S) $name (limit ${limit} s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc after $((SECONDS - start)) s" | tee -a "$OUT/status.txt"
  tail -5 "$OUT/$name.log"
}
part issue13 "$T13" env OUT="$OUT/issue13" tools/gpu_issue13.sh
part issue14 "$T14" env OUT="$OUT/issue14" M="${M:-4}" tools/gpu_replay.sh
