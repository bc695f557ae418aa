"""The store is the one source of capture events: both backends say "added" once a capture has
its id and "cleared through id N" once emptied; live streams follow them, a lagging one included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.capture.record import Capture
from app.config import Settings
from app.server import Inspector, create_redis_store
from app.store.buffer import RingBuffer
from app.store.redis_store import RedisStore
from app.supervisor import Supervisor
from app.web.stream import capture_events
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until, with_settings
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name


class Heard:
    """A listener that keeps what the store said."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def added(self, capture: Capture) -> None:
        assert capture.id > 0, "announced before it had its id"
        self.events.append(("added", capture.id))

    def cleared(self, last_id: int) -> None:
        self.events.append(("cleared", last_id))


def capture() -> Capture:
    data = load_object("pre.json").SerializeToString()
    return Capture(kind="dispatch", request=data, reply=data)


async def test_the_memory_store_says_added_and_cleared() -> None:
    store = RingBuffer(10, 10**6)
    heard = Heard()
    store.events.listen(heard)
    store.add(capture())
    await store.append([capture(), capture()])
    assert await store.clear_all() == 3
    store.add(capture())
    assert heard.events == [("added", 1), ("added", 2), ("added", 3), ("cleared", 3), ("added", 4)]


async def test_the_redis_store_says_added_and_cleared_once_ids_are_given(redis_server: RedisServer) -> None:
    store = create_redis_store(replace(TEST_SETTINGS, store=redis_server.url))
    assert isinstance(store, RedisStore)
    heard = Heard()
    store.events.listen(heard)
    supervisor = Supervisor()
    await store.start(supervisor)
    try:
        queued = capture()
        store.add(queued)
        assert heard.events == []  # queued for Redis: no id yet, nothing said
        await store.settle_capture(queued)
        await store.append([capture()])
        assert await store.clear_all() == 2
        await wait_until(lambda: len(heard.events) == 3, what="the Clear read back")
        assert heard.events == [("added", 1), ("added", 2), ("cleared", 2)]
    finally:
        await store.stop(1.0)
        await supervisor.stop()


@pytest.fixture
def settings() -> Settings:
    return with_settings(sse_queue_size=2, buffer_items=100_000)()


async def next_chunks(events: AsyncIterator[bytes], until: bytes) -> bytes:
    """Read the stream's chunks until one holds `until`."""
    text = b""
    while until not in text:
        text += await asyncio.wait_for(anext(events), 10)
    return text


async def test_a_lagging_stream_is_told_of_a_clear_not_of_a_gap(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    assert inspector.web is not None
    await client.dispatch(load_object("pre.json"))
    export = (await http.get("/api/export")).json()
    export["captures"] *= 50
    events = capture_events(inspector.web, 1)  # a browser that has capture 1
    try:
        await next_chunks(events, b"event: ready")
        # While this stream does not read, an import makes it lag, then a Clear and two new calls.
        assert (await http.post("/api/import", json=export)).status_code == 201  # ids 2..51
        await wait_until(lambda: inspector.broadcaster.lag_count >= 1, what="the stream to lag")
        assert (await http.delete("/api/captures")).status_code == 200
        await client.dispatch(load_object("pre.json"))
        await client.dispatch(load_object("pre.json"))  # ids 52, 53
        text = await next_chunks(events, b"id: 53\n")
        assert b"event: clear" in text, "the stream was not told of the Clear"
        after_clear = text[text.index(b"event: clear") :]
        assert b'"last_id": 51' in after_clear.split(b"\n\n")[0]
        assert b"event: gap" not in after_clear  # cleared, not missed
        assert b'"id":52' in after_clear and b'"id":53' in after_clear
    finally:
        await events.aclose()  # type: ignore[attr-defined]
