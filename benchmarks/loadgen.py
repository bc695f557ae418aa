"""Load generator process: Dispatch calls against one server, closed-loop or at a fixed rate.

Usage: python -m benchmarks.loadgen TARGET --payload-bytes N --concurrency C --seconds S
       [--max-calls N] [--rate R] [--lb-policy round_robin]
Prints one JSON object: calls, errors, seconds, qps, p50_ms, p99_ms.
Every loop is bounded by --seconds and --max-calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

from benchmarks.payloads import object_of_size

DISPATCH = "/coprocess.Dispatcher/Dispatch"
OPTIONS = [("grpc.max_receive_message_length", 100_000_000), ("grpc.max_send_message_length", 100_000_000)]


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


async def run(
    target: str, payload_bytes: int, concurrency: int, seconds: float, max_calls: int, rate: float, lb_policy: str = ""
) -> dict[str, float]:
    request = object_of_size(payload_bytes).SerializeToString()
    latencies: list[float] = []
    errors = 0
    # With "round_robin" and a target listing several addresses (ipv4:A,B), the channel
    # spreads calls over them, as the gateway does over plugin-server replicas.
    options = [*OPTIONS, ("grpc.lb_policy_name", lb_policy)] if lb_policy else OPTIONS
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(DISPATCH)
        await call(request, timeout=10)  # warm the connection
        started = time.perf_counter()
        deadline = started + seconds
        issued = 0

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_calls:
                now = time.perf_counter()
                if now >= deadline:
                    return
                if rate:
                    # Open loop: call k is due at started + k / rate, whoever is free takes it.
                    due = started + issued / rate
                    if due > now:
                        await asyncio.sleep(due - now)
                        if time.perf_counter() >= deadline:
                            return
                issued += 1
                begin = time.perf_counter()
                try:
                    await call(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "qps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--payload-bytes", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-calls", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=0.0, help="calls per second (0: as fast as possible)")
    parser.add_argument("--lb-policy", default="", help="e.g. round_robin over a target of several addresses")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.target, args.payload_bytes, args.concurrency, args.seconds, args.max_calls, args.rate, args.lb_policy)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
