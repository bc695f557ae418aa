"""The page on a stream faster than it can show: it reads a tail's skipped range through the API."""

from __future__ import annotations

import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from tests.browser import open_dashboard
from tests.conftest import Client, load_object, with_settings


@pytest.fixture
def settings() -> Settings:
    # 50 captures a second in full at 20 ms batches: every batch of 2 or more is sent as its tail.
    return with_settings(sse_full_rate=50, sse_batch_seconds=0.02, buffer_items=10_000)()


async def test_page_lists_every_capture_in_order_when_the_stream_sends_tails(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    export = (await http.get("/api/export")).json()
    async with open_dashboard(inspector.http_url) as browser:
        await browser.wait_for_ids([1])
        for copies in (300, 40):
            export["captures"] = export["captures"][:1] * copies
            assert (await http.post("/api/import", json=export)).status_code == 201
        await browser.page.wait_for_function("n => window.tykInspector.state.all.length >= n", arg=341)
        ids = await browser.page.evaluate("window.tykInspector.state.all.map((c) => c.id)")
        assert ids == list(range(1, 342))
        assert browser.errors == []
    assert inspector.broadcaster.batches >= 2
