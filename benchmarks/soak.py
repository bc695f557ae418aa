"""Soak: `python -m benchmarks.soak [--minutes 10]` (not in CI).

Mixed load on one inspector for a bounded time: 2 KiB Dispatch calls at 500/s and 64 KiB ones
at 100/s (separate load-generator processes), SSE clients connecting and leaving in a loop, one
client that never reads, and an export every 30 s. Memory (RSS) and the server's asyncio task
count are sampled every few seconds; both should be flat once the buffer is full.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.procs import ROOT, Server
from benchmarks.suites import slope


def _churn(url: str, deadline: float, counter: list[int]) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    while time.monotonic() < deadline:
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            sock.settimeout(5)
            sock.recv(4096)
        counter[0] += 1


def soak(minutes: float) -> dict[str, Any]:
    seconds = minutes * 60
    inspector = Server.inspector("--buffer-bytes", "128MiB")
    deadline = time.monotonic() + seconds
    loads = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.loadgen",
                inspector.grpc_target,
                "--payload-bytes",
                str(size),
                "--concurrency",
                "16",
                "--seconds",
                str(seconds),
                "--rate",
                str(rate),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for size, rate in ((2048, 500), (65536, 100))
    ]
    host, port = inspector.http_url.removeprefix("http://").rsplit(":", 1)
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    churned = [0]
    churner = threading.Thread(target=_churn, args=(inspector.http_url, deadline, churned), daemon=True)
    churner.start()
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    next_export = started + 30
    exports = 0
    try:
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            stats = httpx.get(f"{inspector.http_url}/api/stats", timeout=30).json()
            samples.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "rss_mib": round(inspector.rss_mib(), 1),
                    "tasks": stats["tasks"],
                    "subscribers": stats["subscribers"],
                    "captures": stats["total"],
                }
            )
            print(f"  {samples[-1]}", flush=True)
            if time.monotonic() >= next_export:
                httpx.get(f"{inspector.http_url}/api/export", timeout=120).raise_for_status()
                exports += 1
                next_export += 30
        results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in loads]
    finally:
        stalled.close()
        inspector.stop()
    half = samples[len(samples) // 2 :]
    return {
        "minutes": minutes, "calls": sum(r["calls"] for r in results), "errors": sum(r["errors"] for r in results),
        "sse_connections": churned[0], "exports": exports, "samples": samples,
        "rss_first_mib": samples[0]["rss_mib"] if samples else None,
        "rss_last_mib": samples[-1]["rss_mib"] if samples else None,
        "rss_slope_last_half_mib_per_min": round(slope([(s["t"], s["rss_mib"]) for s in half]) * 60, 3),
        "tasks_slope_last_half_per_min": round(slope([(s["t"], s["tasks"]) for s in half]) * 60, 3),
        "tasks_max": max(s["tasks"] for s in samples) if samples else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak.json")
    args = parser.parse_args()
    result = soak(args.minutes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
