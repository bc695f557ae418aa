"""SSE consumer process: reads /api/stream and measures delivery latency.

Usage: python -m benchmarks.sse_client URL [--count-only]
Reads from stdin one line with the last capture id to wait for, then prints one JSON object:
events (SSE events), summaries (captures sent in full), skipped (captures told of only by a tail
event's range), p50_ms, p99_ms (time from the gateway call arriving to its summary arriving here;
both clocks are this machine's). Gives up 30 s after being told the id. With --count-only it only
counts events, spending as little CPU as a browser's native EventSource parser would.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable

import httpx

from benchmarks.loadgen import percentile

EVENT_ID = re.compile(rb"event: (?:captures|tail)\nid: (\d+)\n")


async def main(url: str, count_only: bool) -> None:
    latencies: list[float] = []
    newest = 0
    events = summaries = skipped = 0
    connected = asyncio.Event()

    async def read() -> None:
        nonlocal newest, events, summaries, skipped
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", f"{url}/api/stream") as response:
            connected.set()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("captures", "tail"):
                    data = json.loads(line[6:])
                    if event == "tail":
                        skipped += data["skipped"]["count"]
                        data = data["items"]
                    arrived = time.time()
                    latencies.extend(arrived - summary["received_at"] for summary in data)
                    newest = data[-1]["id"]
                    events += 1
                    summaries += len(data)

    def read_raw() -> None:
        # The lightest possible reader (a browser's EventSource parses in native code):
        # a plain socket, and a regex over each chunk for the capture ids.
        nonlocal newest, events
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            connected_flag.set()
            tail = b""
            while chunk := sock.recv(1 << 20):
                ids = EVENT_ID.findall(tail + chunk)
                if ids:
                    events += len(ids)
                    newest = int(ids[-1])
                tail = chunk[-64:]

    connected_flag = threading.Event()
    if count_only:
        thread = threading.Thread(target=read_raw, daemon=True)
        thread.start()
        await asyncio.to_thread(connected_flag.wait, 10)
        connected.set()
        reading: Callable[[], bool] = thread.is_alive  # the daemon thread ends with the process
    else:
        reader = asyncio.create_task(read())
        reading = lambda: not reader.done()  # noqa: E731
    await asyncio.wait_for(connected.wait(), 10)
    print("connected", flush=True)
    target = int(await asyncio.to_thread(sys.stdin.readline) or 0)
    deadline = time.monotonic() + 30
    while newest < target and time.monotonic() < deadline and reading():  # noqa: ASYNC110 (a thread updates it)
        await asyncio.sleep(0.01)
    if not count_only:
        reader.cancel()
    latencies.sort()
    print(
        json.dumps(
            {
                "events": events,
                "summaries": summaries,
                "skipped": skipped,
                "complete": newest >= target,
                "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--count-only" in sys.argv))
