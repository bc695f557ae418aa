"""GET /api/stream over a real uvicorn: order, resume with Last-Event-ID, gaps, lagging clients, clear."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from app.config import Settings
from app.server import Inspector
from tests.conftest import Client, import_copies, load_object, stalled_stream_reader, wait_until, with_settings


class Stream:
    """An SSE connection read by a background task, so the test can send meanwhile."""

    def __init__(self) -> None:
        self.events: list[ServerSentEvent] = []
        self.ended = asyncio.Event()

    def named(self, name: str) -> list[ServerSentEvent]:
        return [e for e in self.events if e.event == name]

    def summaries(self) -> list[dict[str, Any]]:
        """Every summary received, in order: the items of `captures` and `tail` events."""
        return [item for _, items in self._batches() for item in items]

    def capture_ids(self) -> list[int]:
        """Every capture the stream told of, in order: sent in full, or in a tail's skipped range."""
        ids: list[int] = []
        for skipped, items in self._batches():
            if skipped:
                ids += range(skipped["from"], skipped["to"] + 1)
            ids += [item["id"] for item in items]
        return ids

    def _batches(self) -> list[tuple[dict[str, int] | None, list[dict[str, Any]]]]:
        found: list[tuple[dict[str, int] | None, list[dict[str, Any]]]] = []
        for event in self.events:
            if event.event == "captures":
                skipped, items = None, json.loads(event.data)
            elif event.event == "tail":
                data = json.loads(event.data)
                skipped, items = data["skipped"], data["items"]
                assert skipped["count"] == skipped["to"] - skipped["from"] + 1 > 0
                assert items[0]["id"] == skipped["to"] + 1, "the items follow the skipped range"
            else:
                continue
            assert items and int(event.id) == items[-1]["id"], "an event's id is its newest capture's"
            found.append((skipped, items))
        return found

    async def wait_for_ids(self, count: int) -> list[int]:
        await wait_until(lambda: len(self.capture_ids()) >= count, what=f"{count} captures")
        return self.capture_ids()


@asynccontextmanager
async def open_stream(http: httpx.AsyncClient, **params: Any) -> AsyncIterator[Stream]:
    headers = {}
    if "last_event_id" in params:
        headers["Last-Event-ID"] = str(params.pop("last_event_id"))
    stream = Stream()

    async def read() -> None:
        try:
            async with aconnect_sse(http, "GET", "/api/stream", params=params, headers=headers) as source:
                async for event in source.aiter_sse():
                    stream.events.append(event)
        finally:
            stream.ended.set()

    task = asyncio.create_task(read())
    try:
        # A catch-up may first build a large capture's view in a worker process, slow to start on a loaded machine.
        await wait_until(
            lambda: stream.named("ready") or stream.ended.is_set(), within=15, what="the stream to be live"
        )
        yield stream
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def dispatch_n(client: Client, n: int) -> None:
    obj = load_object("pre.json")
    for _ in range(n):
        await client.dispatch(obj)


async def test_live_captures_arrive_in_order_with_ids(client: Client, http: httpx.AsyncClient) -> None:
    async with open_stream(http) as stream:
        await dispatch_n(client, 20)
        assert await stream.wait_for_ids(20) == list(range(1, 21))
        first = stream.summaries()[0]
        assert (first["hook_type"], first["hook_name"], first["id"]) == ("Pre", "MyPreHook", 1)


async def test_every_event_is_valid_json(client: Client, http: httpx.AsyncClient) -> None:
    async with open_stream(http) as stream:
        await dispatch_n(client, 3)
        await client.event("not json")
        await stream.wait_for_ids(4)
        assert (await http.delete("/api/captures")).status_code == 200
        await wait_until(lambda: stream.named("clear"), what="clear event")
        assert stream.events[0].retry == 1000  # browsers reconnect after a second
        for event in stream.events:
            if event.data or event.event != "message":  # a bare `retry:` field dispatches nothing
                json.loads(event.data)


async def test_after_sends_the_backlog_first(client: Client, http: httpx.AsyncClient) -> None:
    await dispatch_n(client, 5)
    async with open_stream(http, after=2) as stream:
        assert stream.capture_ids() == [3, 4, 5]
        assert json.loads(stream.named("ready")[0].data) == {"last_id": 5}
        await dispatch_n(client, 1)
        assert await stream.wait_for_ids(4) == [3, 4, 5, 6]


async def test_no_resume_point_means_live_only(client: Client, http: httpx.AsyncClient) -> None:
    await dispatch_n(client, 3)
    async with open_stream(http) as stream:
        assert stream.capture_ids() == []
        await dispatch_n(client, 1)
        assert await stream.wait_for_ids(1) == [4]


async def test_reconnect_with_last_event_id_loses_nothing(client: Client, http: httpx.AsyncClient) -> None:
    async with open_stream(http) as first:
        await dispatch_n(client, 5)
        seen = await first.wait_for_ids(5)
    await dispatch_n(client, 7)  # while disconnected
    async with open_stream(http, last_event_id=seen[-1], after=0) as second:
        await dispatch_n(client, 3)
        resumed = await second.wait_for_ids(10)
    assert seen + resumed == list(range(1, 16))
    assert second.named("gap") == []


async def test_stream_ends_when_the_server_shuts_down() -> None:
    # Its own inspector: stopping it is the point of the test, so no fixture may stop it again.
    inspector = Inspector(with_settings()())
    await inspector.start()
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url, timeout=10) as http, open_stream(http) as stream:
            assert not stream.ended.is_set()
            await asyncio.wait_for(inspector.stop(), 10)
            stopped = True
            await asyncio.wait_for(stream.ended.wait(), 5)
    finally:
        if not stopped:
            await inspector.stop()


class TestEvictedWhileAway:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(buffer_items=5)()

    async def test_gap_notice_for_captures_evicted_before_resume(self, client: Client, http: httpx.AsyncClient) -> None:
        await dispatch_n(client, 12)  # ids 8..12 remain
        async with open_stream(http, last_event_id=3) as stream:
            gap = json.loads(stream.named("gap")[0].data)
            assert gap == {"from": 4, "to": 7, "missed": 4}
            assert stream.capture_ids() == [8, 9, 10, 11, 12]
            gap_index = stream.events.index(stream.named("gap")[0])
            assert json.loads(stream.events[gap_index + 1].data)[0]["id"] == 8  # the notice comes right before the jump


class TestLaggingClient:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(sse_queue_size=2, buffer_items=100_000)()

    async def test_lagging_client_resyncs_from_the_buffer_without_loss(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        await dispatch_n(client, 1)
        export = (await http.get("/api/export")).json()
        export["captures"] *= 200
        async with open_stream(http) as stream:
            # An import publishes 200 captures in one loop turn: far more than a 2-message queue.
            assert (await http.post("/api/import", json=export)).status_code == 201
            assert await stream.wait_for_ids(200) == list(range(2, 202))
            assert stream.named("gap") == []
            stats = (await http.get("/api/stats")).json()
            assert stats["subscriber_lags"] >= 1, "the client should have lagged in this test"


async def test_client_from_an_earlier_run_starts_afresh(client: Client, http: httpx.AsyncClient) -> None:
    await dispatch_n(client, 2)
    async with open_stream(http, last_event_id=5000) as stream:
        assert stream.named("clear") and stream.capture_ids() == [1, 2]


@pytest.mark.serial  # measures Dispatch latency while a client stalls
class TestStalledClient:
    @pytest.fixture
    def settings(self) -> Settings:
        # A short queue so the stalled reader is seen to lag; a long send timeout so it stays stalled
        # (and connected) for the whole measurement.
        return with_settings(sse_queue_size=50, buffer_items=100_000, sse_send_timeout_seconds=120)()

    async def test_stalled_client_does_not_slow_dispatch_or_others(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        with stalled_stream_reader(inspector.http_port):
            await wait_until(lambda: inspector.broadcaster.subscriber_count == 1, what="the stalled subscriber")
            await client.dispatch(load_object("pre.json"))
            await import_copies(http, 20_000)
            await wait_until(lambda: inspector.broadcaster.lag_count >= 1, within=20, what="the stalled client to lag")

            obj = load_object("pre.json")

            async def timed_dispatch() -> float:
                began = time.perf_counter()
                # The deadline turns a Dispatch held up by the stalled browser into a failure, not a hang.
                assert await client.dispatch(obj, timeout=20) == obj
                return time.perf_counter() - began

            async with open_stream(http) as healthy:
                latencies = sorted([await timed_dispatch() for _ in range(100)])
                latencies += await asyncio.gather(*(timed_dispatch() for _ in range(200)))
                assert len(await healthy.wait_for_ids(300)) == 300
                assert inspector.broadcaster.subscriber_count == 2, "the stalled client was stalled throughout"
            # A Dispatch that waited on the stalled socket would take the send timeout (120 s);
            # the bound is generous for a loaded machine and still far below that.
            latencies.sort()
            assert latencies[-1] < 5.0, f"slowest Dispatch took {latencies[-1]:.2f}s"


async def test_a_batch_is_one_event(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    await dispatch_n(client, 1)
    export = (await http.get("/api/export")).json()
    export["captures"] *= 15
    async with open_stream(http) as a, open_stream(http) as b:
        batches = inspector.broadcaster.batches
        assert (await http.post("/api/import", json=export)).status_code == 201  # 15 captures in one loop turn
        for stream in (a, b):
            assert await stream.wait_for_ids(15) == list(range(2, 17))
            (event,) = stream.named("captures")
            assert event.id == "16" and [s["id"] for s in json.loads(event.data)] == list(range(2, 17))
        assert a.named("captures")[0].data == b.named("captures")[0].data
        assert inspector.broadcaster.batches == batches + 1, "one batch, so one wakeup per stream"


class TestTail:
    @pytest.fixture
    def settings(self) -> Settings:
        # 250 a second in full at 20 ms batches: a batch of more than 5 is sent as its tail.
        return with_settings(sse_full_rate=250, sse_batch_seconds=0.02)()

    async def test_a_batch_beyond_the_rate_sends_its_tail_and_the_range_of_the_rest(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        await dispatch_n(client, 1)
        export = (await http.get("/api/export")).json()
        export["captures"] *= 50
        async with open_stream(http) as stream:
            assert (await http.post("/api/import", json=export)).status_code == 201  # ids 2..51 in one batch
            assert await stream.wait_for_ids(50) == list(range(2, 52))
            (tail,) = stream.named("tail")
            assert tail.id == "51"
            data = json.loads(tail.data)
            assert data["skipped"] == {"from": 2, "to": 46, "count": 45}
            assert [s["id"] for s in data["items"]] == [47, 48, 49, 50, 51]
            assert stream.named("gap") == []
        # The skipped captures were never encoded for the stream; the page reads them through the API.
        assert all(inspector.store.get(i).summary_json is None for i in range(2, 47))  # type: ignore[union-attr]
        listed = (await http.get("/api/captures", params={"after": 1, "limit": 45})).json()
        assert [s["id"] for s in listed["items"]] == list(range(2, 47)) and listed["next_after"] == 46
        assert listed["items"][0] == {**data["items"][0], "id": 2, "received_at": listed["items"][0]["received_at"]}

        # Resuming after the tail's id sends only what came later, and no gap.
        async with open_stream(http, last_event_id=51) as resumed:
            await dispatch_n(client, 2)
            assert await resumed.wait_for_ids(2) == [52, 53]
            assert resumed.named("gap") == [] and resumed.named("tail") == []

    async def test_catching_up_from_the_buffer_sends_everything_in_full(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        await dispatch_n(client, 12)
        async with open_stream(http, after=0) as stream:
            assert [s["id"] for s in stream.summaries()] == list(range(1, 13))
            assert stream.named("tail") == []


class TestEvictedWhileLagging:
    @pytest.fixture
    def settings(self) -> Settings:
        # A 2-capture queue and a 5-capture buffer: a flood makes the client lag, and most of
        # the flood is evicted before it resyncs from the buffer.
        return with_settings(sse_queue_size=2, buffer_items=5)()

    async def test_gap_notice_is_exact_when_a_lagging_client_resyncs(
        self, client: Client, http: httpx.AsyncClient
    ) -> None:
        await dispatch_n(client, 1)
        export = (await http.get("/api/export")).json()
        export["captures"] *= 50
        async with open_stream(http) as stream:
            assert (await http.post("/api/import", json=export)).status_code == 201  # ids 2..51
            await dispatch_n(client, 1)  # id 52, after the flood
            await stream.wait_for_ids(1)
            await wait_until(lambda: 52 in stream.capture_ids(), what="the capture after the flood")
            told = stream.capture_ids()
            missed = [i for i in range(2, 53) if i not in told]
            gaps = [json.loads(e.data) for e in stream.named("gap")]
            assert gaps, "most of the flood was evicted before the client resynced"
            # Every id is either told or in exactly one gap notice, in order, and nothing twice.
            assert sorted(told) == told and len(set(told)) == len(told)
            assert [i for g in gaps for i in range(g["from"], g["to"] + 1)] == missed
            assert all(g["missed"] == g["to"] - g["from"] + 1 for g in gaps)
