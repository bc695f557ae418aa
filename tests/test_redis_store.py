"""The Redis store with real parts: Debian's redis-server, two inspector replicas, real gRPC and HTTP/SSE clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from app.store.buffer import StoreUnavailable
from protogen import coprocess_object_pb2 as pb
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until
from tests.redis_server import RedisServer, redis_server
from tests.test_stream import open_stream

__all__ = ["redis_server"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent


class Replica:
    """One running inspector with its gRPC and HTTP clients."""

    def __init__(self, inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
        self.inspector = inspector
        self.client = client
        self.http = http

    async def ids(self) -> list[int]:
        response = await self.http.get("/api/captures", params={"after": 0, "limit": 10_000})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/api/stats")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[Replica]:
    inspector = Inspector(settings)
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url, timeout=10) as http,
        ):
            yield Replica(inspector, Client(channel), http)
    finally:
        await inspector.stop()


def store_settings(server: RedisServer, **changes: Any) -> Settings:
    return replace(TEST_SETTINGS, store=server.url, **changes)


def tagged(tag: str) -> pb.Object:
    obj = load_object("pre.json")
    obj.request.url = f"/{tag}"
    return obj


async def paths(r: Replica) -> list[str]:
    response = await r.http.get("/api/captures", params={"after": 0, "limit": 10_000})
    return [item["path"] for item in response.json()["items"]]


async def test_a_capture_sent_to_one_replica_shows_in_the_other_api_export_and_stream(
    redis_server: RedisServer,
) -> None:
    settings = store_settings(redis_server)
    async with replica(settings) as a, replica(settings) as b, open_stream(b.http) as live:
        sent = tagged("from-a")
        reply = await a.client.dispatch(sent)
        assert reply == sent  # the echo, untouched

        ids = await live.wait_for_ids(1)
        event = live.summaries()[0]
        assert event["path"] == "/from-a" and ids == [event["id"]]

        await wait_until(lambda: b.inspector.store.last_id == ids[0], what="replica B to read the capture")
        assert await b.ids() == ids == await a.ids()
        detail = (await b.http.get(f"/api/captures/{ids[0]}")).json()
        assert detail["request"]["request"]["url"] == "/from-a"

        export = (await b.http.get("/api/export")).json()
        assert [(c["id"], c["request"]["request"]["url"]) for c in export["captures"]] == [(ids[0], "/from-a")]


async def test_replicas_share_one_order_of_ids(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server)
    async with replica(settings) as a, replica(settings) as b:
        calls = [(a if i % 2 else b).client.dispatch(tagged(f"call-{i}")) for i in range(40)]
        await asyncio.gather(*calls)
        await wait_until(
            lambda: a.inspector.store.last_id == b.inspector.store.last_id == 40, what="both replicas to show 40"
        )
        assert await a.ids() == await b.ids() == list(range(1, 41))
        assert sorted(await paths(a)) == sorted(f"/call-{i}" for i in range(40))
        assert await paths(a) == await paths(b)
        # The stream's ids are the capture ids.
        with redis_server.client() as r:
            entries = r.xrange("tyk-inspector:captures")
        assert [entry_id.decode() for entry_id, _ in entries] == [f"{n}-0" for n in range(1, 41)]


async def test_captures_survive_a_restart_of_every_replica(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server)
    async with replica(settings) as a, replica(settings) as b:
        await a.client.dispatch(tagged("one"))
        await b.client.dispatch(tagged("two"))
        await wait_until(lambda: a.inspector.store.stats().count == 2, what="two captures")
    # Both stopped: nothing in memory any more.
    async with replica(settings) as a, replica(settings) as b:
        assert await a.ids() == await b.ids() == [1, 2]
        assert sorted(await paths(b)) == ["/one", "/two"]
        await b.client.dispatch(tagged("three"))
        await wait_until(lambda: a.inspector.store.last_id == 3, what="ids to go on from the stored ones")
        assert (await paths(a))[-1] == "/three"


async def test_clear_and_import_act_on_every_replica(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server)
    async with replica(settings) as a, replica(settings) as b, open_stream(b.http) as live:
        for i in range(3):
            await a.client.dispatch(tagged(f"old-{i}"))
        await live.wait_for_ids(3)
        export = (await a.http.get("/api/export")).content

        response = await a.http.delete("/api/captures")
        assert response.status_code == 200 and response.json()["cleared"] == 3
        await wait_until(lambda: live.named("clear"), what="B's stream to announce the Clear")
        assert await b.ids() == [] and await a.ids() == []

        response = await b.http.post("/api/import", content=export)
        assert response.status_code == 201, response.text
        ids = response.json()["ids"]
        assert ids == [4, 5, 6]  # ids keep counting up after a Clear
        await wait_until(lambda: a.inspector.store.last_id == 6, what="A to read the import")
        assert await a.ids() == ids
        assert await paths(a) == ["/old-0", "/old-1", "/old-2"]
    # A replica started after the Clear does not load what was cleared.
    async with replica(settings) as c:
        assert await c.ids() == [4, 5, 6]


async def test_bounds_hold_in_redis_and_in_every_replica(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server, buffer_items=5)
    async with replica(settings) as a, replica(settings) as b:
        for i in range(12):
            await a.client.dispatch(tagged(f"n-{i}"))
        await wait_until(lambda: b.inspector.store.last_id == 12, what="B to read 12 captures")
        assert await a.ids() == await b.ids() == [8, 9, 10, 11, 12]
        with redis_server.client() as r:
            assert r.xlen("tyk-inspector:captures") == 5
            assert r.llen("tyk-inspector:sizes") == 5
        stats = await b.stats()
        assert stats["count"] == 5 and stats["evicted"] == 7 and stats["total"] == 12

    body = load_object("pre.json")
    body.request.raw_body = b"x" * 3000
    size = len(body.SerializeToString()) + 1024  # each capture also counts its record
    settings = store_settings(redis_server, buffer_bytes=3 * size + 100, store_prefix="bytes")
    async with replica(settings) as a, replica(settings) as b:
        for _ in range(7):
            await a.client.dispatch(body)
        await wait_until(lambda: b.inspector.store.last_id == 7, what="B to read 7 captures")
        with redis_server.client() as r:
            stored = int(r.get("bytes:bytes") or 0)
            assert r.xlen("bytes:captures") == 3
        assert stored == 3 * size <= settings.buffer_bytes
        for r_ in (a, b):
            stats = await r_.stats()
            assert stats["count"] == 3 and stats["bytes"] == stored and stats["evicted"] == 4


async def test_an_echo_is_stored_once_and_a_too_large_capture_keeps_its_reply(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server, buffer_bytes=4096)
    async with replica(settings) as a:
        small = tagged("small")
        await a.client.dispatch(small)
        big = tagged("big")
        big.request.raw_body = b"y" * 10_000
        reply = await a.client.dispatch(big)
        assert reply == big  # the gateway gets its whole answer
        await wait_until(lambda: a.inspector.store.last_id == 2, what="two captures")
        with redis_server.client() as r:
            entries = dict(r.xrange("tyk-inspector:captures"))
        echo = entries[b"1-0"]
        assert b"r" not in echo and echo[b"q"] == small.SerializeToString()
        stored = a.inspector.store.get(2)
        assert stored is not None and stored.truncated and stored.request == b""
        assert "not kept" in (stored.error or "")


async def test_redis_killed_under_load_costs_the_gateway_nothing(redis_server: RedisServer) -> None:
    settings = store_settings(redis_server, store_queue_items=50)
    async with replica(settings) as a:
        store = a.inspector.redis_store
        assert store is not None
        errors: list[BaseException] = []
        sent = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal sent
            obj = tagged("load")
            while not stop.is_set():
                try:
                    assert await a.client.dispatch(obj, timeout=5) == obj
                    sent += 1
                except Exception as exc:  # every failure counts against the inspector
                    errors.append(exc)

        workers = [asyncio.create_task(load()) for _ in range(8)]
        await wait_until(lambda: store.written >= 100, within=20, what="captures written")
        redis_server.kill()
        await wait_until(lambda: store.dropped > 0, within=20, what="captures dropped while Redis is away")
        during = sent
        await wait_until(lambda: sent >= during + 200, within=20, what="the gateway answered without Redis")
        redis_server.start()
        written = store.written
        await wait_until(lambda: store.written > written + 100, within=30, what="writing to resume")
        stop.set()
        await asyncio.gather(*workers)

        assert errors == []
        stats = await a.stats()
        assert stats["dropped"] == store.dropped > 0
        metrics = (await a.http.get("/metrics")).text
        assert f"tyk_inspector_captures_dropped_total {float(store.dropped)}" in metrics
        assert "tyk_inspector_store_write_lag_seconds " in metrics
        # The Redis that came back is empty; ids still go on from those shown before it went away.
        await wait_until(lambda: a.inspector.store.last_id > written, within=10, what="new captures shown")
        ids = await a.ids()
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_a_key_of_another_type_is_reported_not_overwritten(redis_server: RedisServer) -> None:
    with redis_server.client() as r:
        r.hset("tyk-inspector:captures", "someone", "else")
    inspector = Inspector(store_settings(redis_server))
    with pytest.raises(Exception, match=r"'tyk-inspector:captures' is a hash, not a stream.*--store-prefix"):
        await inspector.start()
    await inspector.stop()
    with redis_server.client() as r:
        assert r.hgetall("tyk-inspector:captures") == {b"someone": b"else"}


async def test_import_and_clear_fail_clearly_while_redis_is_away(redis_server: RedisServer) -> None:
    async with replica(store_settings(redis_server)) as a:
        await a.client.dispatch(tagged("kept"))
        await wait_until(lambda: a.inspector.store.last_id == 1, what="one capture")
        export = (await a.http.get("/api/export")).content
        redis_server.kill()
        response = await a.http.delete("/api/captures")
        assert response.status_code == 503 and "Redis" in response.json()["detail"]
        response = await a.http.post("/api/import", content=export)
        assert response.status_code == 503 and "Redis" in response.json()["detail"]
        assert await a.ids() == [1]  # nothing shown is lost
        with pytest.raises(StoreUnavailable):
            await a.inspector.redis_store.clear_all()  # type: ignore[union-attr]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYK_INSPECTOR_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--grpc-address", "127.0.0.1:0", "--http-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_a_redis_that_refuses_the_password_is_exit_2_naming_the_setting(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="right-password")
    server.start()
    try:
        result = run_cli("--store", f"redis://:wrong-password@127.0.0.1:{server.port}/0")
        assert result.returncode == 2, result.stderr
        assert "--store" in result.stderr and "refused" in result.stderr
        assert "wrong-password" not in result.stderr
        result = run_cli("--store", f"redis://127.0.0.1:{server.port}/0")
        assert result.returncode == 2 and "--store" in result.stderr
    finally:
        server.kill()


@pytest.mark.parametrize("url", ["redis://localhost:port/0", "http://localhost:6379", "redis://localhost/db"])
def test_a_store_url_that_does_not_parse_is_exit_2_naming_the_setting(url: str) -> None:
    result = run_cli("--store", url)
    assert result.returncode == 2 and "--store" in result.stderr
