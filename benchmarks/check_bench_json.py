#!/usr/bin/python3
"""Checks an `attn-bench --json` file: strict JSON (what `python3 -m json.tool` parses, minus the
NaN and Infinity it lets through), the top-level keys, rows from every group named, and scaling
entries when there were several --threads passes.

Usage: check_bench_json.py FILE GROUP...   (exit status 0: fine; 1: with the reason on stderr)
"""
import json
import sys


def reject_constant(name):
    raise ValueError(f"{name} is not JSON (a missing figure must be null)")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path, groups = sys.argv[1], sys.argv[2:]
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, parse_constant=reject_constant)
    except (OSError, ValueError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    missing = [k for k in ("format", "header", "passes", "rows", "scaling") if k not in doc]
    if missing:
        print(f"{path}: no {', '.join(missing)}", file=sys.stderr)
        return 1
    for key in ("git_commit", "libattn_version", "openblas_config", "cpu_model", "runs", "quick"):
        if key not in doc["header"]:
            print(f"{path}: header has no {key}", file=sys.stderr)
            return 1
    threads = {p["threads"] for p in doc["passes"]}
    for row in doc["rows"]:
        if not {"group", "case", "threads"} <= row.keys() or row["threads"] not in threads:
            print(f"{path}: a row without group, case or a pass's thread count: {row}", file=sys.stderr)
            return 1
    if len(doc["passes"]) > 1 and not doc["scaling"]:
        print(f"{path}: {len(doc['passes'])} passes but no scaling entries", file=sys.stderr)
        return 1
    seen = {row["group"] for row in doc["rows"]}
    absent = [g for g in groups if g not in seen]
    if absent:
        print(f"{path}: no rows of {', '.join(absent)}", file=sys.stderr)
        return 1
    print(f"{path}: {len(doc['rows'])} rows of {', '.join(sorted(seen))}, {len(doc['passes'])} pass(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
