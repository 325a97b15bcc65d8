#!/usr/bin/env bash
# SIGTERM and SIGINT while ppsim writes its outputs: exit 143 / 130, and no output, no
# temporary file and no folder ppsim created is left behind (docs/cli.md "Output files").
#   tests/output_signals.sh PPSIM_BINARY SOURCE_DIR
set -uo pipefail
# Job control: background jobs get SIGINT as from a terminal instead of ignoring it.
set -m
ppsim=$1
src=$2
config=$src/bench/1f1b-p64-m8192.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

# One try: start a run whose timeline and trace take seconds to write, wait until a
# temporary file exists, send SIGNAL, and check the status and what is left.
one() {
  local signal=$1 want=$2 out=$work/$1
  mkdir -p "$out"
  "$ppsim" run "$config" --microbatches 512 --report "$out/new/r.json" --timeline "$out/new/deeper/t.json" \
    --trace "$out/trace.json" >/dev/null 2>&1 &
  local pid=$! waited=0
  until compgen -G "$out/new/deeper/t.json.tmp.*" >/dev/null || compgen -G "$out/trace.json.tmp.*" >/dev/null; do
    sleep 0.05
    waited=$((waited + 1))
    if [ $waited -gt 1200 ]; then echo "FAIL $signal: no temporary file appeared"; kill -KILL $pid; fail=1; return; fi
  done
  kill -"$signal" $pid
  wait $pid
  local status=$?
  local left
  left=$(cd "$out" && find . -mindepth 1 | sort | tr '\n' ' ')
  if [ "$status" != "$want" ]; then echo "FAIL $signal: exit $status, want $want"; fail=1; fi
  if [ -n "$left" ]; then echo "FAIL $signal: left behind: $left"; fail=1; fi
  [ "$status" = "$want" ] && [ -z "$left" ] && echo "ok $signal: exit $status, nothing left"
}

one TERM 143
one INT 130
exit $fail
