"""The benchmark suites. Each takes `quick` and returns plain data for the JSON results."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks.browser import browser
from benchmarks.procs import Server, SseClients, loadgen

KiB, MiB = 1024, 1024 * 1024


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in [h, *(r[i] for r in rows)]) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)), flush=True)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n // KiB} KiB"


def _medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key in ("qps", "p50_ms", "p99_ms", "server_cpu_us_per_call") if key in results[0]]
    merged: dict[str, Any] = {key: round(statistics.median(r[key] for r in results), 3) for key in keys}
    merged["calls"] = sum(r["calls"] for r in results)
    merged["errors"] = sum(r["errors"] for r in results)
    return merged


def _last_id(server: Server) -> int:
    return int(httpx.get(f"{server.http_url}/api/stats").json()["last_id"])


# --- 1. Dispatch throughput and latency -------------------------------------------------------


def dispatch(quick: bool) -> dict[str, Any]:
    payloads = [2 * KiB] if quick else [2 * KiB, 64 * KiB, MiB]
    concurrencies = [1, 64] if quick else [1, 16, 64]
    seconds = 0.5 if quick else 2.0
    repeats = 1 if quick else 3
    # All four servers run side by side (idle ones cost nothing) and take turns within each
    # repetition, so slow drifts of the machine hit them alike; each cell reports the median.
    servers = {
        "baseline-raw": Server.baseline("raw"),
        "baseline-typed": Server.baseline("typed"),
        "inspector": Server.inspector(),
        "inspector+2sse": Server.inspector(),
    }
    clients = SseClients(servers["inspector+2sse"].http_url, 2, count_only=True)
    cells: list[dict[str, Any]] = []
    try:
        for payload in payloads:
            for concurrency in concurrencies:
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                for _ in range(repeats):
                    for name, server in servers.items():
                        cpu_before = server.cpu_seconds()
                        result = loadgen(server.grpc_target, payload, concurrency, seconds)
                        result["server_cpu_us_per_call"] = (
                            (server.cpu_seconds() - cpu_before) * 1e6 / max(1, result["calls"])
                        )
                        runs[name].append(result)
                for name, results in runs.items():
                    cells.append(
                        {
                            "server": name,
                            "payload": payload,
                            "concurrency": concurrency,
                            "repeats": repeats,
                            **_medians(results),
                        }
                    )
        sse_results = clients.finish(_last_id(servers["inspector+2sse"]))
    finally:
        for server in servers.values():
            server.stop()

    def cell(server: str, payload: int, concurrency: int) -> dict[str, Any]:
        return next(c for c in cells if (c["server"], c["payload"], c["concurrency"]) == (server, payload, concurrency))

    rows, ratios = [], []
    for payload in payloads:
        for concurrency in concurrencies:
            raw, typed = cell("baseline-raw", payload, concurrency), cell("baseline-typed", payload, concurrency)
            for name in ("inspector", "inspector+2sse"):
                mine = cell(name, payload, concurrency)
                ratio = {
                    "server": name,
                    "payload": payload,
                    "concurrency": concurrency,
                    "qps_vs_typed": round(mine["qps"] / typed["qps"], 3),
                    "qps_vs_raw": round(mine["qps"] / raw["qps"], 3),
                    "added_p50_ms_vs_typed": round(mine["p50_ms"] - typed["p50_ms"], 3),
                }
                ratios.append(ratio)
            for c in (
                raw,
                typed,
                cell("inspector", payload, concurrency),
                cell("inspector+2sse", payload, concurrency),
            ):
                r = next(
                    (
                        x
                        for x in ratios
                        if (x["server"], x["payload"], x["concurrency"]) == (c["server"], payload, concurrency)
                    ),
                    None,
                )
                rows.append(
                    [
                        _size(payload),
                        concurrency,
                        c["server"],
                        c["qps"],
                        c["p50_ms"],
                        c["p99_ms"],
                        c["errors"],
                        c["server_cpu_us_per_call"],
                        r["qps_vs_typed"] if r else "",
                        r["qps_vs_raw"] if r else "",
                    ]
                )
    _table(
        ["payload", "conc", "server", "qps", "p50 ms", "p99 ms", "errors", "server CPU us/call", "x typed", "x raw"],
        rows,
    )
    return {"seconds_per_cell": seconds, "cells": cells, "ratios": ratios, "sse_clients": sse_results}


# --- 2. SSE delivery ----------------------------------------------------------------------------


def _stalled_reader(url: str) -> socket.socket:
    """A client that asks for the stream and never reads a byte."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def sse(quick: bool) -> dict[str, Any]:
    rates = [500] if quick else [500, 2000]
    seconds = 1.0 if quick else 5.0
    runs = []
    inspector = Server.inspector()
    try:
        for rate in rates:
            for stalled in (False, True):
                sock = _stalled_reader(inspector.http_url) if stalled else None
                clients = SseClients(inspector.http_url, 2)
                load = loadgen(inspector.grpc_target, 2 * KiB, 64, seconds, rate=rate)
                received = clients.finish(_last_id(inspector))
                if sock is not None:
                    sock.close()
                runs.append(
                    {
                        "rate": rate,
                        "stalled_client": stalled,
                        "qps": load["qps"],
                        "dispatch_p99_ms": load["p99_ms"],
                        "clients": received,
                        "p50_ms": max(c["p50_ms"] for c in received),
                        "p99_ms": max(c["p99_ms"] for c in received),
                        "complete": all(c["complete"] for c in received),
                    }
                )
    finally:
        inspector.stop()
    _table(
        ["rate/s", "stalled client", "qps", "dispatch p99 ms", "SSE p50 ms", "SSE p99 ms", "all delivered"],
        [
            [r["rate"], r["stalled_client"], r["qps"], r["dispatch_p99_ms"], r["p50_ms"], r["p99_ms"], r["complete"]]
            for r in runs
        ],
    )
    for rate in rates:
        plain, with_stalled = (
            next(r for r in runs if r["rate"] == rate and r["stalled_client"] is s) for s in (False, True)
        )
        print(
            f"  with a stalled client at {rate}/s: throughput x{with_stalled['qps'] / plain['qps']:.3f}, "
            f"SSE p99 {with_stalled['p99_ms']} ms vs {plain['p99_ms']} ms"
        )
    return {"seconds": seconds, "runs": runs}


# --- 3. Memory ----------------------------------------------------------------------------------


class RssSampler:
    """Samples a server's RSS every `interval` seconds on a thread."""

    def __init__(self, server: Server, interval: float = 0.2) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, interval), daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self, server: Server, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append((time.monotonic() - self._started, server.rss_mib()))

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def slope(samples: list[tuple[float, float]]) -> float:
    """Change per second over (seconds, value) samples, by least squares."""
    if len(samples) < 2:
        return 0.0
    times, values = zip(*samples, strict=True)
    return statistics.linear_regression(times, values).slope


def memory(quick: bool) -> dict[str, Any]:
    bound = 32 * MiB if quick else 256 * MiB
    calls = 3_000 if quick else 100_000
    inspector = Server.inspector("--buffer-bytes", str(bound), "--buffer-items", str(calls))
    try:
        idle = inspector.rss_mib()
        sampler = RssSampler(inspector)
        load = loadgen(inspector.grpc_target, 64 * KiB, 16, 600, max_calls=calls)
        samples = sampler.stop()
        stats = httpx.get(f"{inspector.http_url}/api/stats").json()
    finally:
        inspector.stop()
    peak = max(v for _, v in samples)
    last_half = samples[len(samples) // 2 :]
    result = {
        "captures_sent": load["calls"],
        "payload": 64 * KiB,
        "buffer_bytes": bound,
        "idle_rss_mib": round(idle, 1),
        "peak_rss_mib": round(peak, 1),
        "limit_mib": round(bound / MiB + 150, 1),
        "slope_last_half_mib_per_s": round(slope(last_half), 3),
        "seconds": load["seconds"],
        "buffered": stats["count"],
        "buffered_bytes": stats["bytes"],
        "evicted": stats["evicted"],
    }
    _table(
        ["captures", "bound MiB", "idle RSS", "peak RSS", "limit", "slope (last half) MiB/s", "buffered", "evicted"],
        [
            [
                result["captures_sent"],
                bound // MiB,
                result["idle_rss_mib"],
                result["peak_rss_mib"],
                result["limit_mib"],
                result["slope_last_half_mib_per_s"],
                result["buffered"],
                result["evicted"],
            ]
        ],
    )
    return result


# --- 4. Export ----------------------------------------------------------------------------------


def export(quick: bool) -> dict[str, Any]:
    count = 1_000 if quick else 10_000
    inspector = Server.inspector("--buffer-items", str(count))
    try:
        loadgen(inspector.grpc_target, 2 * KiB, 64, 600, max_calls=count)
        before = inspector.rss_mib()
        sampler = RssSampler(inspector, 0.01)
        started = time.perf_counter()
        size = 0
        with httpx.stream("GET", f"{inspector.http_url}/api/export", timeout=120) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
        elapsed = time.perf_counter() - started
        samples = sampler.stop()
    finally:
        inspector.stop()
    peak = max([v for _, v in samples] or [before])
    result = {
        "captures": count,
        "seconds": round(elapsed, 3),
        "bytes": size,
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(peak, 1),
        "peak_added_mib": round(peak - before, 1),
        "captures_per_s": round(count / elapsed),
    }
    _table(
        ["captures", "seconds", "MiB out", "captures/s", "RSS before", "peak RSS", "added"],
        [
            [
                count,
                result["seconds"],
                round(size / MiB, 1),
                result["captures_per_s"],
                result["rss_before_mib"],
                result["peak_rss_mib"],
                result["peak_added_mib"],
            ]
        ],
    )
    return result


# --- 5. Proxy overhead -----------------------------------------------------------------------------


def proxy(quick: bool) -> dict[str, Any]:
    """Calling a plugin server through the inspector (--upstream) against calling it directly."""
    seconds = 0.5 if quick else 3.0
    repeats = 1 if quick else 3
    plugin = Server.baseline("typed")
    inspector = Server.inspector("--upstream", plugin.grpc_target)
    rows, runs = [], []
    try:
        for concurrency in (1, 16):
            results: dict[str, list[dict[str, Any]]] = {"direct": [], "through inspector": []}
            for _ in range(repeats):
                results["direct"].append(loadgen(plugin.grpc_target, 2 * KiB, concurrency, seconds))
                results["through inspector"].append(loadgen(inspector.grpc_target, 2 * KiB, concurrency, seconds))
            direct, proxied = (_medians(results[k]) for k in ("direct", "through inspector"))
            run = {"concurrency": concurrency, "direct": direct, "proxied": proxied,
                   "added_p50_ms": round(proxied["p50_ms"] - direct["p50_ms"], 3),
                   "added_p99_ms": round(proxied["p99_ms"] - direct["p99_ms"], 3),
                   "qps_ratio": round(proxied["qps"] / direct["qps"], 3)}  # fmt: skip
            runs.append(run)
            rows.append([concurrency, "direct", direct["qps"], direct["p50_ms"], direct["p99_ms"], "", ""])
            rows.append([concurrency, "through inspector", proxied["qps"], proxied["p50_ms"], proxied["p99_ms"],
                         run["added_p50_ms"], run["qps_ratio"]])  # fmt: skip
    finally:
        inspector.stop()
        plugin.stop()
    _table(["conc", "path", "qps", "p50 ms", "p99 ms", "added p50 ms", "x direct"], rows)
    return {"payload": 2 * KiB, "seconds_per_run": seconds, "runs": runs}


ALL: dict[str, Callable[[bool], dict[str, Any]]] = {
    "dispatch": dispatch,
    "sse": sse,
    "memory": memory,
    "export": export,
    "browser": browser,
    "proxy": proxy,
}
