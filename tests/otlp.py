"""A real OTLP/gRPC trace receiver (opentelemetry-proto's TraceService) on a loopback port.

Its own thread pool serves it, so a synchronous test (the conformance suite, with the real
gateway exporting to it) and an asyncio test can both use it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Every span exported to it, and the resource (service) each came from."""

    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []
        self.resources: list[dict[str, Any]] = []
        self.services: list[str] = []
        """The `service.name` of each span in `spans`, index for index."""
        self.lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                self.resources.append(resource)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
                    self.services.extend([resource.get("service.name", "")] * len(scope_spans.spans))
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans_of(self, service: str) -> list[trace_pb2.Span]:
        with self.lock:
            return [span for span, name in zip(self.spans, self.services, strict=True) if name == service]


@contextmanager
def otlp_receiver() -> Iterator[tuple[Receiver, int]]:
    """The receiver and its port on 127.0.0.1."""
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, port
    finally:
        server.stop(0).wait(5)


def attributes(span: trace_pb2.Span) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = value.string_value if value.HasField("string_value") else value.int_value
    return values
