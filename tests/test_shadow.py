"""--shadow: a second plugin server build gets every answered Dispatch after the gateway has its answer;
the capture says whether its outcome differs. Real plugin server processes, a real inspector, real clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.proxy.rules import RulesError, parse_rules
from tests.conftest import load_object
from tests.plugin_builds import plugin_build
from tests.plugins import plugin_server, stalled_plugin
from tests.test_proxy import inspector_with, write_rules


async def captures(http: httpx.AsyncClient, q: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await http.get("/api/captures", params={"q": q, "limit": 1000})).json()["items"]
    return items


async def wait_captures(http: httpx.AsyncClient, count: int, q: str = "") -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(found := await captures(http, q)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} captures"
        await asyncio.sleep(0.02)
    return found


@asynccontextmanager
async def released(release: asyncio.Event) -> AsyncIterator[None]:
    try:
        yield
    finally:
        release.set()


async def test_the_shadow_build_is_compared_after_the_gateway_has_its_answer() -> None:
    async with (
        plugin_build(1) as build_1,
        plugin_build(2) as build_2,
        inspector_with(upstream=build_1, shadow=build_2) as (_inspector, client, http),
    ):
        reply = await client.dispatch(load_object("pre.json"))
        assert reply.request.set_headers["X-Plan"] == "gold"  # the gateway gets build 1's answer
        await client.dispatch(load_object("post-key-auth.json"))
        large = load_object("pre.json")
        large.request.raw_body = b"x" * 600_000  # compared off the loop
        await client.dispatch(large)
        # Each capture is recorded (and given its id) once its shadow has answered.
        items = await wait_captures(http, 3)
        assert [c["shadow"] for c in items if c["size"] > 600_000] == ["differs"]
        items = [c for c in items if c["size"] < 600_000]
        by_hook = {item["hook_type"]: item for item in items}
        assert by_hook["Pre"]["shadow"] == "differs"
        assert by_hook["Pre"]["shadow_detail"] == "upstream header X-Plan: 'gold' -> 'silver'"
        # Build 2 edits the headers map of PostKeyAuth, which the gateway ignores: the same outcome.
        assert by_hook["PostKeyAuth"]["shadow"] == "same"
        assert [c["id"] for c in await captures(http, "shadow:differs hook:pre size:<100000")] == [by_hook["Pre"]["id"]]
        assert [c["hook_type"] for c in await captures(http, "shadow:same")] == ["PostKeyAuth"]
        metrics = (await http.get("/metrics")).text
        assert "tyk_inspector_shadow_calls_total 3.0" in metrics
        assert "tyk_inspector_shadow_differed_total 2.0" in metrics


async def test_a_stalled_shadow_costs_the_gateway_nothing_and_its_queue_is_bounded() -> None:
    release = asyncio.Event()
    async with (
        plugin_server(stalled_plugin(release)) as stalled,
        released(release),
        inspector_with(shadow=stalled.target, shadow_deadline_seconds=3.0, shadow_queue_items=2) as (_, client, http),
    ):
        sent = load_object("pre.json")
        began = time.perf_counter()
        for _ in range(20):
            assert await client.dispatch(sent) == sent  # the echo, at once
        assert time.perf_counter() - began < 2.0  # well under one shadow deadline
        # 8 shadow calls in flight, 2 queued: the other 10 are dropped, recorded at once and counted.
        dropped = await wait_captures(http, 10, "shadow:dropped")
        assert len(dropped) == 10 and all(c["shadow_detail"] == "the shadow queue was full" for c in dropped)
        assert "tyk_inspector_shadow_dropped_total 10.0" in (await http.get("/metrics")).text
        # The shadow's own deadline ends the stalled calls; those captures say so.
        failed = await wait_captures(http, 10, "shadow:failed")
        assert all("DEADLINE_EXCEEDED" in c["shadow_detail"] for c in failed)
        assert len(await captures(http)) == 20


async def test_a_rule_shadows_only_the_calls_it_matches(tmp_path: Path) -> None:
    async with plugin_build(1) as build_1, plugin_build(2) as build_2:
        rules = {
            "upstreams": {"current": build_1, "next": build_2},
            "default": "current",
            "rules": [{"name": "try pre", "match": {"hook_type": "Pre"}, "upstream": "current", "shadow": "next"}],
        }
        path = write_rules(tmp_path / "rules.yaml", rules)
        async with inspector_with(rules_file=str(path)) as (_inspector, client, http):
            await client.dispatch(load_object("pre.json"))
            await client.dispatch(load_object("post-key-auth.json"))
            items = {c["hook_type"]: c for c in await wait_captures(http, 2)}
            assert (items["Pre"]["shadow"], items["PostKeyAuth"]["shadow"]) == ("differs", None)
    with pytest.raises(RulesError, match="shadow: upstream 'nowhere'"):
        parse_rules({"rules": [{"match": {}, "action": "echo", "shadow": "nowhere"}]})
