"""The page says when a shared store (Redis) could not keep captures the gateway was answered for."""

from __future__ import annotations

import re
import time

import grpc

from app.server import Inspector
from tests.browser import dashboard_in, launch_chromium
from tests.conftest import Client, load_object
from tests.redis_server import RedisServer, redis_server
from tests.test_redis_store import store_settings

__all__ = ["redis_server"]  # the fixture, used by name


async def test_captures_a_shared_store_could_not_keep_are_counted_in_the_toolbar(redis_server: RedisServer) -> None:
    inspector = Inspector(store_settings(redis_server, store_queue_items=10))
    await inspector.start()
    try:
        store = inspector.redis_store
        assert store is not None
        async with (
            launch_chromium() as chromium,
            dashboard_in(chromium, inspector.http_url) as browser,
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
        ):
            badge = browser.page.locator("#dropped")
            assert await badge.is_hidden()  # nothing dropped: nothing said
            client = Client(channel)
            redis_server.kill()
            obj = load_object("pre.json")

            deadline = time.monotonic() + 30
            while store.dropped == 0:  # the local queue (10 captures) fills while Redis is away
                assert time.monotonic() < deadline, "no capture was dropped while Redis was away"
                assert await client.dispatch(obj) == obj  # the gateway is answered all the same
            await badge.wait_for(state="visible")
            shown = int(re.sub(r"\D", "", (await badge.text_content() or "").split(" ")[0]))
            assert 0 < shown <= store.dropped
            assert "not stored" in (await badge.text_content() or "")
    finally:
        await inspector.stop()
