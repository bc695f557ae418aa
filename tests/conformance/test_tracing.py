"""The gateway and the inspector export to one OTLP receiver: the inspector's spans sit under the gateway's.

Tyk Gateway with its OpenTelemetry on (tyk.conf `opentelemetry`: exporter `grpc`, W3C trace context)
sends each coprocess call with a `traceparent` in the gRPC metadata, the id of its own client span
for the call; the inspector (`--otel-endpoint`) makes its server span a child of it. Both export to
the same receiver (tests/otlp.py), so the trace holds the gateway's request and, under the call,
the hook as the inspector saw it (docs/telemetry.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.conformance.conftest import GATEWAY
from tests.conformance.harness import (
    Gateway,
    InspectorProcess,
    Plugin,
    Upstream,
    classic_api,
    deadline_wait,
    free_port,
    send,
)
from tests.otlp import Receiver, attributes, otlp_receiver
from tests.redis_server import RedisServer

GATEWAY_SERVICE = "tyk-gateway-conformance"
INSPECTOR_SERVICE = "tyk-inspector"
REQUESTS = 3
HOOKS = ("Pre", "Post", "Response")


@dataclass
class Traced:
    receiver: Receiver
    gateway: Gateway
    inspector: InspectorProcess


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    if GATEWAY.path is None:
        pytest.skip(GATEWAY.reason)
    directory: Path = tmp_path_factory.mktemp("tracing")
    with contextlib.ExitStack() as stack:
        receiver, port = stack.enter_context(otlp_receiver())
        (directory / "redis-data").mkdir()
        redis = RedisServer(directory / "redis-data")
        redis.start()
        stack.callback(redis.stop)
        upstream = stack.enter_context(Upstream())
        plugin = Plugin()
        plugin.server.start()
        stack.callback(lambda: plugin.server.stop(0))
        inspector = InspectorProcess(
            plugin.port, GATEWAY.version, directory / "inspector.log",
            options=["--otel-endpoint", f"http://127.0.0.1:{port}"],
        )  # fmt: skip
        stack.callback(inspector.stop)
        opentelemetry = {
            "enabled": True,
            "exporter": "grpc",
            "endpoint": f"127.0.0.1:{port}",
            "connection_timeout": 5,
            "resource_name": GATEWAY_SERVICE,
            "span_processor_type": "simple",
            "context_propagation": "tracecontext",
        }
        gateway = Gateway(
            GATEWAY, directory / "gw", redis.port, inspector.grpc_port, [classic_api("keyless", upstream.port)],
            port=free_port(), conf={"opentelemetry": opentelemetry},
        )  # fmt: skip
        stack.callback(gateway.stop)
        yield Traced(receiver, gateway, inspector)


def test_the_inspectors_spans_sit_under_the_gateways_in_its_trace(traced: Traced) -> None:
    for number in range(REQUESTS):
        seen = send(traced.gateway, "GET", f"/keyless/anything?n={number}", {}, b"")
        assert seen.status == 200, seen
    receiver = traced.receiver
    ours = deadline_wait(
        lambda: found if len(found := receiver.spans_of(INSPECTOR_SERVICE)) >= REQUESTS * len(HOOKS) else None,
        20,
        f"{REQUESTS * len(HOOKS)} inspector spans at the receiver",
    )
    assert len(ours) == REQUESTS * len(HOOKS)
    wanted = {span.parent_span_id for span in ours}

    def parents() -> dict[bytes, trace_pb2.Span] | None:
        exported = {span.span_id: span for span in receiver.spans_of(GATEWAY_SERVICE)}
        return exported if wanted <= exported.keys() else None

    theirs = deadline_wait(parents, 20, "the gateway's spans the inspector's are children of")
    traces: dict[bytes, list[str]] = {}
    for span in ours:
        parent = theirs[span.parent_span_id]
        assert span.trace_id == parent.trace_id, span.name
        assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert parent.kind == trace_pb2.Span.SPAN_KIND_CLIENT
        assert parent.name == "coprocess.Dispatcher/Dispatch"  # the gateway's call to the inspector
        assert parent.start_time_unix_nano <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= parent.end_time_unix_nano
        traces.setdefault(span.trace_id, []).append(attributes(span)["tyk.hook.type"])
    # One trace per request, holding its three hooks, each under its own call's span.
    assert len(traces) == REQUESTS
    assert all(sorted(hooks) == sorted(HOOKS) for hooks in traces.values()), traces
    assert len(wanted) == len(ours)
    # The gateway's own spans of each request are in that trace too: the request's root among them.
    gateway_traces = {s.trace_id for s in theirs.values() if not s.parent_span_id}
    assert set(traces) <= gateway_traces
