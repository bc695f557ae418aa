"""Comparing two captures: the API's differences in Tyk's terms, and the page's Compare buttons."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser as Chromium

from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_object
from tests.plugins import auth_plugin, plugin_server
from tests.test_proxy import inspector_with

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def two_posts(client: Client) -> None:
    first = load_object("post-json-body.json")
    first.request.raw_body = b'{"sku": "ABC-123", "qty": 2}'
    await client.dispatch(first)
    second = load_object("post-json-body.json")
    second.request.headers["X-Tenant"] = "acme"
    second.request.raw_body = b'{"sku": "ABC-123", "qty": 3}'
    await client.dispatch(second)


async def test_the_api_compares_what_was_sent_by_field(client: Client, http: httpx.AsyncClient) -> None:
    await two_posts(client)
    doc = (await http.get("/api/compare", params={"a": 1, "b": 2})).json()
    differences = {d["path"]: (d["a"], d["b"]) for d in doc["sent"]}
    assert differences["request.headers.X-Tenant"] == (None, "acme")
    assert differences["request.rawBody.qty"] == (2, 3)  # the body by JSON field, not base64
    assert "request.rawBody.sku" not in differences
    assert [o["status"] for o in doc["outcome"]] == ["continue", "continue"]
    assert doc["changes"] == [] and doc["changes_b"] == []  # both echoed
    await client.event("hello")
    mixed = await http.get("/api/compare", params={"a": 1, "b": 3})
    assert mixed.status_code == 400 and "of a kind" in mixed.json()["detail"]
    assert (await http.get("/api/compare", params={"a": 1, "b": 99})).status_code == 404


async def test_two_auth_replies_compare_in_the_page(chromium: Chromium) -> None:
    async with plugin_server(auth_plugin) as auth, inspector_with(upstream=auth.target) as (inspector, proxied, _):
        refused = load_object("custom-key-check.json")
        await proxied.dispatch(refused)  # no "Bearer good": 401
        allowed = load_object("custom-key-check.json")
        allowed.request.headers["Authorization"] = "Bearer good"
        await proxied.dispatch(allowed)
        async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
            page = browser.page
            await page.click(".detail-head button.compare-base")
            await browser.select(2)
            await page.click(".detail-head button.compare-with")
            view = page.locator(".comparison")
            await view.locator("table.compare-table").first.wait_for()
            text = await view.inner_text()
            assert "#1 ↔ #2" in text
            assert "request.headers.Authorization" in text and "Bearer good" in text
            assert "401" in text and "continue" in text  # each outcome
            assert "Only #2's reply" in text and "session" in text.lower()
            await view.get_by_role("button", name="Close comparison").click()
            await page.locator("[role='tab'][data-tab='request']").wait_for()
            assert browser.errors == []
