"""One API request across its hooks in the page: the journey timeline and the list grouped by request."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import Page

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import Client, load_object

pytestmark = pytest.mark.asyncio(loop_scope="module")

HOOKS = ["pre.json", "custom-key-check.json", "post-key-auth.json", "post-json-body.json", "response-gzip.json"]


async def two_requests(client: Client) -> tuple[list[int], list[int]]:
    """Two API requests whose hook calls interleave, told apart by their traceparent; their capture ids."""
    for name in HOOKS:
        for trace in ("1", "2"):
            obj = load_object(name)
            if name == "custom-key-check.json":  # a good key: the request goes on past auth
                obj.session.rate, obj.session.per = 100, 1
                obj.session.metadata["token"] = obj.metadata["token"] = f"user-{trace}"
            await client.dispatch(obj, metadata=(("traceparent", f"00-{trace * 32}-{trace * 16}-01"),))
    return [1, 3, 5, 7, 9], [2, 4, 6, 8, 10]


async def timeline_ids(page: Page) -> list[int]:
    ids: list[int] = await page.eval_on_selector_all(
        ".timeline .step[data-id]:not(.event)", "steps => steps.map(s => +s.dataset.id)"
    )
    return ids


async def test_journey_timeline(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    first, _ = await two_requests(client)
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture={first[-1]}") as browser:
        page = browser.page
        await page.wait_for_selector("[role='tab'][data-tab='response'][aria-selected='true']")
        await page.click("[role='tab'][data-tab='journey']")
        await page.wait_for_selector(".timeline .step")
        assert await timeline_ids(page) == first  # Pre → auth → PostKeyAuth → Post → Response, not the other's
        hooks = await page.eval_on_selector_all(".timeline .step .step-hook", "s => s.map(x => x.textContent)")
        assert hooks == ["Pre", "auth", "PostKeyAuth", "Post", "Response"]
        # The upstream's time sits between Post and Response.
        assert await page.locator(".timeline .step.upstream").count() == 1
        assert "traceparent" in await page.inner_text(".journey")
        current = page.locator(".timeline .step[aria-current='step']")
        assert await current.get_attribute("data-id") == str(first[-1])
        for step in await page.locator(".timeline .step:not(.upstream) .step-dur").all():
            assert (await step.inner_text()).endswith("ms")
        # A step is a link to its capture; the tab stays on the journey.
        await page.click(f".timeline .step[data-id='{first[1]}'] .step-link")
        await page.wait_for_selector(".detail-head h2:has-text('MyAuthCheck')")
        assert await page.get_attribute("[role='tab'][aria-selected='true']", "data-tab") == "journey"
        await page.wait_for_selector(".timeline .step")
        assert await timeline_ids(page) == first
        assert browser.errors == []


async def test_list_grouped_by_request(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    first, second = await two_requests(client)
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(10)
        await page.click("#group")
        await page.wait_for_function("document.querySelectorAll('#list .row.journey').length === 2")
        assert "group=request" in page.url
        keys = await page.eval_on_selector_all("#list .row", "rows => rows.map(r => r.dataset.key)")
        assert sorted(keys) == [f"j{first[0]}", f"j{second[0]}"]
        row = page.locator(f"#list .row[data-key='j{first[0]}']")
        assert "5 hooks" in await row.inner_text()
        assert await row.get_attribute("aria-expanded") == "false"
        await row.click()  # opens it, and shows the request's journey
        children = f"document.querySelectorAll(\"#list .row.child[data-key^='{first[0]}-']\").length === 5"
        await page.wait_for_function(children)
        assert await row.get_attribute("aria-expanded") == "true"
        await page.wait_for_selector(".timeline .step")
        assert await timeline_ids(page) == first
        # By keyboard: ← closes the selected request, → opens it again, j moves into its hooks.
        await page.focus("#list")
        await page.keyboard.press("ArrowLeft")
        await page.wait_for_function("document.querySelectorAll('#list .row.child').length === 0")
        await page.keyboard.press("ArrowRight")
        await page.wait_for_function("document.querySelectorAll('#list .row.child').length === 5")
        await page.keyboard.press("j")
        await page.wait_for_selector(f"#list .row[data-key='{first[0]}-{first[0]}'][aria-selected='true']")
        await page.wait_for_selector(".detail-head h2:has-text('MyPreHook')")
        # New hook calls join their request's row as they arrive.
        await client.dispatch(load_object("pre.json"), metadata=(("traceparent", f"00-{'3' * 32}-{'3' * 16}-01"),))
        await page.wait_for_function("document.querySelectorAll('#list .row.journey').length === 3")
        await page.reload()  # the grouping is in the URL
        await page.wait_for_function("document.querySelectorAll('#list .row.journey').length === 3")
        assert await page.get_attribute("#group", "aria-pressed") == "true"
        assert browser.errors == []
