#!/usr/bin/env bash
# One lent-GPU session for both GPU issues, inside the 15 minutes of device time a drawn
# task has (machine start-up included): the binaries (carried in .vendor/bin by
# tools/gpu_carry.sh, else built there), then issue 13's run (tools/gpu_issue13.sh: check,
# plain and fused blocks, PyTorch reference, trace import, links, NCCL) and issue 14's
# (tools/gpu_replay.sh: five schedules replayed on four SM partitions), each under a time
# limit cut from what is left of LIMIT, so that one stuck step cannot eat the other's time
# and the results are always packed before the device call's own limit.
# Everything is written under $WORK, then packed: at most 8 files come back from a device
# run, so $OUT gets results.tar.gz (all of it), status.txt (each part's exit status and
# seconds), session.log, and the two tables (issue13-table.md, issue14-table.md).
#   tools/gpu_carry.sh                                   # here, before the device run
#   run(command="OUT=$OUT tools/gpu_session.sh", carry=[".vendor"], timeout_s=330)
#   [LIMIT=300 seconds in all (two runs and two machine starts fit in 15 minutes); WORK=/tmp/ppsim-gpu; BACKEND=cpu MODELS=tiny ...: the dry run]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder that comes back}
WORK=${WORK:-/tmp/ppsim-gpu}
LIMIT=${LIMIT:-300}
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
exec > >(tee -a "$WORK/session.log") 2>&1
. tools/gpu_common.sh

pack() {
  tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude=./build --exclude=./session.log . 2>/dev/null
  if [ "$(stat -c %s "$OUT/results.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then  # 16 MiB a file comes back
    echo "results.tar.gz over 15 MiB: packed again without the timelines and traces"
    tar -czf "$OUT/results.tar.gz" -C "$WORK" --exclude=./build --exclude=./session.log \
      --exclude='*timeline*' --exclude='measured_*' --exclude='simulated_*' --exclude='trace-*' .
  fi
  cp "$WORK/status.txt" "$OUT/status.txt" 2>/dev/null
  cp "$WORK/issue13/table.md" "$OUT/issue13-table.md" 2>/dev/null
  cp "$WORK/issue14/table.md" "$OUT/issue14-table.md" 2>/dev/null
  cp "$WORK/session.log" "$OUT/session.log"
}
trap pack EXIT

part() {  # name, seconds, command...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $(date -u +%H:%M:%S) $name (limit ${limit} s)"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$WORK/status.txt"
  tail -15 "$WORK/$name.log"
}
left() { echo $((LIMIT - SECONDS - 20)); }  # 20 s to pack

echo "=== $(date -u +%H:%M:%S) machine ($GPU_BACKEND, $GPU_DTYPE)"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv 2>&1
  nvcc --version 2>&1 | tail -1; cmake --version | head -1; c++ --version | head -1; nproc; uname -sr
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" 2>&1 | tail -1
} | tee "$WORK/machine.txt"

echo "=== $(date -u +%H:%M:%S) binaries"
gpu_binaries "$WORK/build" "$WORK/build.log" || { echo "binaries rc=1" >>"$WORK/status.txt"; exit 1; }
export PPSIM CAL BACKEND="$GPU_BACKEND" DTYPE="$GPU_DTYPE"
echo "binaries rc=0 after $SECONDS s" >>"$WORK/status.txt"

t13=$(( $(left) / 2 )); [ "$t13" -gt "${T13:-300}" ] && t13=${T13:-300}
part issue13 "$t13" env OUT="$WORK/issue13" tools/gpu_issue13.sh
part issue14 "$(left)" env OUT="$WORK/issue14" tools/gpu_replay.sh
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >>"$WORK/machine.txt" 2>&1
exit 0  # each part's status is in status.txt
