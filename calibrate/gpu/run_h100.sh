#!/usr/bin/env bash
# One prepared device run (issue 7): build ppsim-calibrate with CUDA, check every kernel
# against the CPU backend, compute-sanitizer on a small shape, calibrate GPT-3 1.3B- and
# 13B-like layers (bf16, seq 2048, micro-batch 1,2,4) and 13B's tensor-parallel shards
# (t = 2, 4, 8; SKIP_TP=1 skips them), p2p, GEMM TFLOP/s, and the
# N-block chain accuracy test. Logs and results go to $OUT (at most 8 files come back).
# Usage (repo root): OUT=/tmp/out calibrate/gpu/run_h100.sh   [carry .vendor: tools/gpu_carry.sh NO_BIN=1]
set -uo pipefail
OUT=${OUT:-/tmp/ppsim-gpu-out}
mkdir -p "$OUT" "$OUT/r"
exec > >(tee -a "$OUT/log.txt") 2>&1
ROOT=$(pwd)
. tools/gpu_common.sh
B=${BUILD:-/tmp/ppsim-cal-build}
ARCH=${ARCH:-90}
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv || true
nvcc --version | tail -2; cmake --version | head -1; nproc

step "build (CUDA arch $ARCH)"
cmake -S calibrate -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" \
  -DPPSIM_VENDOR_INCLUDE="$(gpu_vendor_include)" >"$OUT/r/cmake.txt" 2>&1 \
  || { cat "$OUT/r/cmake.txt"; exit 1; }
grep ppsim-calibrate "$OUT/r/cmake.txt"
cmake --build "$B" -j"$(nproc)" 2>&1 | grep -E "error|warning|Built target" || true
C="$B/ppsim-calibrate"
[ -x "$C" ] || { echo "build failed"; exit 1; }

step "kernel and layer checks vs cpu backend"
$C check --backend cuda --dtype bf16 -o "$OUT/r/check_bf16.json"; echo "check bf16 rc=$?"
$C check --backend cuda --dtype fp32 -o "$OUT/r/check_fp32.json" | tail -3; echo "check fp32 rc=$?"

if [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer memcheck on the small-shape checks"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $C check --backend cuda --dtype bf16 \
    >"$OUT/r/sanitizer_memcheck.txt" 2>&1; echo "memcheck rc=$?"
  tail -4 "$OUT/r/sanitizer_memcheck.txt"
fi

P="$OUT/profile.json"
M="--warmup 10 --min-iters 20 --max-iters 200 --target-ms 400"
step "calibrate GPT-3 1.3B-like layers (bf16, seq 2048, mb 1,2,4)"
$C layers --backend cuda --model configs/models/gpt3-1.3b.json --dtype bf16 --micro-batches 1,2,4 -o "$P" $M; echo "rc=$?"
step "calibrate GPT-3 13B-like layers (bf16, seq 2048, mb 1,2,4)"
$C layers --backend cuda --model configs/models/gpt3-13b.json --dtype bf16 --micro-batches 1,2,4 -o "$P" --resume $M; echo "rc=$?"
if [ "${SKIP_TP:-0}" != 1 ]; then
  step "calibrate GPT-3 13B tensor-parallel shards on one GPU (--tp 2,4,8; bf16, seq 2048, mb 1,2,4)"
  $C layers --backend cuda --model configs/models/gpt3-13b.json --dtype bf16 --micro-batches 1,2,4 --tp 1,2,4,8 -o "$P" --resume $M; echo "rc=$?"
fi
step "p2p (device-local copy; peer pairs if several GPUs)"
$C p2p --backend cuda --min-size 4KiB --max-size 1GiB -o "$P" --warmup 10 --min-iters 10 --target-ms 100; echo "rc=$?"

step "GEMM TFLOP/s"
$C gemm --backend cuda --model configs/models/gpt3-1.3b.json --dtype bf16 --micro-batch 1 --square 8192 -o "$OUT/r/gemm_1.3b.json" $M
$C gemm --backend cuda --model configs/models/gpt3-13b.json --dtype bf16 --micro-batch 1 --square 0 -o "$OUT/r/gemm_13b.json" $M

step "accuracy: chains of N blocks (forward then backward) vs sum of profile layer times"
for spec in "gpt3-1.3b 1 8" "gpt3-1.3b 4 8" "gpt3-13b 1 4" "gpt3-13b 4 4"; do
  set -- $spec
  $C chain --backend cuda --model configs/models/$1.json --dtype bf16 --micro-batch $2 --layers $3 \
    --profile "$P" -o "$OUT/r/chain_${1}_mb$2.json" --warmup 5 --min-iters 10 --max-iters 50 --target-ms 1000
done

step "summary"
$C validate "$P"
python3 - "$OUT" <<'PY' || true
import json, sys, glob, os
out = sys.argv[1]
p = json.load(open(os.path.join(out, "profile.json")))
print("device:", p["device"])
print(f"{'layer':62s} {'F ms':>8s} {'B ms':>8s} {'W ms':>8s} {'act MiB':>9s} {'formula':>9s} {'TFLOP/s F':>9s}")
for l in p["layers"]:
    k = l.get("korthikanti_activation_bytes", l["expected_activation_bytes"])
    print(f"{l['key']:62s} {l['forward_ms']['median']:8.3f} {l['backward_input_ms']['median']:8.3f} "
          f"{l['backward_weight_ms']['median']:8.3f} {l['activation_bytes']/2**20:9.1f} {k/2**20:9.1f} "
          f"{l['achieved_tflops']['forward']:9.1f}")
for f in sorted(glob.glob(os.path.join(out, "r", "chain_*.json"))):
    c = json.load(open(f))
    print(f"chain {c['layers']} x {c['shape']}: measured {c['measured_ms']['median']:.3f} ms, "
          f"predicted {c.get('predicted_ms', float('nan')):.3f} ms, error {c.get('error_percent', float('nan')):+.2f}%")
PY
(cd "$OUT" && tar cf results.tar r && rm -rf r)
ls -la "$OUT"
