"""The list as a first-hour user meets it: where a sort starts, the status box, new captures while scrolled away."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def in_view(page: Page) -> list[int]:
    """Ids of the rows inside the list's visible area, top to bottom."""
    ids: list[int] = await page.evaluate(
        """() => {
          const list = document.getElementById("list");
          const box = list.getBoundingClientRect();
          return [...list.querySelectorAll(".row")]
            .filter((r) => {
              const b = r.getBoundingClientRect();
              return b.top >= box.top - 1 && b.bottom <= box.bottom + 1;
            })
            .sort((a, b) => a.offsetTop - b.offsetTop).map((r) => +r.dataset.id);
        }"""
    )
    return ids


async def many_sizes(client: Client, count: int) -> None:
    """`count` Pre captures, each larger than the one before."""
    for index in range(count):
        obj = load_object("pre.json")
        obj.request.raw_body = b"x" * (100 * index)
        await client.dispatch(obj)


async def test_the_first_click_on_a_sort_shows_the_first_row(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await many_sizes(client, 60)
    async with dashboard_in(chromium, inspector.http_url, height=600) as browser:
        page = browser.page
        await browser.wait_rows(1)
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"60\"]')")
        assert 60 in await in_view(page)  # the live order follows the newest, at the bottom
        await page.click("button[data-sort='size']")  # largest first: the newest here
        await page.wait_for_function("() => document.getElementById('list').scrollTop === 0")
        assert (await in_view(page))[:3] == [60, 59, 58]
        await page.click("button[data-sort='size']")  # smallest first
        await page.wait_for_function("() => document.getElementById('list').scrollTop === 0")
        assert (await in_view(page))[:3] == [1, 2, 3]
        await page.click("button[data-sort='time']")  # back to the live order: the newest, followed
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"60\"]')")
        assert 60 in await in_view(page)
        assert browser.errors == []


async def test_the_status_box_takes_what_the_filter_language_takes(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))  # goes on: no status
    await client.dispatch(load_object("custom-key-check.json"))  # echoed without a session: 403
    await client.dispatch(load_object("response-petstore-301.json"))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(3)
        status = page.locator("input[name='status']")
        for typed, ids in (("4xx", [2]), ("403", [2]), (">=300", [2, 3]), ("300-399", [3]), ("continue", [1])):
            await status.fill(typed)
            await browser.wait_for_ids(ids)
            assert await status.input_value() == typed
            assert await page.locator("#no-match").is_hidden()
        await status.fill(">=500")
        await browser.wait_for_ids([])
        message = page.locator("#no-match")
        await message.wait_for(state="visible")
        assert "No capture matches status >=500" in await message.inner_text()
        await status.fill("4xx or kind:event")  # one value, not a query
        await page.locator("#filter-error").wait_for(state="visible")
        assert "status" in await page.inner_text("#filter-error")
    response = await http.get("/api/captures", params={"status": "4xx"})
    assert [c["id"] for c in response.json()["items"]] == [2]
    refused = await http.get("/api/captures", params={"status": "4xx kind:event"})
    assert refused.status_code == 422 and "status" in refused.json()["detail"]


async def test_new_captures_while_scrolled_away_show_a_pill_to_the_newest(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await many_sizes(client, 60)
    async with dashboard_in(chromium, inspector.http_url, height=600) as browser:
        page = browser.page
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"60\"]')")
        pill = page.locator("#new-pill")
        await client.dispatch(load_object("pre.json"))  # followed: no pill
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"61\"]')")
        assert await pill.is_hidden()
        await page.evaluate("document.getElementById('list').scrollTop = 0")
        await page.wait_for_function("() => !window.tykInspector || document.getElementById('list').scrollTop === 0")
        for _ in range(3):
            await client.dispatch(load_object("pre.json"))
        await pill.wait_for(state="visible")
        await page.wait_for_function("() => document.getElementById('new-pill').textContent === '3 new ↓'")
        assert 64 not in await in_view(page)
        await pill.click()
        await pill.wait_for(state="hidden")
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"64\"]')")
        assert 64 in await in_view(page)
        await client.dispatch(load_object("pre.json"))  # followed again
        await page.wait_for_function("() => document.querySelector('#list .row[data-id=\"65\"]')")
        assert 65 in await in_view(page) and await pill.is_hidden()
        # Newest first, scrolled down: the pill points up.
        await page.click("button[data-sort='time']")
        await page.evaluate("document.getElementById('list').scrollTop = 400")
        await client.dispatch(load_object("pre.json"))
        await page.wait_for_function("() => document.getElementById('new-pill').textContent === '1 new ↑'")
        await pill.click()
        await page.wait_for_function("() => document.getElementById('list').scrollTop === 0")
        assert (await in_view(page))[0] == 66
        assert browser.errors == []
