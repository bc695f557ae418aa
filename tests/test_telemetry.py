"""--otel-endpoint: every call as a server span, sent to a real OTLP/gRPC receiver (opentelemetry-proto's
TraceService on a loopback port), under the gateway's span when the metadata carries its trace context."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.conftest import load_object, wait_until
from tests.otlp import attributes, otlp_receiver
from tests.plugins import unused_target
from tests.test_proxy import inspector_with

GATEWAY_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_SPAN = "00f067aa0ba902b7"


async def test_spans_sit_under_the_gateways_span_and_a_request_shares_one_trace() -> None:
    with otlp_receiver() as (receiver, port):
        endpoint = f"http://127.0.0.1:{port}"
        async with inspector_with(otel_endpoint=endpoint, otel_export_seconds=0.1) as (_inspector, client, http):
            traced = load_object("pre.json")
            traced.request.headers["Authorization"] = "Bearer s3cr3t-token"
            parent = f"00-{GATEWAY_TRACE}-{GATEWAY_SPAN}-01"
            await client.dispatch(traced, metadata=(("traceparent", parent),))
            # No trace context: the Pre and Post hooks of one request (one X-Request-Id) share a trace.
            await client.dispatch(load_object("pre.json"))
            post = load_object("post-json-body.json")
            post.request.headers["X-Request-Id"] = load_object("pre.json").request.headers["X-Request-Id"]
            post.spec["APIID"] = load_object("pre.json").spec["APIID"]
            await client.dispatch(post)
            alone = load_object("post-key-auth.json")
            assert not {"x-request-id", "x-correlation-id"} & {k.lower() for k in alone.request.headers}
            await client.dispatch(alone)

            await wait_until(lambda: len(receiver.spans) >= 4, within=10, what="4 spans at the receiver")
            by_id = {attributes(s)["tyk.inspector.capture_id"]: s for s in receiver.spans}
            gateway_child = by_id[1]
            assert gateway_child.trace_id.hex() == GATEWAY_TRACE
            assert gateway_child.parent_span_id.hex() == GATEWAY_SPAN
            assert gateway_child.kind == trace_pb2.Span.SPAN_KIND_SERVER
            assert gateway_child.name == "Pre MyPreHook"
            found = attributes(gateway_child)
            assert found["tyk.hook.type"] == "Pre" and found["tyk.api.id"] == traced.spec["APIID"]
            assert found["tyk.outcome.status"] == "continue" and found["tyk.inspector.answered_by"] == "echo"
            assert found["tyk.message.size"] == len(traced.SerializeToString())
            assert gateway_child.end_time_unix_nano >= gateway_child.start_time_unix_nano > 0
            # Never a header value, a body or a credential.
            assert b"s3cr3t" not in b"".join(s.SerializeToString() for s in receiver.spans)

            assert by_id[2].trace_id == by_id[3].trace_id != gateway_child.trace_id
            assert not by_id[2].parent_span_id and not by_id[3].parent_span_id
            assert by_id[4].trace_id not in (by_id[2].trace_id, gateway_child.trace_id)
            assert receiver.resources[0]["service.name"] == "tyk-inspector"
            metrics = (await http.get("/metrics")).text
            assert "tyk_inspector_otel_spans_exported_total 4.0" in metrics


async def test_lint_warnings_are_span_events_and_failed_calls_are_errors(tmp_path: Any) -> None:
    from tests.test_proxy import write_rules

    rules = write_rules(
        tmp_path / "rules.yaml",
        {"rules": [
            {"name": "down", "match": {"hook_type": "Pre"}, "fault": {"fail": "UNAVAILABLE"}},
            {"name": "bad", "match": {"hook_type": "Post"}, "mock": {"set_headers": {"Host": "elsewhere"}}},
        ]},
    )  # fmt: skip
    with otlp_receiver() as (receiver, port):
        endpoint = f"http://127.0.0.1:{port}"
        options = {"otel_endpoint": endpoint, "otel_export_seconds": 0.1, "rules_file": str(rules)}
        async with inspector_with(**options) as (_, client, _http):
            with suppress(grpc.aio.AioRpcError):
                await client.dispatch(load_object("pre.json"))
            await client.dispatch(load_object("post-json-body.json"))
            await wait_until(lambda: len(receiver.spans) >= 2, within=10, what="2 spans")
            failed, linted = sorted(receiver.spans, key=lambda s: attributes(s)["tyk.inspector.capture_id"])
            assert failed.status.code == trace_pb2.Status.STATUS_CODE_ERROR and failed.status.message == "UNAVAILABLE"
            assert attributes(failed)["rpc.grpc.status_code"] == 14
            assert attributes(failed)["tyk.outcome.status"] == "500"
            codes = [e.attributes[0].value.string_value for e in linted.events if e.name == "tyk.lint.warning"]
            assert codes, "the Host set header is a lint warning"


async def test_an_unreachable_collector_costs_the_gateway_nothing() -> None:
    async with inspector_with(otel_endpoint=f"http://{unused_target()}", otel_export_seconds=0.1) as (
        inspector,
        client,
        http,
    ):
        sent = load_object("pre.json")
        began = time.perf_counter()
        for _ in range(200):
            assert await client.dispatch(sent) == sent
        elapsed = time.perf_counter() - began
        assert elapsed < 5, elapsed  # no call waits on the collector
        assert inspector.telemetry is not None
        await wait_until(
            lambda: inspector.telemetry is not None and inspector.telemetry.failed_spans > 0,
            within=15,
            what="a failed export",
        )
        assert "tyk_inspector_otel_spans_failed_total" in (await http.get("/metrics")).text
    # stop() returned: the export thread was ended within its bound.


async def test_the_capture_queue_is_bounded_and_counts_its_drops() -> None:
    from app.capture.record import Capture
    from app.telemetry import Telemetry, TelemetryConfig
    from app.tyk.outcome import LATEST_GATEWAY

    telemetry = Telemetry(TelemetryConfig(f"http://{unused_target()}", queue_items=5), LATEST_GATEWAY)
    request = load_object("pre.json").SerializeToString()
    for _ in range(12):
        telemetry.observe(Capture(kind="dispatch", request=request, reply=request))
    assert telemetry.dropped == 7
    await telemetry.stop()


async def test_spans_still_queued_are_sent_when_the_inspector_stops() -> None:
    with otlp_receiver() as (receiver, port):
        async with inspector_with(otel_endpoint=f"http://127.0.0.1:{port}", otel_export_seconds=60) as (
            _inspector,
            client,
            _http,
        ):
            for _ in range(50):
                await client.dispatch(load_object("pre.json"))
            assert receiver.spans == []  # the next export is a minute away
        assert len(receiver.spans) == 50
