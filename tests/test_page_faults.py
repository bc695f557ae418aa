"""When things go wrong in the page: the inspector down or restarted, long pauses, very big bodies."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from playwright.async_api import Browser as Chromium

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import TEST_SETTINGS, Client, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_inspector_down_is_announced_and_actions_report_failure(chromium: Chromium) -> None:
    inspector = Inspector(TEST_SETTINGS)
    await inspector.start()
    stopped = False
    try:
        client = Client(_channel(inspector))
        for name in ("pre.json", "custom-key-check.json", "post-key-auth.json"):
            await client.dispatch(load_object(name))
        await client.channel.close()
        async with dashboard_in(chromium, inspector.http_url) as browser:
            page = browser.page
            await browser.wait_rows(3)
            await browser.select(1)
            await inspector.stop()
            stopped = True
            banner = page.locator("#banner")
            await page.wait_for_selector("#banner[data-kind='down']")
            assert await banner.get_attribute("aria-live") == "assertive"
            assert "not answering" in await banner.inner_text()
            await page.wait_for_selector("#connection[data-state='down']")
            assert await browser.rows() == [1, 2, 3]  # the list keeps what it had

            await page.click("#list .row[data-id='2']")  # never opened: cannot be loaded now
            await page.wait_for_selector("#detail .error-text:has-text('could not be loaded')")
            await page.click("#list .row[data-id='1']")  # opened before: still shown from the page's memory
            await page.wait_for_selector(".detail-head h2:has-text('MyPreHook')")

            await page.click("#clear")
            assert "for every viewer" in await page.inner_text("#clear-dialog")
            await page.click("#clear-confirm")
            await page.wait_for_selector("#notice:has-text('Clear failed')")
            assert await browser.rows() == [1, 2, 3]
    finally:
        if not stopped:
            await inspector.stop()


def _channel(inspector: Inspector) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}")


async def test_after_a_restart_the_page_keeps_its_captures_and_offers_them(chromium: Chromium, tmp_path: Path) -> None:
    first = Inspector(TEST_SETTINGS)
    await first.start()
    port = first.http_port
    try:
        client = Client(_channel(first))
        for name in ("pre.json", "custom-key-check.json", "post-key-auth.json"):
            await client.dispatch(load_object(name))
        await client.channel.close()
        async with dashboard_in(chromium, first.http_url) as browser:
            page = browser.page
            await browser.wait_rows(3)
            await browser.select(2)  # opened: its full content is in the page
            await first.stop()
            await page.wait_for_selector("#banner[data-kind='down']")

            second = Inspector(replace(TEST_SETTINGS, http_port=port))
            await second.start()
            try:
                await page.wait_for_selector("#banner[data-kind='restarted']")
                assert "kept the 3 capture(s)" in await page.inner_text("#banner")
                await page.wait_for_selector("#connection[data-state='live']")
                client = Client(_channel(second))
                await client.dispatch(load_object("response-gzip.json"))  # id 1 again, in the new process
                await client.channel.close()
                await page.wait_for_function("document.querySelectorAll('#list .row').length === 4")
                keys = await page.eval_on_selector_all("#list .row", "rows => rows.map(r => r.dataset.key).sort()")
                assert keys == ["1", "r1-1", "r1-2", "r1-3"]
                assert "stale" in (await page.get_attribute("#list .row[data-key='r1-1']", "class") or "")
                await page.click("#list .row[data-key='r1-3']")
                await page.wait_for_selector("#detail:has-text('before it restarted')")
                await page.click("#list .row[data-key='1']")
                await page.wait_for_selector(".detail-head h2:has-text('Response')")

                async with page.expect_download() as download_info:
                    await page.click("#export-kept")
                saved = tmp_path / "kept.json"
                await (await download_info.value).save_as(saved)
                kept = json.loads(saved.read_text())
                assert kept["format"] == "tyk-inspector-export"
                assert [c["id"] for c in kept["captures"]] == [2]
                assert kept["captures"][0]["request"]["hookName"] == "MyAuthCheck"
                assert [c["id"] for c in kept["page_summaries"]] == [1, 2, 3]
                # The file imports back: the opened capture with its full content.
                async with httpx.AsyncClient(base_url=second.http_url) as http:
                    answer = await http.post("/api/import", content=saved.read_bytes())
                assert answer.status_code == 201, answer.text
                assert answer.json()["imported"] == 1
            finally:
                await second.stop()
    finally:
        await first.stop()


async def test_the_paused_waiting_list_is_bounded(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await page.evaluate("window.tykInspector.state.maxWaiting = 5")
        await page.click("#pause")
        for _ in range(12):
            await client.dispatch(load_object("pre.json"))
        await page.wait_for_selector("#waiting:has-text('12 waiting')")
        assert await page.evaluate("window.tykInspector.state.waiting.length") == 5
        await page.click("#pause")  # resumed: what was not kept comes from the server's buffer
        assert await browser.wait_rows(12) == list(range(1, 13))
        assert browser.errors == []


async def test_a_big_json_body_builds_only_what_is_open(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "price": i * 1.5} for i in range(20_000)]
    body = json.dumps({"items": items, "count": len(items)}).encode()
    assert len(body) > 1_000_000
    obj = load_object("post-json-body.json")
    obj.request.raw_body = body
    await client.dispatch(obj)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(1)
        await browser.select(1)
        tree = page.locator(".body-viewer .json-tree")
        await tree.wait_for()
        nodes = await page.evaluate("document.querySelectorAll('#detail *').length")
        assert nodes < 3000, nodes
        # 20,000 items: ranges of ranges ([0 … 9999], [10000 … 19999]), each opened on demand.
        ranges = tree.locator(
            ":scope > details > .json-children > .json-entry > details > .json-children > .json-entry > .json-range"
        )
        assert await ranges.count() == 2
        assert await ranges.nth(1).locator("summary").first.inner_text() == "[10000 … 19999]"
        await ranges.nth(1).locator("summary").first.click()
        inner = ranges.nth(1).locator(":scope > .json-children > .json-entry > .json-range > summary")
        await inner.nth(99).wait_for()  # built when the range opens (its toggle event)
        assert await inner.count() == 100
        assert await inner.nth(3).inner_text() == "[10300 … 10399]"
        await inner.nth(3).click()
        entry = ranges.nth(1).locator(".json-index", has_text="10342").first
        await entry.wait_for()
        assert await page.evaluate("document.querySelectorAll('#detail *').length") < 6000
        assert browser.errors == []
