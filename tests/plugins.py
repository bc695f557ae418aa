"""Real grpc.aio plugin servers for the proxy tests: each answers Dispatch the way a plugin would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import grpc
import httpx

from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from protogen import coprocess_object_pb2_grpc as pb_grpc
from tests.conftest import TEST_SETTINGS, Client

Handler = Callable[[pb.Object], Awaitable[pb.Object]]


class PluginServer(pb_grpc.DispatcherServicer):
    """A Dispatcher on a loopback port that hands each Object to `handler` and remembers what it got."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[pb.Object] = []
        self.events: list[str] = []
        self.metadata: list[dict[str, str]] = []
        self.deadlines: list[float | None] = []
        """The seconds each call had left when it arrived; None: the caller set no deadline."""
        self.target = ""

    async def Dispatch(self, request: pb.Object, context: grpc.aio.ServicerContext) -> pb.Object:
        received = pb.Object()
        received.CopyFrom(request)  # the handler changes `request` in place
        self.received.append(received)
        self.metadata.append({k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)})
        self.deadlines.append(context.time_remaining())
        return await self.handler(request)

    async def DispatchEvent(self, request: pb.Event, context: grpc.aio.ServicerContext) -> pb.EventReply:
        self.events.append(request.payload)
        return pb.EventReply()


@asynccontextmanager
async def plugin_server(handler: Handler) -> AsyncIterator[PluginServer]:
    servicer = PluginServer(handler)
    server = grpc.aio.server()
    pb_grpc.add_DispatcherServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    servicer.target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        yield servicer
    finally:
        await server.stop(0)


def unused_target() -> str:
    """An address where nothing listens: a plugin server that is down."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


# --- plugins --------------------------------------------------------------------------------------


async def header_plugin(obj: pb.Object) -> pb.Object:
    """Sets and deletes headers and params, as a Pre plugin does."""
    obj.request.set_headers["X-Plugin"] = "headers"
    obj.request.delete_headers.append("User-Agent")
    obj.request.add_params["limit"] = "50"
    obj.request.delete_params.append("status")
    return obj


async def auth_plugin(obj: pb.Object) -> pb.Object:
    """CustomKeyCheck: 'Bearer good' gets a session, anything else a 401."""
    if obj.request.headers.get("Authorization") == "Bearer good":
        obj.session.rate, obj.session.per = 100, 1
        obj.session.metadata["token"] = "user-1"
        obj.metadata["token"] = "user-1"
    else:
        obj.request.return_overrides.response_code = 401
        obj.request.return_overrides.response_error = "bad key"
    return obj


async def response_plugin(obj: pb.Object) -> pb.Object:
    """Response hook: rewrites the body and adds a header in both header forms."""
    obj.response.raw_body = b'{"rewritten": true}'
    obj.response.headers["X-Rewritten"] = "yes"
    obj.response.multivalue_headers.add(key="X-Rewritten", values=["yes"])
    return obj


async def failing_plugin(obj: pb.Object) -> pb.Object:
    raise RuntimeError("plugin bug")


def stalled_plugin(release: asyncio.Event) -> Handler:
    """Never answers until `release` is set: a plugin slower than any deadline."""

    async def handler(obj: pb.Object) -> pb.Object:
        await release.wait()
        return obj

    return handler


@asynccontextmanager
async def raw_plugin_server(reply: bytes) -> AsyncIterator[str]:
    """A Dispatcher that answers every Dispatch with these bytes, whatever they are; yields its target."""

    async def dispatch(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return reply

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("coprocess.Dispatcher", {
            "Dispatch": grpc.unary_unary_rpc_method_handler(dispatch),
        }),)
    )  # fmt: skip
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        yield target
    finally:
        await server.stop(0)


@asynccontextmanager
async def inspector_in_front(target: str) -> AsyncIterator[tuple[Client, httpx.AsyncClient]]:
    """An inspector proxying to the plugin server at `target` (--upstream), with a gRPC and an HTTP client."""
    inspector = Inspector(replace(TEST_SETTINGS, upstream=target))
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url) as http,
        ):
            yield Client(channel), http
    finally:
        await inspector.stop()
