"""The Dispatcher as Tyk Gateway sees it: echo, events, reflection, health, bad input, unix socket."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from app.config import Settings
from app.grpc_service import BindError
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import EXAMPLES, HOOK_PAYLOADS, TEST_SETTINGS, Client, load_event, load_object


@pytest.mark.parametrize("payload", HOOK_PAYLOADS)
async def test_dispatch_echoes_every_hook_byte_for_byte(inspector: Inspector, client: Client, payload: str) -> None:
    sent = load_object(payload).SerializeToString()
    assert await client.dispatch_bytes(sent) == sent
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None
    assert capture.request == sent
    assert capture.reply is capture.request


@pytest.mark.parametrize("payload", HOOK_PAYLOADS)
async def test_capture_summary_fields_come_from_the_object(inspector: Inspector, client: Client, payload: str) -> None:
    obj = load_object(payload)
    await client.dispatch(obj, metadata=(("x-trace", "abc"),))
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None
    assert capture.kind == "dispatch"
    assert capture.hook_type == json.loads((EXAMPLES / payload).read_text())["hookType"]
    assert capture.hook_name == obj.hook_name
    assert capture.api_id == obj.spec["APIID"]
    assert capture.org_id == obj.spec["OrgID"]
    assert capture.method == obj.request.method
    assert capture.path == obj.request.url
    assert capture.status == (obj.response.status_code if obj.HasField("response") else None)
    assert ("x-trace", "abc") in capture.metadata
    assert capture.peer.startswith("ipv4:127.0.0.1:")
    assert capture.duration_ns > 0
    assert capture.error is None


async def test_event_reply_and_capture(inspector: Inspector, client: Client) -> None:
    event = load_event("event-auth-failure.json")
    reply = await client.event_bytes(event.SerializeToString())
    assert pb.EventReply.FromString(reply) == pb.EventReply()
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None
    assert (capture.kind, capture.hook_type, capture.hook_name) == ("event", "AuthFailure", "my_event_handler")
    assert capture.api_id == "b84fe1a04e5648927971c0557971565c"
    assert capture.path == "/orders-api/v1/orders/1234"


@pytest.mark.parametrize("payload", ["not json at all", "[1, 2]", '"a string"', '{"message": 5}', ""])
async def test_events_that_are_not_tyk_json_are_kept_not_refused(
    inspector: Inspector, client: Client, payload: str
) -> None:
    await client.event(payload)
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None
    assert capture.error is None
    assert pb.Event.FromString(capture.request).payload == payload


@pytest.mark.parametrize("method", ["Dispatch", "DispatchEvent"])
async def test_undecodable_bytes_get_invalid_argument_and_are_still_captured(
    inspector: Inspector, client: Client, method: str
) -> None:
    garbage = b"\xff\xff\xff\xff\x0f-not-protobuf"
    call = client.dispatch_bytes if method == "Dispatch" else client.event_bytes
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call(garbage)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a coprocess." in (failure.value.details() or "")
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None
    assert capture.request == garbage
    assert capture.reply is None
    assert capture.error is not None
    # ...and the server keeps serving.
    sent = load_object("pre.json").SerializeToString()
    assert await client.dispatch_bytes(sent) == sent


async def test_reflection_lists_the_dispatcher(client: Client) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    services: set[str] = set()
    async for response in stub.ServerReflectionInfo(requests):
        services.update(s.name for s in response.list_services_response.service)
    assert "coprocess.Dispatcher" in services
    assert "grpc.health.v1.Health" in services

    requests = iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="coprocess.Dispatcher")])
    async for response in stub.ServerReflectionInfo(requests):
        assert response.file_descriptor_response.file_descriptor_proto, "Dispatcher descriptor is served"


TYK_PROTO_FILES = {
    "coprocess_common.proto", "coprocess_mini_request_object.proto", "coprocess_object.proto",
    "coprocess_response_object.proto", "coprocess_return_overrides.proto", "coprocess_session_state.proto",
}  # fmt: skip


async def test_reflection_names_the_proto_files_as_tyk_does(client: Client) -> None:
    """grpcurl and other reflection clients see Tyk's own file names (coprocess/proto/*.proto), no prefix."""
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    names: set[str] = set()
    dependencies: set[str] = set()
    wanted = ["coprocess_object.proto", "coprocess_mini_request_object.proto"]
    requests = iter(
        [reflection_pb2.ServerReflectionRequest(file_containing_symbol="coprocess.Dispatcher")]
        + [reflection_pb2.ServerReflectionRequest(file_by_filename=name) for name in wanted]
    )
    async for response in stub.ServerReflectionInfo(requests):
        assert not response.HasField("error_response"), response.error_response.error_message
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            assert proto.package == "coprocess"
            names.add(proto.name)
            dependencies.update(proto.dependency)
    assert names == TYK_PROTO_FILES  # the Dispatcher's file and everything it imports
    assert dependencies <= TYK_PROTO_FILES


async def test_health_reports_serving(client: Client) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "coprocess.Dispatcher"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_large_bodies_within_the_message_limit_pass(inspector: Inspector) -> None:
    obj = load_object("post-json-body.json")
    obj.request.raw_body = b"\x00" * (20 * 1024 * 1024)  # Tyk's own tests pass a 20 MB body
    sent = obj.SerializeToString()
    # Like a gateway with grpc_recv_max_size raised: the client's default is 4 MiB.
    options = [("grpc.max_receive_message_length", 100_000_000)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}", options=options) as channel:
        assert await Client(channel).dispatch_bytes(sent) == sent


async def test_messages_over_the_limit_get_resource_exhausted(inspector: Inspector, client: Client) -> None:

    small = Inspector(replace(TEST_SETTINGS, max_message_bytes=1024))
    await small.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{small.grpc_port}") as channel:
            obj = load_object("pre.json")
            obj.request.raw_body = b"x" * 2048
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await Client(channel).dispatch(obj)
            assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert await Client(channel).dispatch(load_object("pre.json")) == load_object("pre.json")
    finally:
        await small.stop()


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "dispatcher.sock"
    settings = Settings(
        grpc_address="", grpc_unix_socket=str(path), http_port=0, capture_log="off", shutdown_grace_seconds=1
    )
    inspector = Inspector(settings)
    await inspector.start()
    try:
        async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
            sent = load_object("pre.json").SerializeToString()
            assert await Client(channel).dispatch_bytes(sent) == sent
        assert inspector.store.stats().count == 1
    finally:
        await inspector.stop()
    assert not path.exists()


async def test_bind_error_names_the_setting(inspector: Inspector) -> None:

    taken = replace(TEST_SETTINGS, grpc_address=f"127.0.0.1:{inspector.grpc_port}")
    with pytest.raises(BindError, match="--grpc-address"):
        await Inspector(taken).start()
    taken = replace(TEST_SETTINGS, http_port=inspector.http_port)
    with pytest.raises(BindError, match="--http-port"):
        await Inspector(taken).start()


GROUP_START, GROUP_END = b"\xfb\x07", b"\xfc\x07"  # an unknown field 127 as a (deprecated) group


def _truncated() -> bytes:
    data = load_object("post-key-auth.json").SerializeToString()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("truncated message", _truncated(), "not a coprocess.Object"),
        ("invalid UTF-8 in hook_name", b"\x12\x02\xff\xfe", "UTF-8"),
        ("nesting 200 deep", GROUP_START * 200 + GROUP_END * 200, "not a coprocess.Object"),
        ("a length beyond the end", b"\x1a\xff\xff\x03\x00", "not a coprocess.Object"),
    ],
)
async def test_malformed_objects_get_invalid_argument_with_the_reason(
    inspector: Inspector, client: Client, name: str, data: bytes, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await client.dispatch_bytes(data)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    assert reason in (failure.value.details() or "")
    capture = inspector.store.get(inspector.store.last_id)
    assert capture is not None and capture.request == data and capture.error
    assert await client.dispatch(load_object("pre.json")) == load_object("pre.json")  # still serving


async def test_unknown_and_mistyped_fields_are_kept_and_echoed(inspector: Inspector, client: Client) -> None:
    # Proto3 keeps fields it does not know (a newer gateway) and known fields sent with
    # another wire type as unknown ones: they are echoed untouched.
    data = load_object("pre.json").SerializeToString() + b"\x10\x05" + b"\xa2\x06\x03abc"
    assert await client.dispatch_bytes(data) == data
    assert inspector.store.get(inspector.store.last_id).error is None  # type: ignore[union-attr]


async def test_huge_maps(inspector: Inspector, client: Client) -> None:
    obj = load_object("pre.json")
    obj.request.headers.update({f"X-Header-{i}": "v" * 10 for i in range(100_000)})
    data = obj.SerializeToString()
    options = [("grpc.max_receive_message_length", 100_000_000)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}", options=options) as channel:
        assert await Client(channel).dispatch_bytes(data) == data
    assert inspector.store.get(inspector.store.last_id).hook_name == "MyPreHook"  # type: ignore[union-attr]
