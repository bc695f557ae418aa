"""The page on a stream faster than it can show: it reads a tail's skipped range through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from playwright.async_api import Page

from app.config import Settings
from app.server import Inspector
from tests.browser import Browser, open_dashboard
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


class TestHiddenPage:
    @pytest.fixture
    def settings(self) -> Settings:
        # Every batch of 2 or more is a tail, and the buffer keeps the newest 100 captures.
        return with_settings(sse_full_rate=50, sse_batch_seconds=0.02, buffer_items=100)()

    async def test_a_hidden_page_reads_a_skipped_range_once_shown_and_says_what_left_the_buffer(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        async with hidden_dashboard(inspector, client, http) as (browser, export):
            page = browser.page
            read_behind: list[str] = []
            page.on("request", lambda request: read_behind.append(request.url) if "after=" in request.url else None)
            await import_copies(http, export, 300)  # ids 2..301; the buffer keeps 202..301
            await wait_skipped_through(page, 301)
            assert read_behind == [], "a hidden page read the skipped range"
            assert await page.evaluate("window.tykInspector.state.all.length") == 1

            await page.evaluate(SHOW)
            await page.wait_for_function("n => window.tykInspector.state.all.length >= n", arg=101)
            ids = await page.evaluate("window.tykInspector.state.all.map((c) => c.id)")
            assert ids == [1, *range(202, 302)]
            assert read_behind, "the page read the range once shown"
            notice = page.locator("#notice")
            await notice.wait_for(state="visible")
            said = await notice.text_content() or ""
            assert "200 capture(s) (#2\u2013#201) left the server's buffer" in said
            assert browser.errors == []

    async def test_a_clear_while_hidden_is_no_gap_and_brings_nothing_back(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        async with hidden_dashboard(inspector, client, http) as (browser, export):
            page = browser.page
            await import_copies(http, export, 50)  # ids 2..51, skipped while hidden
            await wait_skipped_through(page, 51)
            assert (await http.delete("/api/captures")).status_code == 200
            await page.wait_for_function("() => window.tykInspector.state.all.length === 0")
            await import_copies(http, export, 30)  # ids 52..81, after the Clear
            await wait_skipped_through(page, 81)

            await page.evaluate(SHOW)
            await page.wait_for_function("n => window.tykInspector.state.all.length >= n", arg=30)
            ids = await page.evaluate("window.tykInspector.state.all.map((c) => c.id)")
            assert ids == list(range(52, 82)), "only what came after the Clear"
            assert await page.locator("#notice").is_hidden(), "the cleared captures did not leave the buffer"
            assert browser.errors == []


@asynccontextmanager
async def hidden_dashboard(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> AsyncIterator[tuple[Browser, dict[str, Any]]]:
    """The dashboard showing capture 1, then hidden; and an export of that capture to import copies of."""
    await client.dispatch(load_object("pre.json"))
    export = (await http.get("/api/export")).json()
    async with open_dashboard(inspector.http_url) as browser:
        await browser.wait_for_ids([1])
        await browser.page.evaluate(HIDE)
        yield browser, export


async def import_copies(http: httpx.AsyncClient, export: dict[str, Any], copies: int) -> None:
    export["captures"] = export["captures"][:1] * copies
    assert (await http.post("/api/import", json=export)).status_code == 201


async def wait_skipped_through(page: Page, last_id: int) -> None:
    """The tail arrived: the page knows the range it skipped (and, hidden, leaves it unread)."""
    await page.wait_for_function("n => (window.tykInspector.connection.behind || [0, 0])[1] >= n", arg=last_id)


# The page reads document.visibilityState; a headless page is always visible, so the test sets it.
HIDE = """() => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => window.__visibility });
  window.__visibility = "hidden";
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  window.__visibility = "visible";
  document.dispatchEvent(new Event("visibilitychange"));
}"""
