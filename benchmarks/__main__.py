"""`python -m benchmarks [--quick]`: every suite, one table each, results as JSON.

Servers and load generators run as separate processes on loopback; every loop is
bounded in count and time. Ratios compare the inspector with baselines measured
in the same run, on the same machine, with the same load generator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks import suites
from benchmarks.procs import ROOT, machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (seconds, not minutes)")
    parser.add_argument("--only", default="", help="comma-separated suites: " + ",".join(suites.ALL))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    args = parser.parse_args()

    chosen = [name for name in suites.ALL if not args.only or name in args.only.split(",")]
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        results[name] = suites.ALL[name](args.quick)
        print(f"({time.monotonic() - started:.1f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (args.out / f"{'quick' if args.quick else 'full'}-{stamp}.json", args.out / "latest.json"):
        path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {args.out / 'latest.json'}")


if __name__ == "__main__":
    main()
