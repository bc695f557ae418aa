"""Finding captures in the page: status and duration columns, sorting, filters in the URL, highlights."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page, Request

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def listed(page: Page) -> list[int]:
    """Capture ids in the order the list shows them, top to bottom."""
    ids: list[int] = await page.eval_on_selector_all(
        "#list .row", "rows => rows.sort((a, b) => a.offsetTop - b.offsetTop).map(r => +r.dataset.id)"
    )
    return ids


async def fill_sample(client: Client) -> None:
    """Five captures: a Pre, an auth refusal (403), a 301 Response, a big Post, a 200 Response."""
    await client.dispatch(load_object("pre.json"))
    await client.dispatch(load_object("custom-key-check.json"))  # echoed without a session: 403
    await client.dispatch(load_object("response-petstore-301.json"))
    big = load_object("post-json-body.json")
    big.request.raw_body = b'{"sku": "ABC-123", "pad": "' + b"x" * 5000 + b'"}'
    await client.dispatch(big)
    await client.dispatch(load_object("response-gzip.json"))


async def test_status_column_shows_what_the_client_got(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await fill_sample(client)
    summaries = {c["id"]: c for c in (await http.get("/api/captures")).json()["items"]}
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(5)
        status = page.locator("#list .row[data-id='2'] .c-status")
        assert summaries[2]["outcome_status"] == 403 and summaries[2]["status"] is None
        assert await status.inner_text() == "403"  # an auth refusal, not only Response hooks
        assert "s-4xx" in (await status.get_attribute("class") or "")
        assert await page.inner_text("#list .row[data-id='3'] .c-status") == "301"
        assert "s-3xx" in (await page.get_attribute("#list .row[data-id='3'] .c-status", "class") or "")
        assert await page.inner_text("#list .row[data-id='1'] .c-status") == ""  # the request just goes on
        duration = await page.inner_text("#list .row[data-id='4'] .c-dur")
        assert duration.endswith(" ms") and float(duration.split()[0]) == pytest.approx(
            summaries[4]["duration_ms"], abs=0.06
        )


async def test_sort_by_duration_size_status_and_time(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await fill_sample(client)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(5)
        assert await listed(page) == [1, 2, 3, 4, 5]
        summaries = await page.evaluate("window.tykInspector.state.all")
        await page.click("button[data-sort='size']")  # largest first
        assert await listed(page) == [c["id"] for c in sorted(summaries, key=lambda c: -c["size"])]
        assert (await listed(page))[0] == 4
        assert "sort=size-desc" in page.url
        await page.click("button[data-sort='size']")  # again: smallest first
        assert await listed(page) == [c["id"] for c in sorted(summaries, key=lambda c: c["size"])]
        await page.focus("button[data-sort='status']")
        await page.keyboard.press("Enter")  # by keyboard too
        statuses = [await page.inner_text(f"#list .row[data-id='{i}'] .c-status") for i in await listed(page)]
        assert statuses[:3] == ["403", "301", "200"]
        await page.click("button[data-sort='duration']")
        expected = [c["id"] for c in sorted(summaries, key=lambda c: -c["duration_ms"])]
        assert await listed(page) == expected
        await page.reload()  # the sort is in the URL
        await page.wait_for_selector("#connection[data-state='live']")
        await browser.wait_rows(5)
        assert await listed(page) == expected
        assert await page.get_attribute("button[data-sort='duration']", "aria-pressed") == "true"
        await page.click("button[data-sort='time']")
        assert await listed(page) == [1, 2, 3, 4, 5]


async def test_filters_live_in_the_url(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await fill_sample(client)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(5)
        await page.select_option("select[name='hook_type']", "Response")
        await page.fill("#search", "petstore")
        await browser.wait_for_ids([3])
        query = parse_qs(urlsplit(page.url).query)
        assert query == {"hook_type": ["Response"], "q": ["petstore"]}
        shared = page.url
    async with dashboard_in(chromium, shared) as browser:  # a shared link, in a fresh browser
        page = browser.page
        await browser.wait_for_ids([3])
        assert await page.input_value("#search") == "petstore"
        assert await page.input_value("select[name='hook_type']") == "Response"
        # "Filtered captures" exports exactly the rows listed.
        await page.click("#export-button")
        href = await page.get_attribute("#export-filtered", "href") or ""
        assert parse_qs(urlsplit(href).query) == {"hook_type": ["Response"], "q": ["petstore"]}
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            exported = (await http.get(href)).json()["captures"]
        assert [c["id"] for c in exported] == await browser.rows()
        await client.dispatch(load_object("response-petstore-301.json"))  # a live one that matches
        await client.dispatch(load_object("response-gzip.json"))  # one that does not
        await browser.wait_for_ids([3, 6])


async def test_typing_fast_asks_one_question_at_a_time_and_answers_the_last_text(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await fill_sample(client)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(5)
        in_flight, most, asked = 0, 0, []

        def sent(request: Request) -> None:
            nonlocal in_flight, most
            if "fields=id" in request.url:
                in_flight += 1
                most = max(most, in_flight)
                asked.append(parse_qs(urlsplit(request.url).query)["q"][0])

        def ended(request: Request) -> None:
            nonlocal in_flight
            if "fields=id" in request.url:
                in_flight -= 1

        page.on("request", sent)
        page.on("requestfinished", ended)
        page.on("requestfailed", ended)
        await page.locator("#search").press_sequentially("hook:Response")  # no pause between keys
        await browser.wait_for_ids([3, 5])
        await page.wait_for_function("() => window.tykInspector.state.appliedFilter.includes('hook:Response')")
        assert most == 1, "a keystroke asked while an answer was still on its way"
        assert asked[-1] == "hook:Response" and len(asked) < len("hook:Response")  # keystrokes were gathered


# With a filter on, the list shows what the filter matches: the captures it holds of that hook, no others.
SHOWS_ONLY = """hook => {
  const state = window.tykInspector.state;
  if (!state.matches || state.appliedFilter !== JSON.stringify({ q: `hook:${hook}` })) return false;
  const shown = state.all.filter((c) => state.matches.has(c.id));
  return shown.every((c) => c.hook_type === hook)
    && shown.length === state.all.filter((c) => c.hook_type === hook).length;
}"""


async def test_a_filter_changed_while_captures_stream_in_shows_only_what_it_matches(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    pre, post = load_object("pre.json"), load_object("post-json-body.json")
    streaming = True

    async def stream() -> None:
        while streaming:
            await client.dispatch(pre)
            await client.dispatch(post)

    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        feeder = asyncio.ensure_future(stream())
        try:
            # Each change races the live checks of the captures arriving meanwhile.
            for hook in ("Pre", "Post") * 10:
                await page.fill("#search", f"hook:{hook}")
                await page.wait_for_function(
                    "q => window.tykInspector.state.appliedFilter === JSON.stringify({ q })", arg=f"hook:{hook}"
                )
        finally:
            streaming = False
            await feeder
        await page.wait_for_function(
            "n => window.tykInspector.state.all.length && window.tykInspector.state.all.at(-1).id === n",
            arg=inspector.store.last_id,
        )
        await page.wait_for_function(SHOWS_ONLY, arg="Post", timeout=10_000)


async def test_an_empty_result_says_so(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await fill_sample(client)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(5)
        await page.fill("#search", "no capture has this text")
        await browser.wait_for_ids([])
        message = page.locator("#no-match")
        await message.wait_for(state="visible")
        assert "No capture matches “no capture has this text”" in await message.inner_text()
        assert await page.locator("#empty").is_hidden()  # not the "waiting for the gateway" page
        await message.locator("button").click()  # Reset filters
        await browser.wait_rows(5)
        assert await message.is_hidden()


async def test_matches_are_highlighted_in_the_detail(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await fill_sample(client)
    async with dashboard_in(chromium, f"{inspector.http_url}/?q=ABC-123") as browser:
        page = browser.page
        await browser.wait_for_ids([4, 5])  # the big Post's body, and the gzip body of the Response, inflated
        await browser.select(4)
        marks = await page.eval_on_selector_all("#detail mark", "ms => ms.map(m => m.textContent)")
        assert marks and set(marks) == {"ABC-123"}
        await page.click("[role='tab'][data-tab='raw']")
        assert await page.locator("#detail mark").count() >= 1


async def test_replays_and_imports_are_marked_in_the_list(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    exported = (await http.get("/api/export")).json()
    assert (await http.post("/api/import", json=exported)).status_code == 201
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(2)
        imported = page.locator("#list .row[data-id='2']")
        assert "⇣" in await imported.locator(".c-mark").inner_text()
        assert "imported" in (await imported.locator(".c-mark").get_attribute("title") or "")
        assert await page.inner_text("#list .row[data-id='1'] .c-mark") == ""
