"""Intercept in the page (Debian's Chromium): hold a call, edit it with the outcome following, let it go."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from google.protobuf import json_format
from playwright.async_api import Browser as Chromium

from app.config import Settings
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def settings() -> Settings:
    return replace(TEST_SETTINGS, intercept="hook:Pre", intercept_timeout_seconds=60)


async def test_hold_a_pre_call_add_a_header_see_the_outcome_and_continue(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        assert await page.input_value("#intercept-q") == "hook:Pre"
        await page.click("#search")  # the user is typing a filter when the call arrives
        sent = load_object("pre.json")
        call = asyncio.ensure_future(client.dispatch_bytes(sent.SerializeToString()))
        await page.wait_for_selector("#held-count:not([hidden])")
        assert await page.text_content("#held-count") == "1 held"
        assert await page.evaluate("document.activeElement.id") == "search", "a held call never takes the focus"
        countdown = await page.text_content("#held-list .held-left")
        assert countdown and countdown.endswith(" s") and 50 <= int(countdown.split()[0]) <= 60

        await page.press("#search", "Escape")  # leave the field; then the keystroke jumps to the oldest held call
        await page.keyboard.press("h")
        await page.wait_for_function("document.getElementById('held-object').value.includes('MyPreHook')")
        await page.wait_for_selector("#held-preview[data-status='continue']")
        assert "X-Debug" not in (await page.text_content("#held-preview") or "")

        await page.fill("#held-header-name", "X-Debug")
        await page.fill("#held-header-value", "on")
        await page.click("#held-header-add")
        await page.wait_for_function("document.getElementById('held-preview').textContent.includes('X-Debug')")

        # raw_body as text: the preview says what the upstream now receives.
        await page.fill("#held-body", '{"sku": "ABC-123"}')
        await page.click("#held-body-set")
        await page.wait_for_function("document.getElementById('held-preview').textContent.includes('18 B')")

        # Typing a refusal into the raw JSON: the outcome says the client gets 403 before anything goes on.
        edited = await page.input_value("#held-object")
        obj = json.loads(edited)
        obj["request"]["returnOverrides"] = {"responseCode": 403, "responseError": "no"}
        await page.fill("#held-object", json.dumps(obj, indent=2))
        await page.wait_for_selector("#held-preview[data-status='403']")
        obj["request"]["returnOverrides"] = {"responseCode": -1}
        await page.fill("#held-object", json.dumps(obj, indent=2))
        await page.wait_for_selector("#held-preview[data-status='continue']")

        await page.click("#held-continue")
        reply = await asyncio.wait_for(call, 10)
        assert reply == json_format.ParseDict(obj, pb.Object()).SerializeToString()
        assert pb.Object.FromString(reply).request.set_headers["X-Debug"] == "on"
        assert pb.Object.FromString(reply).request.raw_body == b'{"sku": "ABC-123"}'
        await page.wait_for_selector("#held-count", state="hidden")
        assert "continued as edited" in (await page.text_content("#held-title") or "")
        assert browser.errors == []


async def test_respond_fail_and_continue_all_from_the_page(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await page.fill("#intercept-q", "hook:(")
        await page.click("#intercept-apply")
        await page.wait_for_selector("#intercept-error:not([hidden])")
        assert "invalid query" in (await page.text_content("#intercept-error") or "")
        await page.fill("#intercept-q", "hook:auth")
        await page.click("#intercept-apply")
        await page.wait_for_selector("#intercept[data-active='true']")
        denied = asyncio.ensure_future(client.dispatch(load_object("custom-key-check.json")))
        await page.wait_for_selector("#held-list .held-row")
        await page.click("#held-list .held-row")
        # The echo of a CustomKeyCheck gives no session: the preview says the client is refused.
        await page.wait_for_selector("#held-preview[data-status='403']")
        # Return overrides in Tyk's terms: the preview follows before anything goes on.
        await page.fill("#held-override-code", "429")
        await page.fill("#held-override-body", "slow down")
        await page.click("#held-override-set")
        await page.wait_for_selector("#held-preview[data-status='429']")
        await page.select_option("#held-preset", "deny-401")
        await page.click("#held-respond")
        assert (await asyncio.wait_for(denied, 10)).request.return_overrides.response_code == 401

        failed = asyncio.ensure_future(client.dispatch(load_object("custom-key-check.json")))
        await wait_until(lambda: inspector.interceptor.held, what="the second call held")
        await page.click("#held-list .held-row")
        await page.wait_for_selector("#held-preview[data-status]")
        await page.click("#held-fail")
        with pytest.raises(Exception, match="UNAVAILABLE"):
            await asyncio.wait_for(failed, 10)

        calls = [asyncio.ensure_future(client.dispatch(load_object("custom-key-check.json"))) for _ in range(2)]
        await page.wait_for_function("document.querySelectorAll('#held-list .held-row').length === 2")
        await page.click("#held-continue-all")
        await asyncio.wait_for(asyncio.gather(*calls), 10)
        await page.wait_for_selector("#held-count", state="hidden")
        assert browser.errors == []


async def test_closing_the_last_page_lets_held_calls_go(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        call = asyncio.ensure_future(client.dispatch(load_object("pre.json")))
        await browser.page.wait_for_selector("#held-count:not([hidden])")
    # The page's context is closed: its stream ends, and the call goes on long before the 60 s timeout.
    await asyncio.wait_for(call, 10)


async def test_two_pages_racing_the_first_action_wins_and_the_other_sees_it(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with (
        dashboard_in(chromium, inspector.http_url) as first,
        dashboard_in(chromium, inspector.http_url) as second,
    ):
        call = asyncio.ensure_future(client.dispatch(load_object("pre.json")))
        for browser in (first, second):
            await browser.page.wait_for_selector("#held-count:not([hidden])")
            await browser.page.keyboard.press("h")
            await browser.page.wait_for_selector("#held-preview[data-status='continue']")
        await first.page.select_option("#held-preset", "deny-403")
        await first.page.click("#held-respond")
        assert (await asyncio.wait_for(call, 10)).request.return_overrides.response_code == 403
        await second.page.wait_for_function(
            "document.getElementById('held-title').textContent.includes('went on: responded deny-403 by')"
        )
        assert await second.page.is_disabled("#held-continue"), "the call is gone: nothing left to act on"
        await second.page.wait_for_selector("#held-count", state="hidden")
        assert first.errors == [] and second.errors == []
