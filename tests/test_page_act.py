"""Acting on a capture from the page: body downloads, replay differences, copy as, HAR export."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from playwright.async_api import Browser as Chromium

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
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
