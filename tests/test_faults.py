"""Faults: churning and stalled SSE clients leak nothing; cancelled gRPC calls hurt nothing."""

from __future__ import annotations

import asyncio
import logging

import grpc
import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from tests.conftest import Client, import_copies, load_object, stalled_stream_reader, wait_until, with_settings


async def test_sse_clients_connecting_and_leaving_hundreds_of_times_leak_nothing(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    obj = load_object("pre.json")

    async def visit(after: int) -> None:
        async with http.stream("GET", "/api/stream", params={"after": after}) as stream:
            await client.dispatch(obj)  # captures flow while clients come and go
            async for chunk in stream.aiter_raw():
                if b"event: ready" in chunk:
                    break

    # One visit first: it starts what lives as long as the server does (sse-starlette's
    # shutdown watcher, the HTTP and gRPC client connections).
    await visit(0)
    await wait_until(lambda: inspector.broadcaster.subscriber_count == 0, what="the first visit to end")
    tasks_before = len(asyncio.all_tasks())
    for round_ in range(199):
        await visit(max(0, round_ - 3))
    await wait_until(lambda: inspector.broadcaster.subscriber_count == 0, what="every subscriber to be gone")
    # No reader, sender or ping task left behind (closed connections may take a moment to wind down).
    await wait_until(lambda: len(asyncio.all_tasks()) <= tasks_before, what="tasks back to the baseline")
    stats = (await http.get("/api/stats")).json()
    assert stats["subscribers"] == 0 and stats["count"] == 200


@pytest.mark.serial  # measures Dispatch latency while a client stalls
class TestStalledClient:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(sse_send_timeout_seconds=0.5, buffer_items=100_000)()

    async def test_a_client_that_never_reads_is_dropped(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        await client.dispatch(load_object("response-petstore-301.json"))
        await import_copies(http, 20_000)
        # Catching up from the start, it is sent every capture, and reads none of them.
        with stalled_stream_reader(inspector.http_port):
            await wait_until(lambda: inspector.broadcaster.subscriber_count == 1, what="the stalled subscriber")
            await wait_until(
                lambda: inspector.broadcaster.subscriber_count == 0, within=20, what="the stalled client to be dropped"
            )
            # ...and the inspector serves on as before.
            assert await client.dispatch(load_object("pre.json")) == load_object("pre.json")


async def test_cancelled_and_timed_out_calls_leave_the_server_serving(
    inspector: Inspector, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    obj = load_object("post-key-auth.json")
    outcomes = await asyncio.gather(*(client.dispatch(obj, timeout=0.0005) for _ in range(200)), return_exceptions=True)
    timed_out = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    # 200 calls at once with half a millisecond each: the later ones cannot make it.
    assert timed_out, "no call timed out: the test did not exercise deadlines"
    assert {o.code() for o in timed_out} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert all(o == obj for o in outcomes if not isinstance(o, BaseException)), "a call in time got its echo"
    calls = [client.dispatch(obj) for _ in range(50)]
    tasks = [asyncio.ensure_future(c) for c in calls]
    for task in tasks[::2]:
        task.cancel()  # the caller goes away mid-call
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
    assert all(r == obj for r in results[1::2]), "the calls not cancelled got their echo"
    assert await client.dispatch(obj) == obj
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
