#!/usr/bin/env python3
"""Runs ppsim on each config and validates the emitted timeline against the JSON Schema,
plus the invariants a schema cannot say (end >= start, events within device range).
Usage: check_timeline.py PPSIM SCHEMA CONFIG [CONFIG...]  (exit 77 = skipped)
       check_timeline.py --files SCHEMA TIMELINE [TIMELINE...]  (timelines already written,
       e.g. a replay's measured one)"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed (tools/setup.sh installs it)")
    sys.exit(77)


def check(validator, name: str, path: str) -> int:
    """Validates one timeline file; returns the number of failures (0 or more)."""
    with open(path) as f:
        tl = json.load(f)
    errors = list(validator.iter_errors(tl))
    for e in errors[:5]:
        print(f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
    bad = [e for e in tl["events"] if e["end"] < e["start"] or e["device"] >= tl["devices"]]
    if bad:
        print(f"{name}: {len(bad)} events end before they start or name a device out of range")
    print(f"{name}: {len(tl['events'])} events, {len(tl['memory'])} memory samples: "
          + ("ok" if not errors and not bad else "FAILED"))
    return bool(errors) + bool(bad)


def main() -> int:
    files = sys.argv[1] == "--files"
    args = sys.argv[2:] if files else sys.argv[1:]
    ppsim, schema_path, inputs = (None, args[0], args[1:]) if files else (args[0], args[1], args[2:])
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in inputs:
            out = name
            if not files:
                out = os.path.join(tmp, "timeline.json")
                subprocess.run([ppsim, "run", name, "--timeline", out], check=True, stdout=subprocess.DEVNULL)
            failures += check(validator, name, out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
