"""The gateway's answer is sacred: recording never changes it; every call is captured, also the
ones the caller gave up on; unanswered calls are bounded by bytes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until
from tests.plugins import header_plugin, plugin_server, stalled_plugin
from tests.test_proxy import inspector_with, write_rules

BIG_BODY = bytes(range(256)) * 40  # 10 KB: more than a 4 KB buffer holds


def big_object() -> pb.Object:
    obj = load_object("pre.json")
    obj.request.raw_body = BIG_BODY
    return obj


async def test_a_capture_larger_than_the_buffer_does_not_empty_the_echo() -> None:
    async with inspector_with(buffer_bytes=4096) as (inspector, client, _http):
        sent = big_object().SerializeToString()
        assert await client.dispatch_bytes(sent) == sent
        capture = inspector.store.get(inspector.store.last_id)
        assert capture is not None and capture.truncated and capture.request == b""  # kept as a summary
        assert "--buffer-bytes" in (capture.error or "")
        assert capture.hook_name == load_object("pre.json").hook_name


async def test_a_capture_larger_than_the_buffer_does_not_empty_a_mock_reply(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", {"rules": [{"name": "m", "mock": {"set_headers": {"X-M": "1"}}}]})
    async with inspector_with(buffer_bytes=4096, rules_file=str(rules)) as (inspector, client, _http):
        reply = await client.dispatch(big_object())
        assert reply.request.set_headers["X-M"] == "1" and reply.request.raw_body == BIG_BODY
        capture = inspector.store.get(inspector.store.last_id)
        assert capture is not None and capture.truncated and capture.answered_by == "mock"


async def test_a_capture_larger_than_the_buffer_does_not_empty_an_upstream_reply() -> None:
    async with (
        plugin_server(header_plugin) as plugin,
        inspector_with(buffer_bytes=4096, upstream=plugin.target) as (inspector, client, _http),
    ):
        reply = await client.dispatch(big_object())
        assert reply.request.set_headers["X-Plugin"] == "headers" and reply.request.raw_body == BIG_BODY
        capture = inspector.store.get(inspector.store.last_id)
        assert capture is not None and capture.truncated and capture.answered_by == "upstream"


async def test_calls_the_caller_cancels_or_that_time_out_are_captured_with_that_status() -> None:
    release = asyncio.Event()
    async with (
        plugin_server(stalled_plugin(release)) as plugin,
        inspector_with(upstream=plugin.target) as (inspector, client, http),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as timed_out:
            await client.dispatch(load_object("pre.json"), timeout=0.5)
        assert timed_out.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        call = asyncio.ensure_future(client.dispatch(load_object("post-key-auth.json")))
        await wait_until(lambda: len(plugin.received) == 2, what="the second call to reach the plugin")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        await wait_until(lambda: inspector.store.stats().count == 2, what="both unanswered calls to be captured")
        items = (await http.get("/api/captures", params={"after": 0})).json()["items"]
        assert [(c["hook_type"], c["grpc_status"]) for c in items] == [
            ("Pre", "DEADLINE_EXCEEDED"),
            ("PostKeyAuth", "CANCELLED"),
        ]
        assert all(c["error"] and c["reply_size"] is None for c in items)
        release.set()
        assert await client.dispatch(load_object("pre.json")) == load_object("pre.json")
        assert (await http.get(f"/api/captures/{inspector.store.last_id}")).json()["grpc_status"] == "OK"


async def test_unanswered_calls_are_bounded_by_bytes() -> None:
    release = asyncio.Event()
    async with (
        plugin_server(stalled_plugin(release)) as plugin,
        inspector_with(upstream=plugin.target, max_inflight_bytes=25_000) as (inspector, client, _http),
    ):
        waiting = [asyncio.ensure_future(client.dispatch(big_object())) for _ in range(2)]
        await wait_until(lambda: len(plugin.received) == 2, what="two calls waiting on the plugin")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.dispatch(big_object())
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-inflight-bytes" in (refused.value.details() or "")
        release.set()
        replies = await asyncio.gather(*waiting)
        assert all(r.request.raw_body == BIG_BODY for r in replies)
        assert inspector.service.inflight_bytes == 0 and inspector.service.inflight_calls == 0
        assert (await client.dispatch(big_object())).request.raw_body == BIG_BODY  # room again


async def test_calls_cut_off_by_the_end_of_the_grace_period_are_captured_as_unavailable() -> None:
    release = asyncio.Event()
    async with plugin_server(stalled_plugin(release)) as plugin:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target, shutdown_grace_seconds=0.3))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                client = Client(channel)
                calls = [asyncio.ensure_future(client.dispatch(load_object("pre.json"))) for _ in range(5)]
                await wait_until(lambda: len(plugin.received) == 5, what="five calls waiting on the plugin")
                await inspector.stop()
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            release.set()
    assert {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)} == {grpc.StatusCode.UNAVAILABLE}
    captures = list(inspector.store.oldest_first())
    assert [c.grpc_status for c in captures] == ["UNAVAILABLE"] * 5
    assert all("the inspector stopped" in (c.error or "") for c in captures)
