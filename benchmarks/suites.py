"""The benchmark suites. Each takes `quick` and returns plain data for the JSON results."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks import redis
from benchmarks.browser import browser
from benchmarks.heavy_work import heavy_work
from benchmarks.hostile import hostile
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
    keys = [key for key in ("qps", "p50_ms", "p99_ms", "server_cpu_us_per_call", "server_busy") if key in results[0]]
    merged: dict[str, Any] = {key: round(statistics.median(r[key] for r in results), 3) for key in keys}
    merged["calls"] = sum(r["calls"] for r in results)
    merged["errors"] = sum(r["errors"] for r in results)
    return merged


def _last_id(server: Server) -> int:
    return int(httpx.get(f"{server.http_url}/api/stats").json()["last_id"])


# --- 1. Dispatch throughput and latency -------------------------------------------------------


# Which servers run at which payload size. The seed's server and the defaults row matter most at
# the small, common size; large bodies compare the inspector with the typed echo.
FLOOR = "baseline-typed"
DISPATCH_SERVERS = {
    "baseline-raw": "the Python floor: returns the request bytes unparsed",
    "baseline-typed": "the floor: a bare typed grpc.aio echo, no logging",
    "baseline-seed": "the seed's echo server as its tutorial writes it (MessageToJson + hook line logged)",
    "inspector": "console log off, no browsers",
    "inspector+2sse": "console log off, 2 SSE readers",
    "defaults": "as `make run` runs it: console log at its default, 2 SSE readers",
}
LARGE_PAYLOAD_SERVERS = ("baseline-typed", "inspector", "defaults")


def _start_dispatch_servers() -> tuple[dict[str, Server], list[SseClients]]:
    servers = {
        "baseline-raw": Server.baseline("raw"),
        "baseline-typed": Server.baseline("typed"),
        "baseline-seed": Server.baseline("seed"),
        "inspector": Server.inspector(),
        "inspector+2sse": Server.inspector(),
        "defaults": Server.inspector(capture_log=None),
    }
    readers = [SseClients(servers[name].http_url, 2, count_only=True) for name in ("inspector+2sse", "defaults")]
    return servers, readers


def _cell_servers(payload: int) -> tuple[str, ...]:
    return tuple(DISPATCH_SERVERS) if payload <= 2 * KiB else LARGE_PAYLOAD_SERVERS


def dispatch(quick: bool) -> dict[str, Any]:
    payloads = [2 * KiB] if quick else [2 * KiB, 64 * KiB, MiB]
    concurrencies = [64] if quick else [1, 16, 64]
    seconds = 0.3 if quick else 2.0
    repeats = 1 if quick else 3
    # All servers run side by side (idle ones cost nothing) and take turns within each
    # repetition, so slow drifts of the machine hit them alike; each cell reports the median.
    servers, readers = _start_dispatch_servers()
    cells: list[dict[str, Any]] = []
    try:
        for payload in payloads:
            for concurrency in concurrencies:
                names = _cell_servers(payload)
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
                for _ in range(repeats):
                    for name in names:
                        server = servers[name]
                        cpu_before = server.cpu_seconds()
                        result = loadgen(server.grpc_target, payload, concurrency, seconds)
                        cpu = server.cpu_seconds() - cpu_before
                        result["server_cpu_us_per_call"] = cpu * 1e6 / max(1, result["calls"])
                        # Of one CPU; well under 1.0 at saturation: the client or the transport sets the pace.
                        result["server_busy"] = cpu * result["qps"] / max(1, result["calls"])
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
        sse_results = [
            result
            for name, clients in zip(("inspector+2sse", "defaults"), readers, strict=True)
            for result in clients.finish(_last_id(servers[name]))
        ]
    finally:
        for server in servers.values():
            server.stop()
    ratios = _dispatch_ratios(cells)
    _dispatch_table(cells, ratios)
    return {"seconds_per_cell": seconds, "servers": DISPATCH_SERVERS, "cells": cells, "ratios": ratios,
            "sse_clients": sse_results}  # fmt: skip


def _dispatch_ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each inspector cell against the baselines of the same payload and concurrency, same run."""
    by_key = {(c["server"], c["payload"], c["concurrency"]): c for c in cells}
    ratios = []
    for c in cells:
        if c["server"].startswith("baseline-"):
            continue
        key = (c["payload"], c["concurrency"])
        ratio: dict[str, Any] = {"server": c["server"], "payload": key[0], "concurrency": key[1]}
        for base, label in (("baseline-typed", "typed"), ("baseline-raw", "raw"), ("baseline-seed", "seed")):
            if (b := by_key.get((base, *key))) is not None:
                ratio[f"qps_vs_{label}"] = round(c["qps"] / b["qps"], 3)
        typed = by_key[(FLOOR, *key)]
        ratio["added_p50_ms_vs_typed"] = round(c["p50_ms"] - typed["p50_ms"], 3)
        ratio["cpu_us_per_call_vs_typed"] = round(c["server_cpu_us_per_call"] - typed["server_cpu_us_per_call"], 1)
        ratio["cpu_x_typed"] = round(typed["server_cpu_us_per_call"] / c["server_cpu_us_per_call"], 3)
        ratios.append(ratio)
    return ratios


def _dispatch_table(cells: list[dict[str, Any]], ratios: list[dict[str, Any]]) -> None:
    by_key = {(r["server"], r["payload"], r["concurrency"]): r for r in ratios}
    rows = []
    for c in cells:
        r = by_key.get((c["server"], c["payload"], c["concurrency"]), {})
        rows.append([_size(c["payload"]), c["concurrency"], c["server"], c["qps"], c["p50_ms"], c["p99_ms"],
                     c["errors"], round(c["server_cpu_us_per_call"], 1), round(c["server_busy"], 2),
                     r.get("qps_vs_typed", ""), r.get("qps_vs_raw", ""), r.get("qps_vs_seed", ""),
                     r.get("cpu_x_typed", "")])  # fmt: skip
    _table(["payload", "conc", "server", "qps", "p50 ms", "p99 ms", "errors", "server CPU us/call", "busy",
            "x typed", "x raw", "x seed", "CPU x typed"], rows)  # fmt: skip
    print("busy: the server's CPU time over the wall time (1.0 = one CPU saturated); CPU x typed: the typed")
    print("echo's CPU per call over the server's (higher is better), the measure where the client sets the pace")


# --- 1b. The headline: the defaults against the floor and the seed ---------------------------


def at_defaults(quick: bool) -> dict[str, Any]:
    """The inspector as `make run` runs it (console log at its default, 2 SSE readers) at 2 KiB,
    concurrency 64, against the floor and the seed's server.

    More repetitions than a `dispatch` cell, and each server on a CPU of its own while the load
    generator and the SSE readers share the other: on two shared cores the scheduler's noise is
    about the size of the gap being measured, and here QPS follows the server's own cost. The
    servers take turns in a rotating order, and besides the ratio of the medians each repetition's
    own ratio to the floor (run seconds before) is kept: the machine's speed drifts by more than
    the gap between repetitions, much less within one.
    """
    repeats, seconds = (1, 0.3) if quick else (11, 1.5)
    pinned = len(os.sched_getaffinity(0)) >= 2
    servers = {
        FLOOR: Server.baseline("typed"),
        "baseline-seed": Server.baseline("seed"),
        "inspector": Server.inspector(),
        "defaults": Server.inspector(capture_log=None),
        # The defaults with an intercept query that matches none of the load's calls: one match per call.
        "intercept": Server.inspector("--intercept", "hook:Response api:no-such-api", capture_log=None),
    }
    names = list(servers)
    client_cpu, server_cpu = sorted(os.sched_getaffinity(0))[:2] if pinned else (0, 0)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    original = os.sched_getaffinity(0)
    try:
        if pinned:
            os.sched_setaffinity(0, {client_cpu})  # the load generator and the readers start from here
        readers = SseClients(servers["defaults"].http_url, 2, count_only=True)
        for repeat in range(repeats):
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                server = servers[name]
                if pinned:
                    server.pin(server_cpu)
                cpu_before = server.cpu_seconds()
                result = loadgen(server.grpc_target, 2 * KiB, 64, seconds)
                result["server_cpu_us_per_call"] = (server.cpu_seconds() - cpu_before) * 1e6 / max(1, result["calls"])
                runs[name].append(result)
        readers.finish(_last_id(servers["defaults"]))
    finally:
        os.sched_setaffinity(0, original)
        for server in servers.values():
            server.stop()
    cells = {name: _medians(results) for name, results in runs.items()}
    floor, seed = cells[FLOOR], cells["baseline-seed"]
    rows, ratios = [], {}
    for name, cell in cells.items():
        ratio = {
            "qps_vs_floor": round(cell["qps"] / floor["qps"], 3),
            "qps_vs_seed": round(cell["qps"] / seed["qps"], 3),
            "cpu_vs_floor": round(floor["server_cpu_us_per_call"] / cell["server_cpu_us_per_call"], 3),
            "cpu_vs_seed": round(seed["server_cpu_us_per_call"] / cell["server_cpu_us_per_call"], 3),
            "paired_qps_vs_floor": _paired(runs[name], runs[FLOOR], "qps"),
            "paired_qps_vs_seed": _paired(runs[name], runs["baseline-seed"], "qps"),
        }
        ratios[name] = ratio
        rows.append([name, cell["qps"], cell["p50_ms"], round(cell["server_cpu_us_per_call"], 1), *ratio.values()])
    headers = ["server", "qps", "p50 ms", "CPU us/call", "qps x floor", "qps x seed", "CPU x floor", "CPU x seed"]
    _table([*headers, "paired x floor", "paired x seed"], rows)
    print("targets for the defaults: >= 0.90 x the floor, >= 1.5 x the seed (ratios of medians; CPU: the")
    print("floor's CPU per call over the server's, so higher is better; paired: the median of each")
    print("repetition's own QPS ratio)")
    return {"repeats": repeats, "seconds": seconds, "pinned": pinned, "cells": cells, "ratios": ratios}


def _paired(runs: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str) -> float:
    """The median over repetitions of one server's figure over the baseline's in the same repetition."""
    ratios: list[float] = [r[key] / b[key] for r, b in zip(runs, baseline, strict=True)]
    return round(statistics.median(ratios), 3)


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
    seconds = 0.5 if quick else 5.0
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


def stream_scaling(quick: bool) -> dict[str, Any]:
    """The stream's server cost per capture against the number of browsers, at a fixed call rate.

    One inspector per reader count (console log off, so only the stream differs), the same
    open-loop load taking turns; server CPU µs per call, and what each reader adds to it.
    """
    counts = [0, 2] if quick else [0, 2, 8]
    rate = 500 if quick else 2000
    seconds = 0.5 if quick else 3.0
    repeats = 1 if quick else 3
    inspectors = {n: Server.inspector() for n in counts}
    readers = {n: SseClients(inspectors[n].http_url, n, count_only=True) for n in counts if n}
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    try:
        for _ in range(repeats):
            for n, server in inspectors.items():
                cpu_before = server.cpu_seconds()
                result = loadgen(server.grpc_target, 2 * KiB, 64, seconds, rate=rate)
                result["server_cpu_us_per_call"] = (server.cpu_seconds() - cpu_before) * 1e6 / max(1, result["calls"])
                runs[n].append(result)
        delivered = {n: clients.finish(_last_id(inspectors[n])) for n, clients in readers.items()}
    finally:
        for server in inspectors.values():
            server.stop()
    cells = [{"readers": n, **_medians(results)} for n, results in runs.items()]
    alone = cells[0]["server_cpu_us_per_call"]
    for cell in cells:
        n = cell["readers"]
        cell["added_cpu_us_per_call"] = round(cell["server_cpu_us_per_call"] - alone, 1)
        cell["added_cpu_us_per_call_per_reader"] = round((cell["server_cpu_us_per_call"] - alone) / n, 1) if n else None
        cell["all_told"] = all(c["complete"] for c in delivered.get(n, []))
    _table(["SSE readers", "qps", "server CPU us/call", "added", "added per reader", "every capture told"],
           [[c["readers"], c["qps"], round(c["server_cpu_us_per_call"], 1), c["added_cpu_us_per_call"],
             c["added_cpu_us_per_call_per_reader"] if c["readers"] else "", c["all_told"]] for c in cells])  # fmt: skip
    return {"rate": rate, "seconds": seconds, "cells": cells}


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
    seconds = 0.3 if quick else 3.0
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
    "at_defaults": at_defaults,
    "sse": sse,
    "stream_scaling": stream_scaling,
    "memory": memory,
    "export": export,
    "browser": browser,
    "proxy": proxy,
    "redis-store": redis.store,
    "redis-sse": redis.sse_across,
    "metrics-counting": redis.counting,
    "heavy_work": heavy_work,
    "hostile": hostile,
}
