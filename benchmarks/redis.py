"""The Redis store's benchmarks: memory vs Redis on one replica, two replicas vs one, SSE across replicas.

A redis-server of its own runs on a free loopback port in a temporary directory.
Every comparison alternates its sides within each repetition, so drifts of the
machine hit both alike; cells report medians.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx

from benchmarks.procs import Server, SseClients, loadgen, run_json

KiB = 1024


class RedisProcess:
    """redis-server without persistence, on a free port, in a temporary directory."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make redis)")
        self.directory = tempfile.TemporaryDirectory(prefix="bench-redis-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory.name,
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def memory_bytes(self) -> int:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"INFO memory\r\n")
            data = b""
            while b"used_memory:" not in data or not data.endswith(b"\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        line = next(line for line in data.decode().splitlines() if line.startswith("used_memory:"))
        return int(line.split(":")[1])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.directory.cleanup()


def _median(results: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in results)), 3)


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in [h, *(r[i] for r in rows)]) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)), flush=True)


def _last_id(server: Server) -> int:
    return int(httpx.get(f"{server.http_url}/api/stats").json()["last_id"])


def _stats(server: Server) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{server.http_url}/api/stats").json()
    return stats


def _round_robin(servers: list[Server], concurrency: int, seconds: float) -> dict[str, Any]:
    target = "ipv4:" + ",".join(s.grpc_target for s in servers)
    argv = ["-m", "benchmarks.loadgen", target, "--payload-bytes", str(2 * KiB), "--concurrency", str(concurrency),
            "--seconds", str(seconds), "--lb-policy", "round_robin"]  # fmt: skip
    return run_json(argv)


def store(quick: bool) -> dict[str, Any]:
    """Memory vs Redis store on one replica; two Redis replicas round-robin vs one."""
    seconds = 0.3 if quick else 3.0
    repeats = 1 if quick else 5
    redis = RedisProcess()
    memory = Server.inspector()
    one = Server.inspector("--store", redis.url, "--store-prefix", "one")
    pair = [Server.inspector("--store", redis.url, "--store-prefix", "pair") for _ in range(2)]
    runs: dict[str, list[dict[str, Any]]] = {"memory c=64": [], "redis c=64": [], "memory c=1": [], "redis c=1": []}
    runs |= {"one replica c=64": [], "two replicas c=64": []}
    redis_cpu: list[float] = []
    try:
        for _ in range(repeats):
            for concurrency in (64, 1):
                for name, server in (("memory", memory), ("redis", one)):
                    cpu, redis_before = server.cpu_seconds(), redis.cpu_seconds()
                    result = loadgen(server.grpc_target, 2 * KiB, concurrency, seconds)
                    calls = max(1, result["calls"])
                    result["server_cpu_us_per_call"] = (server.cpu_seconds() - cpu) * 1e6 / calls
                    if name == "redis":
                        redis_cpu.append((redis.cpu_seconds() - redis_before) * 1e6 / calls)
                    runs[f"{name} c={concurrency}"].append(result)
            runs["one replica c=64"].append(_round_robin(pair[:1], 64, seconds))
            runs["two replicas c=64"].append(_round_robin(pair, 64, seconds))
        time.sleep(0.5)  # let the writers drain before reading the counters
        stats: dict[str, Any] = {"one": _stats(one), "pair": [_stats(s) for s in pair]}
        redis_bytes = redis.memory_bytes()
    finally:
        for server in (memory, one, *pair):
            server.stop()
        redis.stop()
    cells = {
        name: {k: _median(results, k) for k in ("qps", "p50_ms", "p99_ms", "server_cpu_us_per_call") if k in results[0]}
        | {"errors": sum(r["errors"] for r in results)}
        for name, results in runs.items()
    }
    ratios = {
        "redis_qps_vs_memory_c64": round(cells["redis c=64"]["qps"] / cells["memory c=64"]["qps"], 3),
        "redis_added_p50_ms_c1": round(cells["redis c=1"]["p50_ms"] - cells["memory c=1"]["p50_ms"], 3),
        "two_replicas_qps_vs_one_c64": round(cells["two replicas c=64"]["qps"] / cells["one replica c=64"]["qps"], 3),
        "redis_cpu_vs_memory_c64": round(
            cells["redis c=64"]["server_cpu_us_per_call"] / cells["memory c=64"]["server_cpu_us_per_call"], 3
        ),
    }
    _table(
        ["run", "qps", "p50 ms", "p99 ms", "errors", "inspector CPU us/call"],
        [
            [name, c["qps"], c["p50_ms"], c["p99_ms"], c["errors"], c.get("server_cpu_us_per_call", "")]
            for name, c in cells.items()
        ],
    )
    print(
        f"  Redis store vs memory: QPS x{ratios['redis_qps_vs_memory_c64']} at c=64, "
        f"p50 {ratios['redis_added_p50_ms_c1']:+} ms at c=1; "
        f"two replicas vs one: x{ratios['two_replicas_qps_vs_one_c64']}; "
        f"inspector CPU per call x{ratios['redis_cpu_vs_memory_c64']}"
    )
    dropped = stats["one"]["dropped"] + sum(s["dropped"] for s in stats["pair"])
    print(f"  dropped captures: {dropped}; redis-server CPU per capture: {statistics.median(redis_cpu):.1f} us")
    return {
        "payload": 2 * KiB,
        "seconds_per_run": seconds,
        "repeats": repeats,
        "cells": cells,
        "ratios": ratios,
        "dropped": dropped,
        "redis_cpu_us_per_capture": round(statistics.median(redis_cpu), 1),
        "redis_used_memory": redis_bytes,
    }


def sse_across(quick: bool) -> dict[str, Any]:
    """Captures sent round-robin to two replicas, read live from one of them: delivery latency."""
    seconds = 0.5 if quick else 5.0
    rate = 500 if quick else 2000
    redis = RedisProcess()
    pair = [Server.inspector("--store", redis.url) for _ in range(2)]
    try:
        clients = SseClients(pair[1].http_url, 2)
        target = "ipv4:" + ",".join(s.grpc_target for s in pair)
        argv = ["-m", "benchmarks.loadgen", target, "--payload-bytes", str(2 * KiB), "--concurrency", "64",
                "--seconds", str(seconds), "--rate", str(rate), "--lb-policy", "round_robin"]  # fmt: skip
        load = run_json(argv)
        received = clients.finish(_last_id(pair[1]))
        stats = _stats(pair[1])
    finally:
        for server in pair:
            server.stop()
        redis.stop()
    result = {
        "rate": rate,
        "qps": load["qps"],
        "dispatch_p99_ms": load["p99_ms"],
        "errors": load["errors"],
        "sse_p50_ms": max(c["p50_ms"] for c in received),
        "sse_p99_ms": max(c["p99_ms"] for c in received),
        "complete": all(c["complete"] for c in received),
        "events": [c["events"] for c in received],
        "dropped": stats["dropped"],
    }
    _table(
        ["rate/s", "qps", "dispatch p99 ms", "SSE p50 ms", "SSE p99 ms", "all delivered", "errors"],
        [[rate, result["qps"], result["dispatch_p99_ms"], result["sse_p50_ms"], result["sse_p99_ms"],
          result["complete"], result["errors"]]],
    )  # fmt: skip
    return result


def counting(quick: bool) -> dict[str, float]:
    """What counting one call for /metrics costs: plain ints vs prometheus-client's labelled metrics."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from app.capture.record import Capture
    from app.metrics import DISPATCH_BUCKETS, CallMetrics, grpc_status

    capture = Capture(kind="dispatch", request=b"x", reply=b"x", hook_type="Pre", api_id="api-1", duration_ns=42_000)
    ours = CallMetrics()
    registry = CollectorRegistry()
    labels = ["kind", "hook_type", "api_id", "answered_by", "grpc_status"]
    counter = Counter("calls", "calls", labels, registry=registry)
    histogram = Histogram("dispatch_seconds", "time", registry=registry, buckets=DISPATCH_BUCKETS)

    def theirs() -> None:
        c = capture
        counter.labels(c.kind, c.hook_type, c.api_id, c.answered_by, grpc_status(c)).inc()
        histogram.observe(c.duration_ns / 1e9)

    number = 20_000 if quick else 200_000
    mine_ns = min(timeit.repeat(lambda: ours.observe(capture), number=number, repeat=5)) / number * 1e9
    theirs_ns = min(timeit.repeat(theirs, number=number, repeat=5)) / number * 1e9
    result: dict[str, float] = {"plain_ints_ns": round(mine_ns), "prometheus_client_ns": round(theirs_ns)}
    result["ratio"] = round(theirs_ns / mine_ns, 1)
    _table(["counting", "ns per call"], [["plain ints + collector", result["plain_ints_ns"]],
                                          ["prometheus-client labels", result["prometheus_client_ns"]]])  # fmt: skip
    return result
