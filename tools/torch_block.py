#!/usr/bin/env python3
"""PyTorch's own GPT or Llama block (scaled_dot_product_attention, bf16): timed, or traced with ppsim regions.

The reference a real framework gives for ppsim-calibrate's layers (issue 13). Forward and
the whole backward (input and weight gradients in one autograd call: PyTorch computes
them together; asking autograd for the weights alone would redo the activation
gradients). Needs a CUDA GPU and PyTorch, so it runs on a GPU machine only.

  --block gpt (default): pre-LN, fused QKV with biases, causal SDPA with dropout 0.1, GeLU
  MLP, residual dropouts. --block llama [--kv-heads K]: RMSNorm, Q/K/V without biases,
  rotary positions (rotate-half, theta 10000), causal SDPA with grouped-query heads, SwiGLU
  (gate, up, down), no dropout: the block ppsim-calibrate measures for "block": "llama".

  The shape comes from ppsim's model presets (--model, one or several, comma-separated:
  hidden, heads, kv_heads, ffn_hidden, seq_length, block), the one place it is written,
  or from --hidden/--heads/... for a shape no preset has.

  time:  warm-up, then the median of CUDA-event times per phase (the method of
         ppsim-calibrate layers), for every model x micro-batch in one process, written as
         JSON ({"runs": [{"model", "shape", "forward_ms", "backward_ms"}, ...]}):
             python3 tools/torch_block.py time --model configs/models/gpt3-1.3b.json --micro-batch 1,4 -o ref.json
  trace: torch.profiler's Chrome trace with ppsim/block/F and ppsim/block/B regions, which
         `ppsim-calibrate import` turns into a profile (the first model and micro-batch):
             python3 tools/torch_block.py trace --model configs/models/gpt3-1.3b.json -o trace.json
"""
import json
import statistics
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppsim_regions import region  # noqa: E402


class Block(torch.nn.Module):
    """Pre-LN GPT block: LN, fused QKV, causal SDPA, projection, LN, MLP h->ffn->h (GeLU)."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.proj = torch.nn.Linear(hidden, hidden)
        self.ln2 = torch.nn.LayerNorm(hidden)
        self.fc1 = torch.nn.Linear(hidden, ffn)
        self.fc2 = torch.nn.Linear(ffn, hidden)

    def forward(self, x):  # x: [b, s, h]
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.1)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(b, s, h)), 0.1)
        return x + F.dropout(self.fc2(F.gelu(self.fc1(self.ln2(x)))), 0.1)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaBlock(torch.nn.Module):
    """Pre-RMSNorm Llama block: Q/K/V (GQA), rotary, causal SDPA, projection, RMSNorm, SwiGLU."""

    def __init__(self, hidden, heads, kv_heads, ffn):
        super().__init__()
        self.heads, self.kv_heads, d = heads, kv_heads, hidden // heads
        self.norm1 = torch.nn.RMSNorm(hidden, eps=1e-5)
        self.q = torch.nn.Linear(hidden, hidden, bias=False)
        self.k = torch.nn.Linear(hidden, kv_heads * d, bias=False)
        self.v = torch.nn.Linear(hidden, kv_heads * d, bias=False)
        self.o = torch.nn.Linear(hidden, hidden, bias=False)
        self.norm2 = torch.nn.RMSNorm(hidden, eps=1e-5)
        self.gate = torch.nn.Linear(hidden, ffn, bias=False)
        self.up = torch.nn.Linear(hidden, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, hidden, bias=False)
        self.inv_freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)

    def forward(self, x):  # x: [b, s, h]
        b, s, h = x.shape
        d = h // self.heads
        y = self.norm1(x)
        q = self.q(y).view(b, s, self.heads, d).transpose(1, 2)
        k = self.k(y).view(b, s, self.kv_heads, d).transpose(1, 2)
        v = self.v(y).view(b, s, self.kv_heads, d).transpose(1, 2)
        angles = torch.outer(torch.arange(s, device=x.device, dtype=torch.float32), self.inv_freq.to(x.device))
        cos = torch.cat((angles, angles), dim=-1).cos().to(x.dtype)
        sin = torch.cat((angles, angles), dim=-1).sin().to(x.dtype)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        x = x + self.o(a.transpose(1, 2).reshape(b, s, h))
        y = self.norm2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


def time_phases(block, params, x, dy, warmup, iters):
    """Median ms of forward and of the whole backward, each between two CUDA events."""
    f_ms, b_ms = [], []
    for i in range(warmup + iters):
        e = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        e[0].record()
        y = block(x)
        e[1].record()
        torch.autograd.grad(y, [x] + params, dy)
        e[2].record()
        torch.cuda.synchronize()
        if i >= warmup:
            f_ms.append(e[0].elapsed_time(e[1]))
            b_ms.append(e[1].elapsed_time(e[2]))
    return statistics.median(f_ms), statistics.median(b_ms)


def shapes(a):
    """(model name, shape dict) per --model preset, or the one shape of the flags."""
    if not a.model:
        if not (a.hidden and a.heads and a.seq):
            sys.exit("torch_block.py: give --model PRESET.json or --hidden, --heads and --seq")
        yield "custom", {"block": a.block, "hidden": a.hidden, "heads": a.heads, "kv_heads": a.kv_heads or a.heads,
                         "seq_length": a.seq, "ffn_hidden": a.ffn_hidden or 4 * a.hidden}
        return
    for path in a.model.split(","):
        with open(path) as fh:
            m = json.load(fh)
        yield os.path.basename(path).removesuffix(".json"), {
            "block": m.get("block", "gpt"), "hidden": m["hidden"], "heads": m["heads"],
            "kv_heads": m.get("kv_heads", m["heads"]), "seq_length": m["seq_length"],
            "ffn_hidden": m.get("ffn_hidden", 4 * m["hidden"])}


def make_block(shape):
    if shape["block"] == "llama":
        return LlamaBlock(shape["hidden"], shape["heads"], shape["kv_heads"], shape["ffn_hidden"])
    return Block(shape["hidden"], shape["heads"], shape["ffn_hidden"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["time", "trace"])
    p.add_argument("--model", default="", help="ppsim model preset(s), comma-separated (configs/models/*.json)")
    p.add_argument("--hidden", type=int, default=0)
    p.add_argument("--heads", type=int, default=0)
    p.add_argument("--seq", type=int, default=0)
    p.add_argument("--ffn-hidden", type=int, default=0)
    p.add_argument("--block", choices=["gpt", "llama"], default="gpt")
    p.add_argument("--kv-heads", type=int, default=0, help="llama: key/value heads (default: --heads)")
    p.add_argument("--micro-batch", default="1", help="micro-batch size(s), comma-separated")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    dev = torch.device("cuda")
    runs = []
    for name, shape in shapes(a):
        block = make_block(shape).to(dev, torch.bfloat16)
        params = list(block.parameters())
        for b in [int(x) for x in a.micro_batch.split(",")]:
            x = torch.randn(b, shape["seq_length"], shape["hidden"], device=dev, dtype=torch.bfloat16,
                            requires_grad=True)
            dy = torch.randn_like(x)
            if a.mode == "trace":
                trace(block, params, x, dy, a)
                return
            f, bw = time_phases(block, params, x, dy, a.warmup, a.iters)
            runs.append({"model": name, "shape": dict(shape, micro_batch=b, dtype="bf16"),
                         "forward_ms": f, "backward_ms": bw})
            print(f"{name} b={b}: forward {f:.4f} ms, backward {bw:.4f} ms (median of {a.iters})", flush=True)
            del x, dy
        del block, params
        torch.cuda.empty_cache()
    out = {"tool": "torch_block.py", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
           "warmup": a.warmup, "iterations": a.iters, "runs": runs}
    with open(a.output, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"wrote {a.output}")


def trace(block, params, x, dy, a):
    """torch.profiler's Chrome trace of a.iters steps, each F and B in its ppsim region."""
    def step(regions):
        ctx = region if regions else (lambda *_: torch.autograd.profiler.record_function("warmup"))
        with ctx("block", "F"):
            y = block(x)
        with ctx("block", "B"):
            torch.autograd.grad(y, [x] + params, dy)

    for _ in range(a.warmup):
        step(False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(a.iters):
            step(True)
        torch.cuda.synchronize()
    prof.export_chrome_trace(a.output)
    print(f"wrote {a.output}: {a.iters} iterations of F and B (the whole backward)")


if __name__ == "__main__":
    main()
