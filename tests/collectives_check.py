#!/usr/bin/env python3
"""Checks a `ppsim-calibrate collectives` JSON (ppsim.collectives/1) of a 2-rank run:
every op x size present once, times > 0, algbw = bytes / time, busbw = algbw x the
bus-bandwidth factor exactly (nccl-tests' factors at n = 2, written out by hand)."""
import json
import sys

path, ops, sizes = sys.argv[1], sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")]
FACTOR_AT_2 = {"all_reduce": 1.0, "all_gather": 0.5, "reduce_scatter": 0.5, "broadcast": 1.0}
doc = json.load(open(path))
errors = []
if doc.get("schema") != "ppsim.collectives/1":
    errors.append("schema: %r" % doc.get("schema"))
if doc.get("ranks") != 2 or doc.get("world_ranks") != 2 or doc.get("transport") != "mpi":
    errors.append("header: ranks %r world %r transport %r" % (doc.get("ranks"), doc.get("world_ranks"), doc.get("transport")))
seen = {}
for r in doc["results"]:
    key = (r["op"], r["bytes"])
    if key in seen:
        errors.append("%s %d twice" % key)
    seen[key] = r
    if not r["time_ms"] > 0:
        errors.append("%s %d: time_ms %r" % (key + (r["time_ms"],)))
        continue
    algbw = r["bytes"] / (r["time_ms"] * 1e-3) / 1e9
    if abs(r["algbw_GBps"] - algbw) > 1e-12 * algbw:
        errors.append("%s %d: algbw %r, bytes / time %r" % (key + (r["algbw_GBps"], algbw)))
    if r["busbw_GBps"] != r["algbw_GBps"] * FACTOR_AT_2[r["op"]]:
        errors.append("%s %d: busbw %r != algbw x %r" % (key + (r["busbw_GBps"], FACTOR_AT_2[r["op"]])))
    if r["ranks"] != 2 or r["transport"] != "mpi" or r["algorithm"] != "auto":
        errors.append("%s %d: ranks/transport/algorithm %r %r %r" % (key + (r["ranks"], r["transport"], r["algorithm"])))
for op in ops:
    for b in sizes:
        if (op, b) not in seen:
            errors.append("missing %s %d" % (op, b))
    if op != "broadcast" and op not in doc.get("ring_links", {}):
        errors.append("ring_links: no %s" % op)
if len(seen) != len(ops) * len(sizes):
    errors.append("%d results, expected %d" % (len(seen), len(ops) * len(sizes)))
for e in errors:
    print("collectives_check:", e)
sys.exit(1 if errors else 0)
