"""Shadow a plugin server build: after the gateway has its answer, the same Object goes to the shadow.

The gateway's call is never delayed or failed by the shadow: a call is handed over only once
gRPC has finished it (its done callback), into a queue bounded by items and bytes; a full
queue drops the shadow call (counted) and records the capture at once. Workers send each
Object to the shadow with a deadline of their own and compare the outcome of its reply with
the outcome of the reply the gateway got (app.tyk.compare), then record the capture with the
verdict: `shadow` is "same", "differs", "failed" (the shadow call failed; the outcome of a
failed call is then compared) or "dropped", `shadow_detail` the one-line difference or reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.capture.record import Capture, Recorder
from app.proxy.upstream import UpstreamPool
from app.tyk.compare import Verdict, compare
from app.tyk.outcome import Gateway

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_SECONDS = 5.0
DEFAULT_QUEUE_ITEMS = 1000
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
WORKERS = 8
"""Shadow calls in flight at once."""
INLINE_COMPARE_BYTES = 256 * 1024
"""Replies compared on the loop up to this size (microseconds of parsing); larger ones in `offload`."""

Offload = Callable[..., Awaitable[Any]]
"""app.formats.offload.Offloader.run: (size, function, *args) in a thread, or a process when large."""


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    target: str | None
    """--shadow: where every answered call goes; None: only calls whose rule names a `shadow`."""
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    queue_items: int = DEFAULT_QUEUE_ITEMS
    queue_bytes: int = DEFAULT_QUEUE_BYTES


_Job = tuple[Capture, tuple[tuple[str, str], ...], str]


class Shadow:
    """Sends answered calls to a shadow plugin server and records each capture with the verdict."""

    def __init__(self, config: ShadowConfig, pool: UpstreamPool, record: Recorder, gateway: Gateway) -> None:
        self.config = config
        self._pool = pool
        self._record = record
        self.gateway = gateway
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.queued_bytes = 0
        self._in_flight: set[Capture] = set()
        self.stopped = False
        self.offload: Offload | None = None
        """Where large comparisons run (set once the web side's offloader exists)."""
        self.sent = 0
        self.differed = 0
        self.failed = 0
        self.dropped = 0
        """Shadow calls not made: the queue was full, or the inspector stopped first."""

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def after_answer(self, capture: Capture, metadata: tuple[tuple[str, str], ...], target: str) -> None:
        """Called once the gateway's call is over: queue the shadow call to `target`, or record the capture now."""
        size = _size(capture)
        if (
            self.stopped
            or self._queue.qsize() >= self.config.queue_items
            or (self.queued_bytes + size > self.config.queue_bytes and self._queue.qsize())
        ):
            self._drop(capture, "the inspector stopped" if self.stopped else "the shadow queue was full")
            return
        self.queued_bytes += size
        self._queue.put_nowait((capture, metadata, target))

    def worker_names(self) -> list[str]:
        """The names of the worker tasks the inspector's supervisor runs, each as `run_worker`."""
        return [f"shadow-{i}" for i in range(WORKERS)]

    def drain(self) -> None:
        """Once the workers are stopped: what is still queued is recorded as dropped (no capture is lost)."""
        self.stopped = True
        while not self._queue.empty():
            capture, _, _ = self._queue.get_nowait()
            self.queued_bytes -= _size(capture)
            self._drop(capture, "the inspector stopped")

    def _drop(self, capture: Capture, why: str) -> None:
        self.dropped += 1
        capture.shadow, capture.shadow_detail = "dropped", why
        self._record(capture)

    async def run_worker(self) -> None:
        while True:
            capture, metadata, target = await self._queue.get()
            self.queued_bytes -= _size(capture)
            try:
                await self._shadow(capture, metadata, target)
            except asyncio.CancelledError:
                self._drop(capture, "the inspector stopped")
                raise
            except Exception:  # a bug here must cost one verdict, not the worker
                log.exception("shadow comparison of a call failed")
                capture.shadow, capture.shadow_detail = "failed", "the inspector could not compare the replies"
            self._record(capture)

    async def _shadow(self, capture: Capture, metadata: tuple[tuple[str, str], ...], target: str) -> None:
        self.sent += 1
        error = None
        try:
            reply: bytes | None = await self._pool.call(
                target, "Dispatch", capture.request, self.config.deadline_seconds, metadata
            )
        except grpc.aio.AioRpcError as exc:
            reply = None
            error = f"{exc.code().name}: {exc.details()}"
            self.failed += 1
        # Comparing parses the Object and both replies: large ones off the loop, as the detail view does.
        size = _size(capture) + (len(reply) if reply is not None else 0)
        if size > INLINE_COMPARE_BYTES and self.offload is not None:
            verdict: Verdict = await self.offload(size, compare, capture.request, capture.reply, reply, self.gateway)
        else:
            verdict = compare(capture.request, capture.reply, reply, self.gateway)
        if verdict.same:
            capture.shadow = "failed" if error else "same"
            capture.shadow_detail = f"shadow {target}: {error}" if error else None
            return
        self.differed += 1
        capture.shadow = "failed" if error else "differs"
        detail = verdict.difference + (f" (+{verdict.differences - 1} more)" if verdict.differences > 1 else "")
        capture.shadow_detail = f"{detail} [shadow {target}: {error}]" if error else detail


def _size(capture: Capture) -> int:
    reply = 0 if capture.reply is None or capture.reply is capture.request else len(capture.reply)
    return len(capture.request) + reply


class ShadowCollector(Collector):
    """The shadow's counters, read when Prometheus scrapes /metrics."""

    def __init__(self, shadow: Shadow) -> None:
        self.shadow = shadow

    def collect(self) -> Iterator[Metric]:
        shadow = self.shadow
        yield CounterMetricFamily("tyk_inspector_shadow_calls", "calls sent to the --shadow plugin server", shadow.sent)
        yield CounterMetricFamily(
            "tyk_inspector_shadow_differed", "shadow replies whose outcome differs from the gateway's", shadow.differed
        )
        yield CounterMetricFamily("tyk_inspector_shadow_failed", "shadow calls that failed", shadow.failed)
        yield CounterMetricFamily(
            "tyk_inspector_shadow_dropped",
            "shadow calls not made: the shadow queue was full, or the inspector stopped",
            shadow.dropped,
        )
        yield GaugeMetricFamily("tyk_inspector_shadow_queued", "calls waiting for the shadow", shadow.queued)
