"""Acting on a capture from the page: body downloads, replay differences, copy as, HAR export."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from playwright.async_api import Browser as Chromium

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import TEST_SETTINGS, Client, load_object
from tests.plugins import auth_plugin, header_plugin, plugin_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_body_downloads_raw_and_decoded_with_real_names(
    chromium: Chromium, inspector: Inspector, client: Client, tmp_path: Path
) -> None:
    document = {"orders": [{"sku": "ABC-123", "quantity": 2}]}
    gzipped = load_object("response-gzip.json")
    gzipped.response.raw_body = gzip.compress(json.dumps(document).encode())
    await client.dispatch(gzipped)
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
        page = browser.page
        await page.wait_for_selector(".body-viewer")  # a Response hook opens on its response
        async with page.expect_download() as decoded_info:
            await page.click(".body-viewer button[data-download='decoded']")
        decoded = await decoded_info.value
        assert decoded.suggested_filename == "capture-1-response-body.json"
        await decoded.save_as(tmp_path / "decoded")
        assert json.loads((tmp_path / "decoded").read_bytes()) == document
        async with page.expect_download() as raw_info:
            await page.click(".body-viewer button[data-download='raw']")
        raw = await raw_info.value
        assert raw.suggested_filename == "capture-1-response-body.json.gz"
        await raw.save_as(tmp_path / "raw")
        assert (tmp_path / "raw").read_bytes() == gzipped.response.raw_body
        assert browser.errors == []


async def test_replay_shows_the_differences_it_found(chromium: Chromium) -> None:
    async with plugin_server(header_plugin) as plugin, plugin_server(auth_plugin) as auth:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                await Client(channel).dispatch(load_object("custom-key-check.json"))
            async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
                page = browser.page
                await page.click("[role='tab'][data-tab='reply']")
                await page.fill(".replay input[name='to']", auth.target)
                await page.click(".replay button.primary")
                await page.wait_for_selector(".replay-result a[href='#capture=2']")
                summary = await page.inner_text(".replay-result p")
                differences = page.locator(".replay-result table.replay-differences tbody tr")
                count = await differences.count()
                assert count > 0 and f"{count} difference(s) from the original reply" in summary
                table = await page.inner_text(".replay-result table.replay-differences")
                assert "X-Plugin" in table  # the original reply set it; the replayed one does not
                await browser.wait_rows(2)
                assert "↻" in await page.inner_text("#list .row[data-id='2'] .c-mark")  # marked as a replay
        finally:
            await inspector.stop()


async def test_copy_as_by_mouse_and_keyboard(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
        page = browser.page
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.wait_for_selector(".detail-head h2:has-text('MyPreHook')")
        await page.click(".detail-head button.copy-as")
        await page.click("[role='menuitem'][data-format='curl']")
        shown = page.locator(".copy-text[data-format='curl']")
        await shown.wait_for()
        expected = (await http.get("/api/captures/1/copy", params={"as": "curl"})).text
        assert (await shown.inner_text()).strip() == expected.strip()
        assert expected.startswith("curl") and "/orders-api/v1/orders" in expected
        assert await page.evaluate("navigator.clipboard.readText()") == expected
        # By keyboard: Enter opens the menu on its first item, the arrows move, Enter copies.
        await page.focus(".detail-head button.copy-as")
        await page.keyboard.press("Enter")
        await page.wait_for_function("document.activeElement.dataset.format === 'curl'")
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate("document.activeElement.dataset.format") == "grpcurl"
        await page.keyboard.press("Enter")
        await page.locator(".copy-text[data-format='grpcurl']").wait_for()
        grpcurl = (await http.get("/api/captures/1/copy", params={"as": "grpcurl"})).text
        await page.wait_for_function("t => navigator.clipboard.readText().then(c => c === t)", arg=grpcurl)
        assert await page.locator("[role='menu'][aria-label='Copy as']").is_hidden()
        assert browser.errors == []


async def test_har_export_of_the_rows_listed(
    chromium: Chromium, inspector: Inspector, client: Client, tmp_path: Path
) -> None:
    for name in ("pre.json", "post-key-auth.json", "response-gzip.json"):
        await client.dispatch(load_object(name))
    async with dashboard_in(chromium, f"{inspector.http_url}/?hook_type=Response") as browser:
        page = browser.page
        await browser.wait_for_ids([3])
        await page.click("#export-button")
        href = await page.get_attribute("#export-har", "href") or ""
        assert "format=har" in href and "hook_type=Response" in href
        async with page.expect_download() as download_info:
            await page.click("#export-har")
        saved = tmp_path / "export.har"
        await (await download_info.value).save_as(saved)
        har = json.loads(saved.read_text())
        assert har["log"]["version"] == "1.2"
        assert len(har["log"]["entries"]) >= 1
