"""What another process writes into the shared store is not trusted: bad entries are skipped,
counted and logged; an entry id no capture id can follow does not stop the writes; the reader and
writer stop in bounded time. Real parts: Debian's redis-server, inspector replicas, gRPC and HTTP clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from app.capture.record import Capture
from app.server import Inspector
from app.store.stream_codec import META_FIELDS, encode_meta
from tests.conftest import ROOT, load_object, wait_listening, wait_until
from tests.plugins import header_plugin, plugin_server
from tests.redis_server import RedisServer, redis_server
from tests.test_redis_store import replica, store_settings, tagged

__all__ = ["redis_server"]  # the fixture, used by name

STREAM = "tyk-inspector:captures"


def meta_with(**changes: Any) -> bytes:
    """A capture's meta list as an inspector writes it, with some values replaced."""
    values = json.loads(encode_meta(Capture(kind="dispatch", request=b"", reply=None, path="/injected")))
    for name, value in changes.items():
        values[META_FIELDS.index(name) + 1] = value
    return json.dumps(values).encode()


def inject(server: RedisServer, fields: dict[str, bytes]) -> str:
    """An entry written into the stream by something else than an inspector, with the next id."""
    with server.client() as r:
        number = r.incr("tyk-inspector:last_id")
        entry_id = f"{number}-0"
        r.xadd(STREAM, fields, id=entry_id)
        return entry_id


BAD_ENTRIES: dict[str, Callable[[RedisServer], dict[str, bytes]]] = {
    "meta not JSON": lambda _: {"o": b"x", "m": b"{{{", "q": b""},
    "metadata [1]": lambda _: {"o": b"x", "m": meta_with(metadata=[1]), "q": b""},
    "duration a string": lambda _: {"o": b"x", "m": meta_with(duration_ns="slow"), "q": b""},
    "hook type a number": lambda _: {"o": b"x", "m": meta_with(hook_type=5), "q": b""},
    "schema not JSON": lambda server: _with_schema(server, "deadbeef", b"not json"),
    "schema of numbers": lambda server: _with_schema(server, "cafef00d", b"[1, 2]"),
    "meta of 2 MB": lambda _: {"o": b"x", "m": b'["' + b"a" * 2_000_000 + b'"]', "q": b""},
}


def _with_schema(server: RedisServer, schema_id: str, schema: bytes) -> dict[str, bytes]:
    with server.client() as r:
        r.hset("tyk-inspector:schemas", schema_id, schema)
    return {"o": b"x", "m": json.dumps([schema_id, "/x"]).encode(), "q": b""}


async def test_bad_entries_are_skipped_counted_and_logged_and_never_stop_a_reader(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = store_settings(redis_server)
    async with replica(settings) as a:
        await a.client.dispatch(tagged("before"))
        await wait_until(lambda: a.inspector.store.last_id == 1, what="the first capture")
        for make in BAD_ENTRIES.values():
            inject(redis_server, make(redis_server))
        await a.client.dispatch(tagged("after"))
        last = 2 + len(BAD_ENTRIES)
        await wait_until(lambda: a.inspector.store.last_id == last, what="the reader to go on past the bad entries")
        response = await a.http.get("/api/captures", params={"after": 0})
        assert response.status_code == 200
        assert [item["path"] for item in response.json()["items"]] == ["/before", "/after"]
        assert a.inspector.redis_store is not None and a.inspector.redis_store.unreadable == len(BAD_ENTRIES)
        for entry in range(2, last):
            assert f"stream entry {entry} " in caplog.text or f"stream entry {entry}-0 " in caplog.text
        assert "schema 'deadbeef'" in caplog.text and "schema 'cafef00d'" in caplog.text
        metrics = (await a.http.get("/metrics")).text
        assert f"tyk_inspector_store_unreadable_entries_total {float(len(BAD_ENTRIES))}" in metrics
        assert not (await a.http.get("/api/stats")).json()["health"]["degraded"]
    # A replica started afterwards loads the store as it is, bad entries and all.
    async with replica(settings) as b:
        assert [item["path"] for item in (await b.http.get("/api/captures", params={"after": 0})).json()["items"]] == [
            "/before",
            "/after",
        ]
        await b.client.dispatch(tagged("later"))
        await wait_until(lambda: b.inspector.store.last_id == last + 1, what="B's own capture")


async def test_an_entry_id_beyond_any_capture_id_does_not_stop_later_writes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = store_settings(redis_server)
    async with replica(settings) as a:
        await a.client.dispatch(tagged("before"))
        await wait_until(lambda: a.inspector.store.last_id == 1, what="the first capture")
        with redis_server.client() as r:
            r.xadd(STREAM, {"o": "x", "m": meta_with(), "q": b""}, id="18446744073709551615-0")
        for i in range(3):
            await a.client.dispatch(tagged(f"after-{i}"))
        await wait_until(lambda: a.inspector.store.last_id == 4, what="the captures written after it")
        assert await a.ids() == [1, 2, 3, 4]
        assert "removed 1 stream entries with ids no capture id can follow" in caplog.text
        with redis_server.client() as r:
            assert [entry_id for entry_id, _ in r.xrange(STREAM)] == [b"1-0", b"2-0", b"3-0", b"4-0"]
        # A Clear still works, and ids go on after it.
        with redis_server.client() as r:
            r.xadd(STREAM, {"o": "x", "m": meta_with(), "q": b""}, id="18446744073709551614-5")
        assert (await a.http.delete("/api/captures")).status_code == 200
        await a.client.dispatch(tagged("after-clear"))
        await wait_until(lambda: a.inspector.store.last_id == 5, what="a capture after the Clear")
    async with replica(settings) as b:
        assert await b.ids() == [5]


async def test_a_replay_larger_than_the_buffer_returns_the_capture(redis_server: RedisServer) -> None:
    async with plugin_server(header_plugin) as plugin:
        settings = store_settings(redis_server, buffer_bytes=8192, upstream=plugin.target)
        async with replica(settings) as a:
            await a.client.dispatch(tagged("small"))
            await wait_until(lambda: a.inspector.store.last_id == 1, what="the capture to replay")
            edited = load_object("pre.json")
            edited.request.raw_body = b"z" * 20_000  # its capture is over the 8 KiB bound
            began = time.monotonic()
            response = await a.http.post(
                "/api/captures/1/replay", json={"object": json_format.MessageToDict(edited)}, timeout=30
            )
            assert response.status_code == 201, response.text
            assert time.monotonic() - began < 5
            replayed = response.json()
            assert replayed["id"] == 2
            assert replayed["capture"]["truncated"] is True and "not kept" in replayed["capture"]["error"]


@pytest.mark.parametrize("redis_state", ["running", "paused"])
async def test_sigterm_with_the_redis_store_exits_in_bounded_time(redis_server: RedisServer, redis_state: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--store", redis_server.url,
        "--grpc-address", "127.0.0.1:0", "--http-port", "0", "--shutdown-grace", "1", "--capture-log", "off",
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    log: list[str] = []
    _, url = await wait_listening(process, log)
    async with httpx.AsyncClient(base_url=url) as http:  # answering: its signal handlers are in place
        assert (await http.get("/api/stats")).status_code == 200
    assert process.stderr is not None and redis_server.process is not None
    paused = redis_state == "paused"
    if paused:  # Redis stops answering mid-read: the reader's read can only end by its own timeout
        redis_server.process.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 30)
        code = await asyncio.wait_for(process.wait(), 30)
        took = time.monotonic() - began
    finally:
        if paused:
            redis_server.process.send_signal(signal.SIGCONT)
        if process.returncode is None:
            process.kill()
    text = "".join(log) + rest.decode()
    assert code == 0, text
    assert "Tyk Inspector stopped" in text
    assert took < 12, f"shutdown took {took:.1f} s"


async def test_the_reader_and_writer_end_by_their_stop_flags_not_by_cancellation(redis_server: RedisServer) -> None:
    """A cancellation can be lost inside redis-py's read (Python 3.11): stopping must not depend on it."""
    settings = store_settings(redis_server)
    inspector = Inspector(settings)
    await inspector.start()
    tasks = {entry.name: entry.task for entry in inspector.supervisor.states()}
    reader, writer = tasks["store-reader"], tasks["store-writer"]
    assert reader is not None and writer is not None
    store = inspector.redis_store
    assert store is not None
    began = time.monotonic()
    await store.stop(1.0)  # the reader is in a blocking read (up to 1 s) when asked to stop
    assert time.monotonic() - began < 3
    assert reader.done() and not reader.cancelled()
    assert writer.done() and not writer.cancelled()
    await inspector.stop()
