#!/bin/sh
# ppsim-calibrate collectives / p2p bad input: each case exits 2 with exactly one line
# `ppsim-calibrate: error: ...` naming the problem, and writes no file.
# $1: ppsim-calibrate. Runs in a scratch folder (the working directory).
bin=$1
fail=0
check() {  # expected-pattern args...
  pattern=$1
  shift
  rm -f out.json err.txt
  "$bin" "$@" -o out.json >/dev/null 2>err.txt
  rc=$?
  lines=$(wc -l < err.txt)
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -q "^ppsim-calibrate: error: .*$pattern" err.txt || [ -e out.json ]; then
    echo "FAIL: $* -> rc $rc, $lines lines:"; cat err.txt; fail=1
  fi
}
check "unknown op 'allgatherv'" collectives --ops all_reduce,allgatherv
check "'all-reduce' given twice" collectives --ops all_reduce,all-reduce
check "need 0 < min <= max" collectives --min-bytes 1MiB --max-bytes 4KiB
check "--min-bytes '0': not a positive size" collectives --min-bytes 0
check "--max-bytes '4KB': not a positive size" collectives --max-bytes 4KB
check "--min-bytes 2 B: too small" collectives --min-bytes 2 --max-bytes 4KiB
check "--iters: must be >= 1" collectives --iters 0
check "--dtype bf16: the mpi transport reduces fp32 only" collectives --dtype bf16
check "--transport: unknown 'tcp'" collectives --transport tcp
check "--group-size 3 x --group-stride 1 must divide the 1 ranks" collectives --group-size 3 --max-bytes 8KiB
check "--transport: unknown 'tcp'" p2p --transport tcp
echo '{"schema": 1}' > bad_profile.json  # refused before anything is measured
check "bad_profile.json" collectives --profile bad_profile.json
exit $fail
