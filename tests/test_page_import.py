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


CHROME_HAR = {
    "log": {
        "version": "1.2",
        "creator": {"name": "WebInspector", "version": "537.36"},
        "entries": [
            {
                "startedDateTime": "2026-03-01T09:15:02.123Z",
                "time": 423.7,
                "request": {
                    "method": "GET",
                    "url": "https://api.example.com/orders-api/v1/orders?status=open&limit=20",
                    "httpVersion": "h2",
                    "headers": [
                        {"name": ":authority", "value": "api.example.com"},
                        {"name": "accept", "value": "application/json"},
                        {"name": "authorization", "value": "Bearer expired-token"},
                    ],
                    "queryString": [{"name": "status", "value": "open"}, {"name": "limit", "value": "20"}],
                    "cookies": [],
                    "headersSize": -1,
                    "bodySize": 0,
                },
                "response": {
                    "status": 401,
                    "statusText": "",
                    "httpVersion": "h2",
                    "headers": [
                        {"name": "content-type", "value": "application/json"},
                        {"name": "www-authenticate", "value": 'Bearer error="invalid_token"'},
                    ],
                    "content": {"size": 26, "mimeType": "application/json", "text": '{"error": "token expired"}'},
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": -1,
                },
                "cache": {},
                "timings": {"send": 0.1, "wait": 420.0, "receive": 3.6},
            },
            {
                "startedDateTime": "2026-03-01T09:15:03.000Z",
                "time": 12,
                "request": {
                    "method": "POST",
                    "url": "https://api.example.com/orders-api/v1/orders",
                    "headers": [{"name": "content-type", "value": "application/json"}],
                    "postData": {"mimeType": "application/json", "text": '{"sku": "ABC-123"}'},
                },
                "response": {
                    "status": 201,
                    "headers": [{"name": "content-type", "value": "image/png"}],
                    "content": {"size": 4, "mimeType": "image/png", "text": "iVBORw==", "encoding": "base64"},
                },
            },
        ],
    }
}


async def test_a_har_file_from_the_browser_becomes_captures_beside_plugin_traffic(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    response = await http.post("/api/import", content=json.dumps(CHROME_HAR, indent=2))
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 2
    items = {c["id"]: c for c in (await http.get("/api/captures")).json()["items"]}
    refused, created = items[2], items[3]
    assert refused["imported"] and refused["hook_name"] == "HAR" and refused["hook_type"] == "Response"
    assert (refused["method"], refused["path"]) == ("GET", "/orders-api/v1/orders?status=open&limit=20")
    assert refused["status"] == 401
    assert refused["duration_ms"] == pytest.approx(423.7)
    detail = (await http.get("/api/captures/2")).json()
    request = detail["request"]["request"]
    assert request["headers"] == {"accept": "application/json", "authorization": "Bearer expired-token",
                                  "Host": "api.example.com"}  # fmt: skip
    assert request["params"] == {"status": "open", "limit": "20"}
    assert detail["bodies"]["response.rawBody"]["json"] == {"error": "token expired"}
    assert (await http.get("/api/captures/3/body/response")).content == b"\x89PNG"
    assert (await http.get("/api/captures/3/body/request")).content == b'{"sku": "ABC-123"}'
    assert created["status"] == 201
    found = await http.get("/api/captures", params={"q": "status:401 body:expired"})
    assert [c["id"] for c in found.json()["items"]] == [2]
    # The same file again is noticed like any import.
    again = await http.post("/api/import", params={"duplicates": "check"}, content=json.dumps(CHROME_HAR))
    assert again.status_code == 409 and again.json()["duplicates"] == 2


async def test_our_own_har_export_imports_and_a_bad_entry_says_which(client: Client, http: httpx.AsyncClient) -> None:
    for name in ("pre.json", "post-key-auth.json", "response-gzip.json"):
        await client.dispatch(load_object(name))
    har = (await http.get("/api/export", params={"format": "har"})).content
    imported = await http.post("/api/import", content=har)
    assert imported.status_code == 201 and imported.json()["imported"] == len(json.loads(har)["log"]["entries"])
    broken = json.loads(json.dumps(CHROME_HAR))
    broken["log"]["entries"][1]["response"]["status"] = "two hundred"
    bad = await http.post("/api/import", content=json.dumps(broken))
    assert bad.status_code == 400 and "HAR entry #1" in bad.json()["detail"]
    assert (await http.post("/api/import", content=b'{"log": {"pages": []}}')).status_code == 400
    assert (await http.post("/api/import", content=b'{"log": ' + b"[" * 100_000)).status_code == 400


async def test_a_har_file_imports_from_the_page(chromium: Chromium, inspector: Inspector, tmp_path: Path) -> None:
    saved = tmp_path / "incident.har"
    saved.write_text(json.dumps(CHROME_HAR))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await page.set_input_files("#import-file", saved)
        assert await browser.wait_rows(2) == [1, 2]
        assert "⇣" in await page.inner_text("#list .row[data-id='1'] .c-mark")
        assert await page.inner_text("#list .row[data-id='1'] .c-status") == "401"
        await page.wait_for_function("() => document.getElementById('notice').textContent.includes('Imported 2')")
        assert browser.errors == []
