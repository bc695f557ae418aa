"""Pin, mark and comment: a pinned capture outlives the buffer's eviction, bounded, exported with its note."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser as Chromium

from app.capture.record import Capture
from app.config import Settings
from app.server import Inspector
from app.store.pins import PinBoard, PinError
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_object, with_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def settings() -> Settings:
    return with_settings(buffer_items=3)()


async def test_a_pinned_capture_outlives_eviction_and_exports_with_its_note(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("custom-key-check.json"))
    pinned = await http.put("/api/captures/1/pin", json={"note": "the 403 from the incident", "mark": "red"})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["limits"]["items"] == 1
    for _ in range(4):
        await client.dispatch(load_object("pre.json"))  # the buffer keeps 3: capture 1 is evicted
    ids = [c["id"] for c in (await http.get("/api/captures")).json()["items"]]
    assert 1 not in ids
    detail = await http.get("/api/captures/1")
    assert detail.status_code == 200 and detail.json()["hook_type"] == "CustomKeyCheck"
    assert (await http.get("/api/captures/1/copy", params={"as": "curl"})).status_code == 200
    [pin] = (await http.get("/api/pins")).json()["items"]
    assert pin["id"] == 1 and pin["note"] == "the 403 from the incident" and pin["in_buffer"] is False
    exported = (await http.get("/api/pins/export")).json()
    [record] = exported["captures"]
    assert (record["id"], record["note"], record["mark"]) == (1, "the 403 from the incident", "red")
    assert (await http.post("/api/import", json=exported)).status_code == 201  # it imports back
    assert (await http.put("/api/captures/1/pin", json={"mark": "chartreuse"})).status_code == 400
    assert (await http.delete("/api/captures/1/pin")).status_code == 200
    assert (await http.get("/api/captures/1")).status_code == 404  # gone with the pin
    assert (await http.delete("/api/captures/1/pin")).status_code == 404


async def test_the_pin_board_is_bounded_by_items_and_bytes() -> None:
    board = PinBoard(max_items=2, max_bytes=3000)
    small = [Capture(kind="dispatch", request=b"x" * 100, reply=None, id=i) for i in (1, 2, 3)]
    board.pin(small[0])
    board.pin(small[1], note="again")
    with pytest.raises(PinError, match="at most 2"):
        board.pin(small[2])
    board.pin(small[1], note="a new note")  # updating a pin is not another one
    board.unpin(1)
    with pytest.raises(PinError, match="bytes"):
        board.pin(Capture(kind="dispatch", request=b"x" * 5000, reply=None, id=9))
    with pytest.raises(PinError, match="at most"):
        board.pin(small[2], note="n" * 2001)
    assert board.limits()["items"] == 1


async def test_pin_and_note_in_the_page(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
        page = browser.page
        await page.click(".detail-head button.pin")
        await page.locator(".detail-head input.pin-note").fill("look at the headers")
        await page.locator(".detail-head input.pin-note").press("Enter")
        await page.select_option(".detail-head select.pin-mark", "blue")
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"1\"].mark-blue')")
        assert "📌" in await page.inner_text("#list .row[data-id='1'] .c-mark")
        await page.reload()
        await page.wait_for_selector("#connection[data-state='live']")
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"1\"].pinned')")
        assert await page.input_value(".detail-head input.pin-note") == "look at the headers"
        assert browser.errors == []
