"""The Outcome tab in real Chromium: proxy mode opens it on replies that change something."""

from __future__ import annotations

from dataclasses import replace

import grpc

from app.server import Inspector
from app.tyk.version import LATEST
from protogen import coprocess_object_pb2 as pb
from tests.browser import open_dashboard
from tests.conftest import TEST_SETTINGS, Client, load_object
from tests.plugins import plugin_server


async def routing_plugin(obj: pb.Object) -> pb.Object:
    """Pre: one applied and one ignored change; CustomKeyCheck: a 401; anything else: passed through."""
    if obj.hook_name == "MyPreHook":
        obj.request.set_headers["X-Plugin"] = "applied"
        obj.request.headers["X-Ignored"] = "never sent"
    elif obj.hook_name == "MyAuthCheck":
        obj.request.return_overrides.response_code = 401
        obj.request.return_overrides.response_error = "bad key"
    return obj


async def test_the_page_shows_the_tyk_version_it_follows() -> None:
    inspector = Inspector(replace(TEST_SETTINGS, tyk_version="5.3.2"))
    await inspector.start()
    try:
        async with open_dashboard(inspector.http_url) as browser:
            assert await browser.page.locator("#tyk-version").inner_text() == "Tyk 5.3.2"
    finally:
        await inspector.stop()


async def test_the_outcome_tab_opens_first_on_replies_that_change_something() -> None:
    async with plugin_server(routing_plugin) as plugin:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
                open_dashboard(inspector.http_url) as browser,
            ):
                page = browser.page
                client = Client(channel)
                await client.dispatch(load_object("pre.json"))
                await client.dispatch(load_object("custom-key-check.json"))
                await client.dispatch(load_object("post-key-auth.json"))
                await browser.wait_rows(3)

                await browser.select(1)
                await page.wait_for_selector("button[data-tab='outcome'][aria-selected='true']")
                outcome = await page.locator(".outcome").text_content() or ""
                assert "The upstream receives" in outcome and "X-Plugin" in outcome and "applied" in outcome
                assert "never sent" not in await page.locator(".outcome-headers").inner_text()
                assert "X-Ignored" in await page.locator(".outcome-ignored").inner_text()  # struck through
                assert await page.locator(f"[data-tyk-version='{LATEST}']").count() == 1
                assert await page.locator("#tyk-version").inner_text() == f"Tyk {LATEST}"

                await browser.select(2)
                selected_outcome = "button[data-tab='outcome'][aria-selected='true']"
                await page.wait_for_selector(f"{selected_outcome}:has-text('Outcome (401)')")
                outcome = await page.locator(".outcome").text_content() or ""
                assert "The client receives" in outcome and "401 Unauthorized" in outcome
                assert "AuthFailure" in outcome and '"error": "bad key"' in outcome

                # A pass-through changes nothing: the page stays on the tab the user was on.
                await page.click("button[data-tab='request']")
                await browser.select(3)
                await page.wait_for_selector("button[data-tab='request'][aria-selected='true']")
                await page.click("button[data-tab='outcome']")
                assert "The request goes on" in (await page.locator(".outcome").text_content() or "")

                await browser.select(1)
                await page.click("button[data-tab='reply']")
                ignored = page.locator(".changes-table tr.ignored")
                assert await ignored.count() == 1 and "X-Ignored" in await ignored.inner_text()
                assert browser.errors == []
        finally:
            await inspector.stop()
