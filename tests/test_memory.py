"""Every byte is bounded: the detail cache by bytes, replay and upstream channels by count and idleness."""

from __future__ import annotations

import asyncio
from typing import Any

from app.proxy.upstream import UpstreamPool
from app.server import Inspector
from app.web.context import WebContext
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object, wait_until
from tests.plugins import header_plugin, plugin_server, stalled_plugin
from tests.test_proxy import inspector_with


def web_context(inspector: Inspector) -> WebContext:
    assert inspector._http is not None
    app: Any = inspector._http.config.app
    context: WebContext = app.state.inspector
    return context


async def test_the_detail_cache_is_bounded_by_bytes() -> None:
    async with inspector_with(detail_cache_bytes=1_000_000) as (inspector, client, http):
        obj = load_object("pre.json")
        obj.request.raw_body = b"x" * 150_000  # a detail of ~0.5 MB: base64 in the Object, text in the body view
        for _ in range(6):
            await client.dispatch(obj)
        cache = web_context(inspector).details
        sizes = []
        for capture_id in range(1, 7):
            response = await http.get(f"/api/captures/{capture_id}")
            assert response.status_code == 200
            sizes.append(len(response.content))
            assert cache.bytes <= 1_000_000
        assert sum(sizes) > 2_000_000 and 1 <= len(cache) < 6
        # The newest stays cached: asked again, the very same bytes come back.
        assert b"".join(cache.get(6) or []) == (await http.get("/api/captures/6")).content


async def test_upstream_channels_are_bounded_and_idle_ones_closed() -> None:
    pool = UpstreamPool(1_000_000, max_channels=2, idle_seconds=0.5)
    request = load_object("pre.json").SerializeToString()
    try:
        async with plugin_server(header_plugin) as a, plugin_server(header_plugin) as b:
            async with plugin_server(header_plugin) as c:
                for target in (a.target, b.target, c.target, a.target):
                    reply = pb.Object.FromString(await pool.call(target, "Dispatch", request, 5))
                    assert reply.request.set_headers["X-Plugin"] == "headers"
                    assert pool.open_channels <= 2
            # A busy channel is never cut off, even past the bound.
            release = asyncio.Event()
            async with plugin_server(stalled_plugin(release)) as slow:
                waiting = asyncio.ensure_future(pool.call(slow.target, "Dispatch", request, 10))
                await wait_until(lambda: len(slow.received) == 1, what="the call to reach the slow plugin")
                await pool.call(a.target, "Dispatch", request, 5)
                await pool.call(b.target, "Dispatch", request, 5)
                release.set()
                assert pb.Object.FromString(await waiting) == load_object("pre.json")
            # Nobody calls for a while: every channel is closed.
            await wait_until(lambda: pool.open_channels == 0, within=10, what="idle channels to be closed")
            assert pb.Object.FromString(await pool.call(a.target, "Dispatch", request, 5)).request.set_headers
    finally:
        await pool.close()
    assert pool.open_channels == 0


async def test_replay_to_many_targets_keeps_the_channels_bounded() -> None:
    async with inspector_with() as (inspector, client, http):
        inspector.upstreams.max_channels = 2
        await client.dispatch(load_object("pre.json"))
        targets = []
        for _ in range(4):
            async with plugin_server(header_plugin) as plugin:
                targets.append(plugin.target)
                response = await http.post("/api/captures/1/replay", json={"to": plugin.target})
                assert response.status_code == 201
                assert inspector.upstreams.open_channels <= 2
        assert len(set(targets)) == 4
