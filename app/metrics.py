"""Prometheus metrics: counted on the loop with plain ints, turned into metric families only when scraped.

Counting is on the Dispatch path, so it is a dict increment and a bucket increment per
call (a few hundred nanoseconds). prometheus-client's own labelled counters take a lock
and a label lookup per call; here a custom Collector reads the ints at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from app.capture.record import Capture
from app.store.buffer import CaptureStore

# Seconds; Dispatch handling is usually tens of microseconds, an upstream call milliseconds.
DISPATCH_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UPSTREAM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Hook types, event types and API ids come from whoever can call the Dispatcher: each label keeps
# at most so many values (later ones are counted as "other"), each value at most MAX_LABEL_CHARS,
# and past MAX_SERIES label sets a new one is counted with both as "other". A scrape stays small
# whatever the callers send.
MAX_SERIES = 2000
MAX_LABEL_VALUES = {"hook_type": 64, "api_id": 1000}
"""Distinct values per label (Tyk has 5 hook types and about 30 event types; API ids are many)."""
MAX_LABEL_CHARS = 100
"""Longer values are cut to this many characters and end with '…'."""
OTHER = "other"

CallKey = tuple[str, str, str, str, str]
CALL_LABELS = ("kind", "hook_type", "api_id", "answered_by", "grpc_status")


def grpc_status(capture: Capture) -> str:
    """The status the gateway saw for this call."""
    if capture.grpc_status is not None:
        return capture.grpc_status
    if capture.reply is not None:
        return "OK"
    return capture.upstream_status or "INVALID_ARGUMENT"


class _Histogram:
    """Counts per bucket of one histogram; observing is a binary search and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.total)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class CallMetrics:
    """What the Dispatcher answered, counted on the loop."""

    def __init__(self, max_series: int = MAX_SERIES) -> None:
        self.calls: dict[CallKey, int] = {}
        self.max_series = max_series
        self.dispatch = _Histogram(DISPATCH_BUCKETS)
        self.upstream = _Histogram(UPSTREAM_BUCKETS)

        self._hook_types: set[str] = set()
        self._api_ids: set[str] = set()

    def observe(self, capture: Capture) -> None:
        """Count one call the gateway made. Called on the Dispatch path."""
        key: CallKey = (capture.kind, capture.hook_type, capture.api_id, capture.answered_by, grpc_status(capture))
        calls = self.calls
        count = calls.get(key)
        if count is None:  # a label set not seen before: bounded first (kind, answered_by, status are)
            key = self._bounded(key)
            count = calls.get(key, 0)
        calls[key] = count + 1
        self.dispatch.observe(capture.duration_ns / 1e9)
        if capture.upstream_ms is not None:
            self.upstream.observe(capture.upstream_ms / 1000)

    def _bounded(self, key: CallKey) -> CallKey:
        kind, hook_type, api_id, answered_by, status = key
        hook_type = _admit(self._hook_types, _cut(hook_type), MAX_LABEL_VALUES["hook_type"])
        api_id = _admit(self._api_ids, _cut(api_id), MAX_LABEL_VALUES["api_id"])
        key = (kind, hook_type, api_id, answered_by, status)
        if key not in self.calls and len(self.calls) >= self.max_series:
            key = (kind, OTHER, OTHER, answered_by, status)
        return key


def _cut(value: str) -> str:
    return value if len(value) <= MAX_LABEL_CHARS else value[: MAX_LABEL_CHARS - 1] + "…"


def _admit(seen: set[str], value: str, most: int) -> str:
    """`value`, or OTHER once `seen` holds `most` values and this is not one of them."""
    if value in seen:
        return value
    if len(seen) >= most:
        return OTHER
    seen.add(value)
    return value


class _Subscribers(Protocol):
    @property
    def subscriber_count(self) -> int: ...


class InspectorCollector(Collector):
    """Reads the counters, the store and the live views when Prometheus scrapes."""

    def __init__(self, calls: CallMetrics, store: CaptureStore, subscribers: _Subscribers) -> None:
        self.calls = calls
        self.store = store
        self.subscribers = subscribers

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "tyk_inspector_calls", "gRPC calls from the gateway, by what was asked and who answered", labels=CALL_LABELS
        )
        for key, count in list(self.calls.calls.items()):
            calls.add_metric(key, count)
        yield calls
        yield self.calls.dispatch.family(
            "tyk_inspector_dispatch_duration_seconds", "time from a call's arrival to its answer, in the inspector"
        )
        yield self.calls.upstream.family(
            "tyk_inspector_upstream_duration_seconds", "time an upstream plugin server took to answer (proxy mode)"
        )
        stats = self.store.stats()
        yield _counter("tyk_inspector_captures_stored", "captures given an id by the store", stats.total)
        yield _counter("tyk_inspector_captures_evicted", "captures let go to stay within the bounds", stats.evicted)
        yield _counter(
            "tyk_inspector_captures_dropped",
            "captures not stored: the queue to the shared store was full (Redis slow or away)",
            stats.dropped,
        )
        yield _gauge("tyk_inspector_store_items", "captures the store holds", stats.count)
        yield _gauge("tyk_inspector_store_bytes", "bytes the captures the store holds count", stats.bytes)
        yield _gauge("tyk_inspector_store_max_items", "the store's item bound (--buffer-items)", stats.max_items)
        yield _gauge("tyk_inspector_store_max_bytes", "the store's byte bound (--buffer-bytes)", stats.max_bytes)
        yield _gauge("tyk_inspector_store_queued", "captures waiting to be written to the shared store", stats.queued)
        yield _gauge("tyk_inspector_sse_clients", "live views (browsers) connected", self.subscribers.subscriber_count)
        lag = getattr(self.store, "write_lag_seconds", None)
        if lag is not None:
            yield _gauge(
                "tyk_inspector_store_write_lag_seconds",
                "how long the last batch written to Redis had waited in the local queue",
                lag,
            )
            yield _counter(
                "tyk_inspector_store_write_errors",
                "failed writes to Redis (each retried with backoff)",
                getattr(self.store, "write_errors", 0),
            )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def create_registry(calls: CallMetrics, store: CaptureStore, subscribers: _Subscribers) -> CollectorRegistry:
    """A registry of our own (no process-wide default), holding only the inspector's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InspectorCollector(calls, store, subscribers))
    ProcessCollector(registry=registry)  # CPU, memory, open files of this process
    return registry
