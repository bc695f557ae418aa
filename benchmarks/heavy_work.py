"""Dispatch latency while the web side does heavy work: a large import, export and detail at once.

The heavy requests run in their own processes (`python -m benchmarks.heavy_work fetch|post ...`),
so the client measuring Dispatch shares nothing with them but the inspector under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf import json_format

from protogen import coprocess_object_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
DISPATCH = "/coprocess.Dispatcher/Dispatch"
MB = 1_000_000
EXPORT_BODY = 1 * MB
IMPORT_BODY = 2 * 1024


@dataclass(frozen=True, slots=True)
class Sizes:
    import_mb: float
    export_mb: float
    detail_mb: float


FULL = Sizes(import_mb=30, export_mb=250, detail_mb=100)


def _pre() -> pb.Object:
    return json_format.Parse((ROOT / "examples" / "pre.json").read_text(), pb.Object())


def _with_body(size: int) -> bytes:
    obj = _pre()
    obj.request.raw_body = os.urandom(size)
    return obj.SerializeToString()


def import_document(size_mb: float) -> bytes:
    """An export document of about `size_mb` MB: Pre Objects with 2 KB bodies."""
    obj = _pre()
    obj.request.raw_body = os.urandom(IMPORT_BODY)
    record = {
        "kind": "dispatch",
        "received_at": "2026-01-01T00:00:00Z",
        "echo": True,
        "request": json_format.MessageToDict(obj),
    }
    one = json.dumps(record)
    count = max(1, round(size_mb * MB / len(one)))
    header = '{"format": "tyk-inspector-export", "version": 1, "captures": [\n'
    return (header + ",\n".join([one] * count) + "\n]}\n").encode()


def export_captures(sizes: Sizes) -> int:
    # The export writes each 1 MB body as 1.37 MB of base64 JSON.
    return max(1, round(sizes.export_mb * MB / (EXPORT_BODY * 1.37)))


async def fill(grpc_target: str, sizes: Sizes) -> None:
    """Captures for the export (1 MB bodies), then one large capture for the detail."""
    async with grpc.aio.insecure_channel(grpc_target, options=_options()) as channel:
        call = channel.unary_unary(DISPATCH)
        body = _with_body(EXPORT_BODY)
        for _ in range(export_captures(sizes)):
            await call(body)
        # The detail of a binary body is its base64 (x 1.34) in the Object.
        await call(_with_body(round(sizes.detail_mb * MB / 1.34)))


def _options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", 200 * MB), ("grpc.max_receive_message_length", 200 * MB)]


async def _sample(grpc_target: str, stop: asyncio.Event) -> list[float]:
    """Sequential Dispatch calls until `stop`: each one's latency in milliseconds."""
    data = _pre().SerializeToString()
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        call = channel.unary_unary(DISPATCH)
        while not stop.is_set() or len(latencies) < 20:
            began = time.perf_counter()
            assert await call(data, timeout=30) == data
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def _stats(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _helper(*args: str) -> float:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.heavy_work", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"heavy_work {args[0]} failed")
    return float(out.decode().strip() or 0)


async def measure(grpc_target: str, http_url: str, sizes: Sizes) -> dict[str, Any]:
    """Fill the inspector, then Dispatch latency idle and during import + export + detail at once."""
    async with httpx.AsyncClient(base_url=http_url) as http:
        before = (await http.get("/api/stats")).json()["last_id"]
    await fill(grpc_target, sizes)
    detail_id = before + export_captures(sizes) + 1
    with tempfile.NamedTemporaryFile(suffix=".json") as document:
        document.write(import_document(sizes.import_mb))
        document.flush()
        idle_stop = asyncio.Event()
        idle = asyncio.ensure_future(_sample(grpc_target, idle_stop))
        await asyncio.sleep(1)  # a fixed window of idle calls to compare with, not a synchronisation
        idle_stop.set()
        idle_latencies = await idle

        stop = asyncio.Event()
        sampler = asyncio.ensure_future(_sample(grpc_target, stop))
        began = time.perf_counter()
        seconds = await asyncio.gather(
            _helper("post", f"{http_url}/api/import", document.name),
            _helper("fetch", f"{http_url}/api/export"),
            _helper("fetch", f"{http_url}/api/captures/{detail_id}"),
        )
        busy = time.perf_counter() - began
        stop.set()
        busy_latencies = await sampler
    idle_stats, busy_stats = _stats(idle_latencies), _stats(busy_latencies)
    return {
        "sizes_mb": {"import": sizes.import_mb, "export": sizes.export_mb, "detail": sizes.detail_mb},
        "idle": idle_stats,
        "busy": busy_stats,
        "p99_ratio_busy_vs_idle": round(busy_stats["p99_ms"] / max(idle_stats["p99_ms"], 0.001), 2),
        "heavy_seconds": {"import": seconds[0], "export": seconds[1], "detail": seconds[2], "all": round(busy, 2)},
    }


QUICK = Sizes(import_mb=1, export_mb=5, detail_mb=2)
TARGET_P99_MS = 50


def heavy_work(quick: bool) -> dict[str, Any]:
    """The suite: Dispatch p99 during a 30 MB import, a 250 MB export and a 100 MB detail at once."""
    from benchmarks.procs import Server  # the suites module's process helpers

    sizes = QUICK if quick else FULL
    server = Server.inspector(
        "--buffer-bytes", "1GiB", "--buffer-items", "100000", "--max-message-bytes", "200000000"
    )  # fmt: skip
    try:
        result = asyncio.run(measure(server.grpc_target, server.http_url, sizes))
        result["rss_mib_after"] = round(server.rss_mib(), 1)
    finally:
        server.stop()
    idle, busy = result["idle"], result["busy"]
    print(f"sizes MB: import {sizes.import_mb}, export {sizes.export_mb}, detail {sizes.detail_mb}")
    print(f"{'':6} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in (("idle", idle), ("busy", busy)):
        print(f"{name:6} {row['calls']:>6} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    print(f"busy p99 / idle p99: x{result['p99_ratio_busy_vs_idle']}; target busy p99 < {TARGET_P99_MS} ms")
    print(f"heavy requests took (s): {result['heavy_seconds']}")
    return result


def _fetch(url: str) -> None:
    began = time.perf_counter()
    size = 0
    with httpx.stream("GET", url, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    assert size > 0
    print(round(time.perf_counter() - began, 2))


def _post(url: str, path: str) -> None:
    data = Path(path).read_bytes()
    began = time.perf_counter()
    response = httpx.post(url, content=data, headers={"Content-Type": "application/json"}, timeout=300)
    response.raise_for_status()
    print(round(time.perf_counter() - began, 2))


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "fetch":
        _fetch(rest[0])
    elif mode == "post":
        _post(rest[0], rest[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
