#!/usr/bin/env python3
"""Runs ppsim on each config and validates the emitted timeline against the JSON Schema,
plus the invariants a schema cannot say (end >= start, events within device range).
Usage: check_timeline.py PPSIM SCHEMA CONFIG [CONFIG...]  (exit 77 = skipped)"""
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


def main() -> int:
    ppsim, schema_path, configs = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in configs:
            out = os.path.join(tmp, "timeline.json")
            subprocess.run([ppsim, "run", cfg, "--timeline", out], check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                tl = json.load(f)
            errors = list(validator.iter_errors(tl))
            for e in errors[:5]:
                print(f"{cfg}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
            bad = [e for e in tl["events"] if e["end"] < e["start"] or e["device"] >= tl["devices"]]
            if bad:
                print(f"{cfg}: {len(bad)} events end before they start or name a device out of range")
            failures += bool(errors) + bool(bad)
            print(f"{cfg}: {len(tl['events'])} events, {len(tl['memory'])} memory samples: "
                  + ("ok" if not errors and not bad else "FAILED"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
