"""The gateway's catalog in the page: API names in the list, the API picker, the hooks view, the stale banner."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.async_api import Browser as Chromium

from app.config import Settings
from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until
from tests.gateway_api import ORDERS_ID, FakeGateway, fake_gateway
from tests.test_page_access import axe_violations

pytestmark = pytest.mark.asyncio(loop_scope="module")
SECRET = "page-test-secret-456"


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    with fake_gateway(FakeGateway(version="5.8", secret=SECRET)) as served:
        yield served


@pytest.fixture
def settings(gateway: FakeGateway) -> Settings:
    gateway.secret = SECRET
    return replace(TEST_SETTINGS, gateway_urls=(gateway.url,), gateway_url=gateway.url, gateway_secret=SECRET)


async def ready(inspector: Inspector) -> None:
    web = inspector.web
    assert web is not None
    await wait_until(lambda: web.catalog.lookup(ORDERS_ID) is not None, what="the catalog read")


async def test_names_in_the_list_and_the_picker_narrows_to_one_api(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await ready(inspector)
    await client.dispatch(load_object("pre.json"))  # Orders API
    await client.dispatch(load_object("response-petstore-301.json"))  # an API the gateway does not list
    other_id = load_object("response-petstore-301.json").spec["APIID"]
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_for_ids([1, 2])
        cell = page.locator("#list .row[data-id='1'] .c-api")
        await page.wait_for_function(
            "() => document.querySelector(\"#list .row[data-id='1'] .c-api\").textContent === 'Orders API'"
        )
        assert ORDERS_ID in (await cell.get_attribute("title") or "")
        assert await page.locator("#list .row[data-id='2'] .c-api").inner_text() == other_id
        assert await page.locator("#tyk-version").inner_text() == "Tyk 5.8.0"
        assert await page.locator("#tyk-version-source").inner_text() == "(from the gateway)"
        picker = page.locator("#api-picker")
        assert await picker.is_visible()
        await picker.select_option(ORDERS_ID)
        await browser.wait_for_ids([1])
        assert "api_id=" + ORDERS_ID in page.url
        await picker.select_option("")
        await browser.wait_for_ids([1, 2])
        # The filter box's own example: a name finds its API.
        await page.fill("#search", "api:orders")
        await browser.wait_for_ids([1])
        await browser.select(1)
        assert "Orders API /orders/" in await page.locator(".detail-head p").first.inner_text()
        assert browser.errors == []
    # A shared link with the picker's choice opens narrowed to that API.
    async with dashboard_in(chromium, f"{inspector.http_url}/?api_id={ORDERS_ID}") as browser:
        await browser.wait_for_ids([1])
        assert await browser.page.locator("#api-picker").input_value() == ORDERS_ID


async def test_the_hooks_view_says_which_hook_fires_and_why_not(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await ready(inspector)
    await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await page.locator("#apis-button").click()
        dialog = page.locator("#apis-dialog")
        orders = dialog.locator(f"[data-api-id='{ORDERS_ID}']")
        await orders.locator("tr[data-hook='MyPreHook'][data-fires='true']").wait_for()
        assert "✓ fires" in await orders.locator("tr[data-hook='MyPreHook'] .hooks-why").inner_text()
        assert await orders.locator("tr[data-hook='MyPreHook'] td").nth(2).inner_text() == "1"
        retired = orders.locator("tr[data-hook='RetiredHook'] [data-code='hook-disabled']")
        assert "disabled" in await retired.inner_text()
        payments = dialog.locator(".hooks-api", has_text="Payments")
        assert "500" in await payments.locator("[data-code='driver-empty']").inner_text()
        assert await payments.locator("[data-code='auth-on-keyless']").count() == 1
        assert await axe_violations(page) == [], "hooks view"
        await page.keyboard.press("Escape")
        await dialog.wait_for(state="hidden")
        assert await axe_violations(page) == [], "list with names and the picker"
        assert browser.errors == []


async def test_a_refused_secret_shows_a_stale_banner_and_names_stay(
    chromium: Chromium, inspector: Inspector, client: Client, gateway: FakeGateway
) -> None:
    await ready(inspector)
    await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        banner = page.locator("#gateway-banner")
        assert await banner.is_hidden()
        gateway.secret = "rotated"
        await page.locator("#apis-button").click()
        await page.locator("#apis-refresh").click()
        problem = banner.locator(".gateway-problem[data-stale='true']")
        await problem.wait_for()
        text = await problem.inner_text()
        assert "stale" in text and "refused the secret" in text and SECRET not in text
        await page.keyboard.press("Escape")
        assert await axe_violations(page) == [], "stale banner"
        assert await page.locator("#list .row[data-id='1'] .c-api").inner_text() == "Orders API"
        assert browser.errors == []
