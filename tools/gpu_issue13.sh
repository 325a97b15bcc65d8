#!/usr/bin/env bash
# Issue 13's GPU run, for a lent GPU machine (one script, everything under $OUT):
# builds ppsim-calibrate (standalone calibrate/ build: no Boost needed), runs `check`
# (plain and fused kernels), measures the blocks of GPT-3 1.3B and 13B at b = 1 and 4
# with --kernels plain and --kernels fused, times PyTorch's own
# block at the same shapes (tools/torch_block.py time), captures a torch.profiler trace
# and imports it (ppsim-calibrate import), measures the CUDA links and reports the
# link fits, and writes the ppsim-vs-PyTorch table (table.md).
# Not run yet: no GPU was lent when it was written (2026-11-30); expect to fix paths.
#   OUT=/tmp/out tools/gpu_issue13.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu13}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
cmake -S calibrate -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/cmake.log" 2>&1
cmake --build build-gpu -j"$(nproc)" >"$OUT/build.log" 2>&1
C=build-gpu/ppsim-calibrate
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv >"$OUT/clocks.csv" || true
# The fused CUDA kernels were written without a GPU: a failed check is reported, not fatal.
$C check --backend cuda -o "$OUT/check.json" | tee "$OUT/check.txt" || echo "check: FAILURES (see check.txt)"
# hidden heads seq ffn block kv_heads, as the presets say
declare -A H=([gpt3-1.3b]="2048 16 2048 8192 gpt 16" [gpt3-13b]="5120 40 2048 20480 gpt 40"
              [llama2-7b]="4096 32 4096 11008 llama 32")
for m in gpt3-1.3b gpt3-13b llama2-7b; do
  read -r h a s f blk kv <<<"${H[$m]}"
  $C layers --backend cuda --model "configs/models/$m.json" --micro-batches 1,4 --blocks-only \
    --warmup 10 --target-ms 200 -o "$OUT/plain-$m.json" 2>>"$OUT/layers.log" ||
    echo "layers $m: failed (see layers.log)"
  if [ "$blk" = gpt ] || [ "$blk" = llama ]; then  # fused kernels: GPT and Llama blocks
    $C layers --backend cuda --model "configs/models/$m.json" --micro-batches 1,4 --blocks-only \
      --kernels fused --warmup 10 --target-ms 200 -o "$OUT/fused-$m.json" 2>>"$OUT/layers.log" ||
      echo "layers --kernels fused $m: failed (see layers.log)"
  fi
  for b in 1 4; do
    python3 tools/torch_block.py time --block "$blk" --kv-heads "$kv" --hidden "$h" --heads "$a" --seq "$s" \
      --ffn-hidden "$f" --micro-batch "$b" -o "$OUT/torch-$m-b$b.json" || echo "torch_block $m b=$b: failed"
  done
done
python3 tools/torch_block.py trace --hidden 2048 --heads 16 --seq 2048 --micro-batch 1 --iters 10 \
  -o "$OUT/trace-gpt3-1.3b.json"
$C import "$OUT/trace-gpt3-1.3b.json" --model configs/models/gpt3-1.3b.json --skip 1 -o "$OUT/imported-gpt3-1.3b.json"
$C p2p --backend cuda -o "$OUT/links.json" 2>"$OUT/p2p.log"
$C validate "$OUT/links.json" | tee "$OUT/link-fits.txt"
python3 - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = ["| model | b | ppsim plain F+B+W ms | ppsim fused F+B+W ms | PyTorch F+B ms | plain/PyTorch | fused/PyTorch "
        "| activation B plain | fused |", "|---|---|---|---|---|---|---|---|---|"]
def block(kernels, m, b):
    if not (out / f"{kernels}-{m}.json").exists():
        return float("nan"), "n/a"
    prof = json.load(open(out / f"{kernels}-{m}.json"))
    l = next(x for x in prof["layers"] if x["kind"] == "transformer_block" and x["shape"]["micro_batch"] == b)
    return sum(l[k]["median"] for k in ("forward_ms", "backward_input_ms", "backward_weight_ms")), l["activation_bytes"]
for m in ("gpt3-1.3b", "gpt3-13b", "llama2-7b"):
    for b in (1, 4):
        if not (out / f"torch-{m}-b{b}.json").exists():
            continue
        ref = json.load(open(out / f"torch-{m}-b{b}.json"))
        (plain, act_p), (fused, act_f) = block("plain", m, b), block("fused", m, b)
        theirs = ref["forward_ms"] + ref["backward_ms"]
        rows.append(f"| {m} | {b} | {plain:.3f} | {fused:.3f} | {theirs:.3f} | {plain / theirs:.2f} | "
                    f"{fused / theirs:.2f} | {act_p} | {act_f} |")
(out / "table.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
