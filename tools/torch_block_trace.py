#!/usr/bin/env python3
"""PyTorch's own GPT block (scaled_dot_product_attention, bf16) profiled with ppsim regions.

Runs forward and the whole backward (input and weight gradients in one autograd call:
PyTorch computes them together, and asking autograd for the weights alone would redo the
activation gradients) as regions F and B, after a warm-up, and writes
torch.profiler's Chrome trace, which `ppsim-calibrate import` turns into a profile. This
is the reference for issue 13 (a real framework's block) and the source of the committed
trace test; it needs a CUDA GPU and PyTorch, so it runs on the lent GPU machine only:

    python3 tools/torch_block_trace.py --hidden 2048 --heads 16 --seq 2048 --micro-batch 1 -o trace.json
"""
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--ffn-hidden", type=int, default=0)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("-o", "--output", default="trace.json")
    a = p.parse_args()
    dev = torch.device("cuda")
    block = Block(a.hidden, a.heads, a.ffn_hidden or 4 * a.hidden).to(dev, torch.bfloat16)
    params = [t for t in block.parameters()]
    x = torch.randn(a.micro_batch, a.seq, a.hidden, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn_like(x)

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
