"""Every label says what the state it describes is: the Request tab beside a reply's override, a failed
plugin call, the outcome's quoting, counts in the right number."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import pytest
from playwright.async_api import Browser as Chromium

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import Client, load_object
from tests.plugins import auth_plugin, failing_plugin, plugin_server
from tests.test_proxy import inspector_with

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_refusing_reply_is_not_called_no_changes(chromium: Chromium) -> None:
    async with plugin_server(auth_plugin) as auth, inspector_with(upstream=auth.target) as (inspector, proxied, _):
        await proxied.dispatch(load_object("custom-key-check.json"))  # no "Bearer good": a 401 override
        async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
            page = browser.page
            outcome = await page.inner_text(".outcome-summary")
            assert '{"error": "bad key"}' in outcome, outcome  # JSON as the client gets it, not Python quotes
            await page.click("[role='tab'][data-tab='request']")
            request_tab = (await page.inner_text("#tab-panel")).lower()  # headings are upper case by CSS
            assert "plugin changes" not in request_tab
            assert "changes in the object as received" in request_tab
            assert "this hook's reply makes" in request_tab and "see the reply and outcome tabs" in request_tab
            label = await page.inner_text("[role='tab'][data-tab='reply']")
            count = int(label.split("(")[1].split()[0])
            assert label.startswith(f"Reply ({count} change{'s' if count != 1 else ''}")
            assert await page.inner_text("#counts") == "1 capture"
            assert browser.errors == []


async def test_a_failed_plugin_call_is_not_said_to_have_answered(chromium: Chromium) -> None:
    async with plugin_server(failing_plugin) as failing, inspector_with(upstream=failing.target) as (inspector, c, _):
        with pytest.raises(Exception):  # noqa: B017,PT011  (the gateway gets the plugin server's error)
            await c.dispatch(load_object("pre.json"))
        async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
            page = browser.page
            await page.click("[role='tab'][data-tab='reply']")
            reply = await page.inner_text("#tab-panel")
            assert "answered in" not in reply, reply
            assert f"The plugin server {failing.target} did not answer" in reply
            assert "No reply was returned to the gateway" in reply


async def test_one_of_each_is_counted_in_the_singular(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, f"{inspector.http_url}/?group=request") as browser:
        page = browser.page
        await page.wait_for_function("() => document.getElementById('counts').textContent === '1 request · 1 capture'")
        await client.dispatch(load_object("custom-key-check.json"))
        await page.wait_for_function(
            "() => /^\\d+ requests? · 2 captures$/.test(document.getElementById('counts').textContent)"
        )
