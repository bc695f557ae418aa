"""Captured bodies never run on the inspector's origin: every preview URL opened in Chromium, under the page's CSP."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import contextlib
import gzip
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Error as PlaywrightError

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector, tiny_png  # noqa: F401
from tests.conftest import Client, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Run as a document, this empties the buffer and marks the page; as an image it does nothing.
SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
    b"<script>fetch('/api/captures', {method: 'DELETE'}); document.title = 'pwned';"
    b"localStorage.setItem('pwned', '1')</script>"
    b'<rect width="4" height="4" fill="red"/></svg>'
)


async def test_opening_every_preview_url_never_runs_a_captured_body(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    bodies = [SVG_WITH_SCRIPT, gzip.compress(SVG_WITH_SCRIPT, mtime=0), tiny_png()]
    for body in bodies:
        obj = load_object("response-gzip.json")
        obj.response.raw_body = body
        await client.dispatch(obj)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(inspector.http_url))
    async with dashboard_in(chromium, inspector.http_url, bypass_csp=False) as browser:
        page = browser.page
        urls: set[str] = set()
        shown: list[str] = []
        for capture_id in range(1, len(bodies) + 1):
            await page.locator(f"#list .row[data-id='{capture_id}']").click()
            await page.locator(".detail-head p", has_text=f"#{capture_id} ").wait_for()
            await page.locator("button[data-tab='response']").click()
            await page.locator("#detail img.body-image").first.wait_for()
            found = await page.eval_on_selector_all(
                "#detail [src], #detail [href], #detail [data]",
                "nodes => nodes.map(n => n.src || n.href || n.data).filter(Boolean)",
            )
            urls.update(u for u in found if not u.startswith(f"{inspector.http_url}/#"))
            if capture_id <= 2:
                shown.append(await page.locator("#detail .body-viewer").first.inner_text())
        assert urls, "the previews have URLs to open"
        for url in urls:  # as a user would, with "open image in new tab"
            opened = await page.context.new_page()
            # Top-level navigation to a data: URL may be refused: all the better.
            with contextlib.suppress(PlaywrightError):
                await opened.goto(url)
            await opened.wait_for_load_state()
            # A blob: URL's document belongs to the origin that made it (blob:http://host:port/...).
            assert not opened.url.startswith((origin, f"blob:{origin}")), f"{url[:60]} opened on the inspector's origin"
            await opened.close()
        assert await page.evaluate("localStorage.getItem('pwned')") is None
        assert await page.title() != "pwned"
        assert browser.errors == []
        assert not [u for u in urls if u.startswith("blob:")], "no preview is a blob URL on this origin"
        for text in shown:  # the SVG as a picture (a PNG) and as its source, as text
            assert "<script>" in text and "SVG drawn as a picture" in text

    async with httpx.AsyncClient(base_url=inspector.http_url) as http:
        assert (await http.get("/api/stats")).json()["count"] == len(bodies), "nothing emptied the buffer"


async def test_download_is_an_attachment_not_a_document(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    obj = load_object("response-gzip.json")
    obj.response.raw_body = SVG_WITH_SCRIPT
    await client.dispatch(obj)
    async with dashboard_in(chromium, inspector.http_url, bypass_csp=False) as browser:
        page = browser.page
        await page.locator("#list .row[data-id='1']").click()
        await page.locator(".detail-head p", has_text="#1 ").wait_for()
        await page.locator("button[data-tab='response']").click()
        async with page.expect_download() as download_info:
            await page.locator("#detail .body-viewer button", has_text="Download").click()
        download = await download_info.value
        # Saved as a file (a download, never a document of this origin), under a name of its own.
        assert download.suggested_filename.startswith("capture-1-") and "/" not in download.suggested_filename
        path = await download.path()
        assert path is not None and path.read_bytes() == SVG_WITH_SCRIPT
        # The blob behind the download is released once the download has started.
        assert await page.locator("#detail a[href^='blob:']").count() == 0
