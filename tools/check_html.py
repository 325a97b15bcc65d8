#!/usr/bin/env python3
"""Browser test of `ppsim run --html` (ctest "html_browser").

Writes the interactive page of a 1F1B run (p=4, m=8, real costs with send/recv lanes and
memory), opens it from file:// in headless Chromium (the Debian package), waits for the
view (the page puts "ppsim-view: ok ops=N errors=E" in document.title once drawn, which
--dump-dom prints), checks that it drew one box per op of the run's timeline and logged
no error, and, opened as page.html#zoom-check, that a mouse-wheel over the chart zooms
the time axis the Gantt chart and the memory panel share; then saves a screenshot and
checks its size and that it is not blank.

    python3 tools/check_html.py PPSIM_BINARY OUT_DIR

Exit: 0 ok; 1 a check failed; 77 (skip) without Chromium or the npm packages.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, HEIGHT = 1200, 1000
CONFIG = {
    "model": {"layers": [{"repeat": 16, "forward_ms": 1.0, "backward_ms": 2.0,
                          "activation_bytes": 67108864, "parameter_bytes": 33554432,
                          "output_bytes": 16777216}]},
    "cluster": {"devices": 4, "link": {"latency_us": 20, "bandwidth_GBps": 25}},
    "pipeline": {"schedule": "1f1b", "stages": 4, "microbatches": 8, "chunks": 1},
}


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser(exe, *args):
    # --no-sandbox: ctest may run as root; --virtual-time-budget lets the page's
    # promises settle before the DOM is dumped or the screenshot taken.
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--allow-file-access-from-files",
           "--virtual-time-budget=20000", f"--window-size={WIDTH},{HEIGHT}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_pixels(path):
    """Width, height and RGB rows of an 8-bit RGB/RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        fail(f"unexpected PNG format depth={depth} colour={colour} interlace={interlace}")
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    ppsim, out = sys.argv[1], sys.argv[2]
    exe = chromium()
    if not exe:
        skip("chromium not found; install it with tools/setup.sh (Debian package chromium)")
    for pkg in ("vega", "vega-lite", "vega-embed"):
        if not os.path.exists(os.path.join(REPO, "node_modules", pkg, "package.json")):
            skip(f"npm package {pkg} not installed in {REPO}/node_modules (run tools/setup.sh)")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    config, page, timeline = (os.path.join(out, n) for n in ("config.json", "page.html", "timeline.json"))
    shot = os.path.join(out, "page.png")
    json.dump(CONFIG, open(config, "w"))
    run = subprocess.run([ppsim, "run", config, "--html", page, "--timeline", timeline],
                         capture_output=True, text=True, env=dict(os.environ, PPSIM_DATA_DIR=REPO))
    if run.returncode != 0:
        fail(f"ppsim run --html exited {run.returncode}: {run.stderr.strip()}")
    html = open(page, encoding="utf-8").read()
    if re.search(r'<script[^>]+src=|<link[^>]+href=', html):
        fail("the page loads a script from elsewhere; it must be self-contained")
    ops = sum(1 for e in json.load(open(timeline))["events"] if e["lane"] == "compute")
    url = "file://" + os.path.abspath(page)
    dom = browser(exe, "--dump-dom", url + "#zoom-check")
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S)
    title = title.group(1).strip() if title else f"(no title; chromium exit {dom.returncode})"
    print(f"chromium --dump-dom: document.title = {title!r}")
    want = f"ppsim-view: ok ops={ops} errors=0 zoom=in "
    if not title.replace("&gt;", ">").startswith(want):
        fail(f"expected '{want}...' ({ops} ops in the timeline, the wheel zooming in)")
    shot_run = browser(exe, f"--screenshot={shot}", url)
    if not os.path.exists(shot):
        fail(f"no screenshot (chromium exit {shot_run.returncode}: {shot_run.stderr.strip()[-300:]})")
    width, height, rows = png_pixels(shot)
    pixels = [p for row in rows[::2] for p in row[::2]]
    inked = sum(1 for p in pixels if min(p) < 235) / len(pixels)
    colours = len(set(pixels))
    grey = [sum(p) / 3 for p in pixels]
    mean = sum(grey) / len(grey)
    spread = (sum((g - mean) ** 2 for g in grey) / len(grey)) ** 0.5
    print(f"screenshot {shot}: {width}x{height}, {os.path.getsize(shot)} bytes, "
          f"{100 * inked:.1f}% inked, {colours} colours, grey stddev {spread:.1f}")
    if (width, height) != (WIDTH, HEIGHT):
        fail(f"screenshot is {width}x{height}, not {WIDTH}x{HEIGHT}")
    if inked < 0.03 or colours < 8 or spread < 10:
        fail("screenshot looks blank")
    print(f"ok: {ops} op boxes drawn, no error logged, screenshot not blank")


if __name__ == "__main__":
    main()
