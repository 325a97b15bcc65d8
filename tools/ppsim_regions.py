"""Name the regions of a PyTorch job so `ppsim-calibrate import TRACE.json` can read them.

Wrap each phase of one transformer block (and optionally the embedding and the head) in
`region(LAYER, PHASE)`; LAYER is "block", "embedding" or "head", PHASE "F" (forward),
"B" (backward, or its input-gradient part when "W" is given separately) or "W"
(weight-gradient). Regions must not nest or overlap on one thread. Profile with CUDA
activity on and export a Chrome trace:

    from torch.profiler import profile, ProfilerActivity
    from ppsim_regions import region
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            with region("block", "F"):
                y = block(x)
            with region("block", "B"):
                y.backward(dy)
    prof.export_chrome_trace("trace.json")

Then: ppsim-calibrate import trace.json --model configs/models/gpt3-1.3b.json --micro-batch 1 -o mine.json
(docs/cli.md, calibrate/README.md "Importing a PyTorch trace").
"""
import torch


def region(layer: str, phase: str):
    """A torch.profiler.record_function named ppsim/LAYER/PHASE (a context manager)."""
    if layer not in ("block", "embedding", "head"):
        raise ValueError(f"layer must be block, embedding or head, got {layer!r}")
    if phase not in ("F", "B", "W"):
        raise ValueError(f"phase must be F, B or W, got {phase!r}")
    return torch.profiler.record_function(f"ppsim/{layer}/{phase}")
