#!/usr/bin/env bash
# Issue 13's GPU run (called by tools/gpu_session.sh; everything under $OUT), in order of
# what matters most if time runs out: `check` (plain and fused kernels against the CPU),
# the blocks of each model at b = 1 and 4 with --kernels plain and fused, PyTorch's own
# block at the same shapes (tools/torch_block.py time), the ppsim-vs-PyTorch table
# (table.md), a torch.profiler trace imported into a profile (ppsim-calibrate import),
# the device links with their fit errors (validate), and NCCL collectives on whatever the
# machine has (a one-rank communicator on one GPU, when built without MPI). The fused
# blocks run chunked attention; the first model is also measured with our flash kernels
# (PPSIM_FUSED_ATTENTION=flash) to compare the two.
# Not run on a GPU yet (no GPU lent when it was written); the flow runs on the CPU in CI
# (BACKEND=cpu MODELS=tiny, tests/gpu_session_dry.sh).
#   OUT=/tmp/out tools/gpu_issue13.sh   [MODELS="gpt3-1.3b gpt3-13b llama2-7b" BS=1,4 BACKEND=cuda]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu13}
MODELS=${MODELS:-"gpt3-1.3b gpt3-13b llama2-7b"}
BS=${BS:-1,4}
mkdir -p "$OUT"
. tools/gpu_common.sh
[ -n "${PPSIM:-}" ] && [ -n "${CAL:-}" ] || gpu_binaries "${BUILD:-/tmp/ppsim-gpu-build}" "$OUT/build.log" || exit 1
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
M=(--warmup "${WARMUP:-10}" --target-ms "${TARGET_MS:-200}")

step "check ($GPU_BACKEND against the cpu backend; the fused CUDA kernels have never run before)"
"$CAL" check --backend "$GPU_BACKEND" --dtype "$GPU_DTYPE" -o "$OUT/check.json" >"$OUT/check.txt" 2>&1
echo "check rc=$?"; tail -3 "$OUT/check.txt"
if [ "$GPU_BACKEND" = cuda ]; then
  # chunks of 7 queries: several ragged chunks at the check's sizes (the default is one)
  PPSIM_ATTENTION_CHUNK_ROWS=7 "$CAL" check --backend cuda --dtype "$GPU_DTYPE" -o "$OUT/check-chunk7.json" \
    >"$OUT/check-chunk7.txt" 2>&1
  echo "check (7-query chunks) rc=$?"; tail -1 "$OUT/check-chunk7.txt"
  # the flash kernels, kept to compare with the chunked attention
  PPSIM_FUSED_ATTENTION=flash "$CAL" check --backend cuda --dtype "$GPU_DTYPE" -o "$OUT/check-flash.json" \
    >"$OUT/check-flash.txt" 2>&1
  echo "check (flash kernels) rc=$?"; tail -1 "$OUT/check-flash.txt"
fi

for m in $MODELS; do
  for k in plain fused; do
    step "layers $m --kernels $k (b = $BS)"
    "$CAL" layers --backend "$GPU_BACKEND" --dtype "$GPU_DTYPE" --model "configs/models/$m.json" \
      --micro-batches "$BS" --blocks-only --kernels "$k" "${M[@]}" -o "$OUT/$k-$m.json" 2>>"$OUT/layers.log"
    echo "layers $m $k rc=$?"
  done
done

if [ "$GPU_BACKEND" = cuda ]; then
  first=${MODELS%% *}
  step "layers $first --kernels fused with our flash kernels (PPSIM_FUSED_ATTENTION=flash)"
  PPSIM_FUSED_ATTENTION=flash "$CAL" layers --backend cuda --dtype "$GPU_DTYPE" --model "configs/models/$first.json" \
    --micro-batches "$BS" --blocks-only --kernels fused "${M[@]}" -o "$OUT/flash-$first.json" 2>>"$OUT/layers.log"
  echo "layers $first flash rc=$?"
fi

presets=$(for m in $MODELS; do printf 'configs/models/%s.json,' "$m"; done)
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  step "PyTorch's block (bf16, SDPA) for $MODELS at b = $BS"
  python3 tools/torch_block.py time --model "${presets%,}" --micro-batch "$BS" -o "$OUT/torch.json"
  echo "torch_block rc=$?"
else
  echo "no PyTorch with CUDA here: no reference times, no trace"
fi

step "table: ppsim plain and fused against PyTorch"
python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import json, math, pathlib, sys
out = pathlib.Path(sys.argv[1])
ref = json.load(open(out / "torch.json"))["runs"] if (out / "torch.json").exists() else []
def block(kernels, model, b):
    """F + B + W ms and saved bytes of the profile's transformer block at micro-batch b."""
    try:
        prof = json.load(open(out / f"{kernels}-{model}.json"))
        l = next(x for x in prof["layers"] if x["kind"] == "transformer_block" and x["shape"]["micro_batch"] == b)
    except (OSError, StopIteration, KeyError, ValueError):
        return math.nan, "n/a"
    return sum(l[k]["median"] for k in ("forward_ms", "backward_input_ms", "backward_weight_ms")), l["activation_bytes"]
print("| model | b | ppsim plain F+B+W ms | ppsim fused F+B+W ms | PyTorch F+B ms | plain / PyTorch | fused / PyTorch "
      "| saved bytes plain | fused |")
print("|---|---|---|---|---|---|---|---|---|")
models = [p.stem.split("-", 1)[1] for p in sorted(out.glob("plain-*.json"))]
for model in models:
    for b in sorted({l["shape"]["micro_batch"] for l in json.load(open(out / f"plain-{model}.json"))["layers"]}):
        (plain, act_p), (fused, act_f) = block("plain", model, b), block("fused", model, b)
        theirs = next((r["forward_ms"] + r["backward_ms"] for r in ref
                       if r["model"] == model and r["shape"]["micro_batch"] == b), math.nan)
        print(f"| {model} | {b} | {plain:.3f} | {fused:.3f} | {theirs:.3f} | {plain / theirs:.2f} | "
              f"{fused / theirs:.2f} | {act_p} | {act_f} |")
for f in sorted(out.glob("flash-*.json")):  # fused with the flash kernels instead of chunked attention
    model = f.stem.split("-", 1)[1]
    for b in sorted({l["shape"]["micro_batch"] for l in json.load(open(f))["layers"]}):
        print(f"\nfused {model} b={b}: chunked attention {block('fused', model, b)[0]:.3f} ms, "
              f"flash kernels {block('flash', model, b)[0]:.3f} ms (F+B+W)")
PY

if [ -f "$OUT/torch.json" ]; then
  first=${MODELS%% *}
  step "torch.profiler trace of $first (b = 1) and its import"
  python3 tools/torch_block.py trace --model "configs/models/$first.json" --micro-batch 1 --iters 10 \
    -o "$OUT/trace-$first.json" && gzip -kf "$OUT/trace-$first.json"
  "$CAL" import "$OUT/trace-$first.json" --model "configs/models/$first.json" --skip 1 -o "$OUT/imported-$first.json"
  echo "import rc=$?"
  rm -f "$OUT/trace-$first.json"  # the .gz stays: the committed test trace is made from it
fi

step "links ($GPU_BACKEND) and their fits"
"$CAL" p2p --backend "$GPU_BACKEND" --min-size 4KiB --max-size 1GiB -o "$OUT/links.json" 2>"$OUT/p2p.log"
echo "p2p rc=$?"
"$CAL" validate "$OUT/links.json" | tee "$OUT/link-fits.txt"
if [ "$GPU_BACKEND" = cuda ]; then
  step "NCCL collectives on this machine's GPUs"
  "$CAL" collectives --transport nccl --ops all_reduce,all_gather,reduce_scatter,broadcast --max-bytes 256MiB \
    -o "$OUT/collectives.json" >"$OUT/collectives.txt" 2>&1
  echo "collectives rc=$?"; tail -4 "$OUT/collectives.txt"
fi
