"""Fixtures: a real inspector on loopback ephemeral ports, real gRPC and HTTP clients."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from google.protobuf import json_format

from app.config import Settings
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
# The payloads the README documents are the ones the tests send: no copies to drift apart.
EXAMPLES = ROOT / "examples"
DATA = Path(__file__).parent / "data"
"""Inputs only the tests use (none of them copies of examples/)."""
DISPATCH = "/coprocess.Dispatcher/Dispatch"
DISPATCH_EVENT = "/coprocess.Dispatcher/DispatchEvent"
T = TypeVar("T")

# Most tests check fidelity (what was sent is what is shown and exported), so they run with
# redaction off; test_security.py checks the default, redacted view.
TEST_SETTINGS = Settings(
    grpc_address="127.0.0.1:0", http_port=0, capture_log="off", shutdown_grace_seconds=2, redact=False
)


def load_object(name: str) -> pb.Object:
    return json_format.Parse((EXAMPLES / name).read_text(), pb.Object())


def load_event(name: str) -> pb.Event:
    return json_format.Parse((EXAMPLES / name).read_text(), pb.Event())


HOOK_PAYLOADS = [
    "pre.json",
    "custom-key-check.json",
    "post-key-auth.json",
    "post-json-body.json",
    "response-gzip.json",
    "response-petstore-301.json",
]


LISTENING = re.compile(r"gRPC Dispatcher on \S+:(\d+), dashboard at (http://\S+)")


async def wait_listening(process: asyncio.subprocess.Process, log: list[str]) -> tuple[int, str]:
    """Read an inspector process's stderr into `log` until it says where it listens: (gRPC port, dashboard URL)."""
    assert process.stderr is not None
    while not (match := LISTENING.search("".join(log))):
        line = await asyncio.wait_for(process.stderr.readline(), 15)
        assert line, "the inspector exited before listening: " + "".join(log)
        log.append(line.decode())
    return int(match.group(1)), match.group(2)


async def wait_until(predicate: Callable[[], T], within: float = 5.0, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class Client:
    """Raw-bytes gRPC calls to the Dispatcher, as the gateway makes them."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self._dispatch = channel.unary_unary(DISPATCH)
        self._event = channel.unary_unary(DISPATCH_EVENT)

    async def dispatch_bytes(self, data: bytes, **kwargs: Any) -> bytes:
        reply: bytes = await self._dispatch(data, **kwargs)
        return reply

    async def dispatch(self, obj: pb.Object, **kwargs: Any) -> pb.Object:
        return pb.Object.FromString(await self.dispatch_bytes(obj.SerializeToString(), **kwargs))

    async def event_bytes(self, data: bytes, **kwargs: Any) -> bytes:
        reply: bytes = await self._event(data, **kwargs)
        return reply

    async def event(self, payload: str) -> bytes:
        return await self.event_bytes(pb.Event(payload=payload).SerializeToString())


@pytest.fixture
def settings() -> Settings:
    """Override in a test module to run the inspector with other settings."""
    return TEST_SETTINGS


@asynccontextmanager
async def running_inspector(settings: Settings) -> AsyncIterator[Inspector]:
    """An inspector started on free loopback ports, stopped on the way out."""
    server = Inspector(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def grpc_client(inspector: Inspector) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
        yield Client(channel)


def http_client(inspector: Inspector) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=inspector.http_url, timeout=10)


@pytest.fixture
async def inspector(settings: Settings) -> AsyncIterator[Inspector]:
    async with running_inspector(settings) as server:
        yield server


@pytest.fixture
async def client(inspector: Inspector) -> AsyncIterator[Client]:
    async with grpc_client(inspector) as session:
        yield session


@pytest.fixture
async def http(inspector: Inspector) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(inspector) as session:
        yield session


@contextmanager
def stalled_stream_reader(port: int) -> Iterator[socket.socket]:
    """A raw socket with a tiny receive buffer that asks for the stream from the start and never reads a byte."""
    stalled = socket.socket()
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /api/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        yield stalled
    finally:
        stalled.close()


async def import_copies(http: httpx.AsyncClient, copies: int) -> None:
    """Import the buffer's captures `copies` times over (20,000 copies of an event: ~10 MB, past any socket buffer)."""
    export = (await http.get("/api/export")).json()
    export["captures"] *= copies
    # Parsed off the loop, so this client's own timeout runs while the import does.
    assert (await http.post("/api/import", json=export, timeout=120)).status_code == 201


def with_settings(**changes: Any) -> Callable[[], Settings]:
    """A `settings` fixture body for modules that need other limits."""

    def make() -> Settings:
        return replace(TEST_SETTINGS, **changes)

    return make


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*calls))
