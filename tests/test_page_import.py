"""Importing from the page and the API: a file imported twice is noticed, and its duplicates can be skipped."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser as Chromium

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_event, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def three(client: Client) -> None:
    for name in ("pre.json", "post-json-body.json"):
        await client.dispatch(load_object(name))
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())


async def test_the_api_says_what_is_here_already_and_skips_it_when_asked(
    client: Client, http: httpx.AsyncClient
) -> None:
    await three(client)
    document = (await http.get("/api/export")).content
    # Exported from this very buffer: the live captures are the same ones.
    checked = await http.post("/api/import", params={"duplicates": "check"}, content=document)
    assert checked.status_code == 409, checked.text
    assert checked.json()["duplicates"] == 3 and checked.json()["total"] == 3 and "detail" in checked.json()
    assert (await http.get("/api/stats")).json()["count"] == 3  # nothing imported
    skipped = await http.post("/api/import", params={"duplicates": "skip"}, content=document)
    assert skipped.status_code == 201 and skipped.json()["imported"] == 0 and skipped.json()["skipped"] == 3
    kept = await http.post("/api/import", content=document)  # the default keeps them, and says so
    assert kept.status_code == 201 and kept.json()["imported"] == 3 and kept.json()["duplicates"] == 3
    # A file with one new capture among known ones: only the new one is imported.
    doc = json.loads(document)
    doc["captures"][0]["received_at"] = "2020-01-01T00:00:00.000001Z"
    mixed = await http.post("/api/import", params={"duplicates": "skip"}, content=json.dumps(doc))
    assert mixed.json()["imported"] == 1 and mixed.json()["skipped"] == 2
    # Once more: that one is known now too; a clean buffer takes everything without a word.
    again = await http.post("/api/import", params={"duplicates": "check"}, content=json.dumps(doc))
    assert again.status_code == 409 and again.json()["duplicates"] == 3
    await http.delete("/api/captures")
    fresh = await http.post("/api/import", params={"duplicates": "check"}, content=document)
    assert fresh.status_code == 201 and fresh.json()["duplicates"] == 0


async def test_importing_the_same_file_twice_in_the_page_offers_to_skip(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await three(client)
    saved = tmp_path / "export.json"
    saved.write_bytes((await http.get("/api/export")).content)
    await http.delete("/api/captures")
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await page.set_input_files("#import-file", saved)
        assert await browser.wait_rows(3) == [4, 5, 6]
        notice = page.locator("#notice")
        await page.wait_for_function("() => document.getElementById('notice').textContent.includes('Imported 3')")
        await page.set_input_files("#import-file", saved)  # the same file again
        await page.wait_for_function("() => document.getElementById('notice').textContent.includes('here already')")
        assert "3 of its 3 capture(s) are here already" in await notice.inner_text()
        await notice.get_by_role("button", name="Skip those 3").click()
        await page.wait_for_function("() => document.getElementById('notice').textContent.includes('skipped 3')")
        assert "Imported 0 capture(s)" in await notice.inner_text()
        assert await browser.rows() == [4, 5, 6]
        assert (await http.get("/api/stats")).json()["count"] == 3
        # Or import them all again, knowingly.
        await page.set_input_files("#import-file", saved)
        await notice.get_by_role("button", name="Import all again").click()
        assert await browser.wait_rows(6) == [4, 5, 6, 7, 8, 9]
        assert browser.errors == []
