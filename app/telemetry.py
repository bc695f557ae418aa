"""OpenTelemetry: every hook call as a server span, exported over OTLP/gRPC (optional extra `[otel]`).

Nothing here runs on the gateway's time. A finished capture is appended to a bounded queue
(one append on the Dispatch path; a full queue drops it, counted); a task on the loop turns
the queued captures into spans in short slices, and a thread of its own exports them in
batches, so an unreachable collector costs the gateway nothing: spans wait in a second bounded
queue and are dropped, counted, when it is full.

A call whose gRPC metadata carries W3C trace context (`traceparent`, Tyk 5.11+ with
OpenTelemetry on) becomes a child of the gateway's span. Otherwise the calls of one request
share a trace whose id is derived from the request's correlation key (the tag header of
--tag-requests, or a request-id header: app.journeys.journey), and a call with neither is a
trace of its own. Attributes name the hook, the API, who answered, the outcome and sizes;
never a body, a header value or anything redaction would hide.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.capture.analysis import analyze
from app.capture.record import Capture
from app.journeys.journey import correlation_of
from app.tyk.outcome import Gateway
from protogen import coprocess_object_pb2 as pb

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the extra is not installed: --otel-endpoint says how to get it
    AVAILABLE = False
else:
    AVAILABLE = True

log = logging.getLogger(__name__)

INSTALL_HINT = "OpenTelemetry export needs the otel extra: pip install 'tyk-inspector[otel]'"
SETTING = "--otel-endpoint / TYK_INSPECTOR_OTEL_ENDPOINT"
PARSE_MAX_BYTES = 1024 * 1024
"""Objects up to this size are read for the correlation key and body sizes; larger ones get sizes only."""
SLICE_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    endpoint: str | None
    """OTLP/gRPC endpoint (http://host:4317); None: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT."""
    queue_items: int = 2048
    """Captures, and spans, waiting at most (each queue); beyond it they are dropped and counted."""
    batch_items: int = 512
    export_seconds: float = 1.0
    shutdown_seconds: float = 3.0


def endpoint_from_env(environ: dict[str, str]) -> str | None:
    """The standard variables' endpoint, when --otel-endpoint is not given."""
    return environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


class _ChosenIds(IdGenerator):
    """Random ids, except a trace id set just before a root span is started (one trace per request)."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.next_trace_id: int | None = None

    def generate_span_id(self) -> int:
        value: int = self._random.generate_span_id()
        return value

    def generate_trace_id(self) -> int:
        chosen, self.next_trace_id = self.next_trace_id, None
        value: int = chosen if chosen is not None else self._random.generate_trace_id()
        return value


class _Batches(SpanProcessor):
    """Spans into a bounded queue; a thread exports them in batches (the SDK's own drops uncounted)."""

    def __init__(self, exporter: SpanExporter, config: TelemetryConfig) -> None:
        self._exporter = exporter
        self._config = config
        self._spans: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="otel-export", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._spans)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if len(self._spans) >= self._config.queue_items:
                self.dropped += 1
                return
            self._spans.append(span)
        if len(self._spans) >= self._config.batch_items:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._config.export_seconds)
            self._wake.clear()
            self._export_all()  # at shutdown too: what is queued goes out first
            if self._stop.is_set():
                return

    def _export_all(self) -> None:
        while True:
            with self._lock:
                batch = [self._spans.popleft() for _ in range(min(len(self._spans), self._config.batch_items))]
            if not batch:
                return
            try:
                result = self._exporter.export(batch)
            except Exception:  # an exporter bug must not end the thread
                log.exception("OpenTelemetry export failed")
                result = None
            if result == SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)

    def shutdown(self) -> None:
        # The last batches get `shutdown_seconds`; then the exporter's shutdown ends any export still
        # waiting on an unreachable collector (the thread is a daemon: it never holds the exit).
        self._stop.set()
        self._wake.set()
        self._thread.join(self._config.shutdown_seconds)
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._wake.set()
        return True


class Telemetry:
    """Captures in, spans out: `observe` on the Dispatch path, `run` as a supervised task, `stop` owns the thread."""

    def __init__(self, config: TelemetryConfig, gateway: Gateway) -> None:
        if not AVAILABLE:
            raise RuntimeError(INSTALL_HINT)
        self.config = config
        self.gateway = gateway
        self._captures: collections.deque[Capture] = collections.deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        """Captures that never became spans: their queue was full."""
        self._ids = _ChosenIds()
        exporter = OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else OTLPSpanExporter()
        self._batches = _Batches(exporter, config)
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tyk-inspector")})
        self._provider = TracerProvider(resource=resource, id_generator=self._ids)
        self._provider.add_span_processor(self._batches)
        self._tracer = self._provider.get_tracer("tyk-inspector")
        self._propagator = TraceContextTextMapPropagator()

    def observe(self, capture: Capture) -> None:
        """A finished call (Dispatch path: one append)."""
        if capture.replay_of is not None:
            return  # made from the page, not by the gateway
        if len(self._captures) >= self.config.queue_items:
            self.dropped += 1
            return
        self._captures.append(capture)
        self._ready.set()

    async def stop(self) -> None:
        """Once `run` has stopped: the spans still queued, then the export thread (bounded by its timeout)."""
        self._spans_now()
        await asyncio.to_thread(self._provider.shutdown)

    async def run(self) -> None:
        """Turns observed captures into spans, a slice at a time (the supervisor runs it as `otel-spans`)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            slice_end = time.perf_counter() + SLICE_SECONDS
            while self._captures:
                self._span(self._captures.popleft())
                if time.perf_counter() > slice_end:
                    await asyncio.sleep(0)  # the gateway's calls get their turn
                    slice_end = time.perf_counter() + SLICE_SECONDS

    def _spans_now(self) -> None:
        while self._captures:
            self._span(self._captures.popleft())

    def _span(self, capture: Capture) -> None:
        try:
            self._build(capture)
        except Exception:  # one odd capture costs its span, not the exporter
            log.exception("no span for capture %s", capture.id)

    def _build(self, capture: Capture) -> None:
        obj, reply = _messages(capture)
        metadata = {k: v for k, v in capture.metadata if isinstance(v, str)}
        parent = self._propagator.extract(metadata) if "traceparent" in metadata else None
        if parent is not None and not trace.get_current_span(parent).get_span_context().is_valid:
            parent = None
        if parent is None and capture.kind == "dispatch":
            correlation = correlation_of(capture, obj, reply)
            if correlation is not None:
                key = f"{correlation.by}:{capture.api_id}:{correlation.key}"
                self._ids.next_trace_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big") or 1
        start_ns = capture.received_us * 1000
        span = self._tracer.start_span(
            _name(capture),
            context=parent or Context(),
            kind=trace.SpanKind.SERVER,
            start_time=start_ns,
            attributes=_attributes(capture, obj, reply, self.gateway),
        )
        self._ids.next_trace_id = None
        if capture.kind == "dispatch" and capture.reply is not None:
            for warning in analyze(capture, self.gateway).warnings:
                span.add_event("tyk.lint.warning", {"tyk.lint.code": warning["code"]}, timestamp=start_ns)
        if capture.grpc_status not in (None, "OK"):
            span.set_status(trace.Status(trace.StatusCode.ERROR, capture.grpc_status))
        span.end(end_time=start_ns + capture.duration_ns)

    @property
    def queued_spans(self) -> int:
        return self._batches.queued

    @property
    def failed_spans(self) -> int:
        return self._batches.failed


def _messages(capture: Capture) -> tuple[pb.Object | None, pb.Object | None]:
    if capture.kind != "dispatch" or len(capture.request) > PARSE_MAX_BYTES:
        return None, None
    try:
        obj = pb.Object.FromString(capture.request)
    except DecodeError:
        return None, None
    if capture.reply is capture.request:
        return obj, obj
    if capture.reply is None or len(capture.reply) > PARSE_MAX_BYTES:
        return obj, None
    try:
        return obj, pb.Object.FromString(capture.reply)
    except DecodeError:
        return obj, None


def _name(capture: Capture) -> str:
    if capture.kind == "event":
        return f"DispatchEvent {capture.hook_type}".strip()
    return f"{capture.hook_type} {capture.hook_name}".strip() or "Dispatch"


def _attributes(
    capture: Capture, obj: pb.Object | None, reply: pb.Object | None, gateway: Gateway
) -> dict[str, str | int | bool]:
    attributes: dict[str, str | int | bool] = {
        "rpc.system": "grpc",
        "rpc.service": "coprocess.Dispatcher",
        "rpc.method": "DispatchEvent" if capture.kind == "event" else "Dispatch",
        "rpc.grpc.status_code": _GRPC_CODES.get(capture.grpc_status or "OK", 2),
        "tyk.hook.type": capture.hook_type,
        "tyk.hook.name": capture.hook_name,
        "tyk.api.id": capture.api_id,
        "tyk.org.id": capture.org_id,
        "tyk.inspector.answered_by": capture.answered_by,
        "tyk.message.size": len(capture.request),
    }
    if capture.id:  # a shared store (Redis) may give the id only later
        attributes["tyk.inspector.capture_id"] = capture.id
    if capture.reply is not None:
        attributes["tyk.reply.size"] = len(capture.reply)
    if capture.method:
        attributes["http.request.method"] = capture.method
    if capture.kind == "dispatch":
        status = analyze(capture, gateway).outcome_status
        if status is not None:
            attributes["tyk.outcome.status"] = str(status)
    if obj is not None:
        attributes["tyk.request.body.size"] = len(obj.request.raw_body)
        if obj.HasField("response"):
            attributes["tyk.response.body.size"] = len(obj.response.raw_body)
    if reply is not None and reply is not obj:
        attributes["tyk.reply.request.body.size"] = len(reply.request.raw_body)
        if reply.HasField("response"):
            attributes["tyk.reply.response.body.size"] = len(reply.response.raw_body)
    if capture.fault:
        attributes["tyk.inspector.fault"] = capture.fault
    return attributes


_GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "ABORTED": 10,
    "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip


class TelemetryCollector(Collector):
    """The export's counters for /metrics."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        t = self.telemetry
        batches = t._batches
        yield CounterMetricFamily("tyk_inspector_otel_spans_exported", "spans the collector accepted", batches.exported)
        yield CounterMetricFamily(
            "tyk_inspector_otel_spans_failed", "spans whose export failed (collector away or refusing)", batches.failed
        )
        yield CounterMetricFamily(
            "tyk_inspector_otel_spans_dropped",
            "calls that became no span: a queue to the collector was full",
            t.dropped + batches.dropped,
        )
        yield GaugeMetricFamily("tyk_inspector_otel_spans_queued", "spans waiting for export", batches.queued)


def check_available(endpoints: Sequence[str | None]) -> None:
    """Raise RuntimeError with the install hint when tracing is asked for without the extra."""
    if any(endpoints) and not AVAILABLE:
        raise RuntimeError(f"{SETTING}: {INSTALL_HINT}")
