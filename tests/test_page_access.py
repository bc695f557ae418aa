"""The dashboard by keyboard, for assistive technology (axe-core) and on a 390 px wide phone."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from typing import Any

import grpc
import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import FileChooser, Page

from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector  # noqa: F401
from tests.conftest import HOOK_PAYLOADS, TEST_SETTINGS, Client, load_event, load_object, wait_until
from tests.plugins import header_plugin, plugin_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

AXE = resources.files("axe_playwright_python") / "axe.min.js"


async def selected_id(page: Page) -> int:
    return int(await page.get_attribute("#list .row[aria-selected='true']", "data-id") or 0)


async def selected_tab(page: Page) -> str:
    return await page.get_attribute("[role='tab'][aria-selected='true']", "data-tab") or ""


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate(
        "() => axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],"
        " resultTypes: ['violations'] })"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_shortcuts_never_fire_while_typing(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for name in ("pre.json", "custom-key-check.json", "post-key-auth.json"):
        await client.dispatch(load_object(name))
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=2") as browser:
        page = browser.page
        await page.wait_for_selector("#list .row[data-id='2'][aria-selected='true']")
        await page.click("[role='tab'][data-tab='reply']")
        await page.check(".replay input[type='checkbox']")
        editor = page.locator(".replay-editor")
        await editor.click()
        await page.keyboard.press("Control+End")
        await page.keyboard.type('jk/{"edited": true}')
        for key in ("ArrowUp", "ArrowDown", "ArrowDown", "Escape"):
            await page.keyboard.press(key)
        assert await selected_id(page) == 2
        assert 'jk/{"edited": true}' in await editor.input_value()
        await page.fill(".replay input[name='to']", "")
        await page.focus(".replay input[name='to']")
        await page.keyboard.type("jjkk")
        assert await page.input_value(".replay input[name='to']") == "jjkk"
        assert await selected_id(page) == 2
        assert await page.evaluate("document.activeElement.name") == "to"  # "/" did not steal the focus either
        # Out of the fields, the same keys move again.
        await page.focus("#list")
        await page.keyboard.press("j")
        await page.wait_for_function("() => location.hash === '#capture=3'")
        assert browser.errors == []


async def test_escape_does_one_thing_at_a_time(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for name in ("pre.json", "response-gzip.json", "post-key-auth.json"):
        await client.dispatch(load_object(name))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(3)
        await page.select_option("select[name='hook_type']", "Response")
        await browser.wait_for_ids([2])
        await page.focus("#export-button")
        await page.keyboard.press("Enter")  # a keyboard opening puts the focus on the first item
        await page.wait_for_function("document.activeElement.id === 'export-all'")
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate("document.activeElement.id") == "export-filtered"
        await page.keyboard.press("Escape")  # closes the menu, and only that
        assert await page.locator("#export-menu").is_hidden()
        assert await page.evaluate("document.activeElement.id") == "export-button"
        assert await page.input_value("select[name='hook_type']") == "Response"
        assert await browser.rows() == [2]

        await page.keyboard.press("/")
        await page.keyboard.type("gzip")
        await page.keyboard.press("Escape")  # empties the filter box
        assert await page.input_value("#search") == ""
        assert await page.evaluate("document.activeElement.id") == "search"
        await page.keyboard.press("Escape")  # leaves it
        assert await page.evaluate("document.activeElement.id") != "search"
        assert await page.input_value("select[name='hook_type']") == "Response"
        await page.keyboard.press("Escape")  # then, with nothing else to undo, resets the filters
        await browser.wait_for_ids([1, 2, 3])
        assert await page.input_value("select[name='hook_type']") == ""


async def test_tab_is_remembered_by_identity_and_a_response_opens_on_response(chromium: Chromium) -> None:
    async with plugin_server(header_plugin) as plugin:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                for name in ("pre.json", "custom-key-check.json", "response-gzip.json", "post-key-auth.json"):
                    await Client(channel).dispatch(load_object(name))
            async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
                page = browser.page
                await page.wait_for_selector(".detail-head h2:has-text('MyPreHook')")
                assert await selected_tab(page) == "outcome"  # a proxied reply that changes something
                await page.click("[role='tab'][data-tab='reply']")
                first_label = await page.inner_text("[role='tab'][data-tab='reply']")
                await page.focus("#list")
                await page.keyboard.press("j")
                await page.wait_for_selector(".detail-head h2:has-text('MyAuthCheck')")
                second_label = await page.inner_text("[role='tab'][data-tab='reply']")
                assert first_label != second_label  # "Reply (3 changes)" and "Reply (2 changes, ⚠ 1)"
                assert await selected_tab(page) == "reply"  # the same tab, whatever its label says

                await page.click("[role='tab'][data-tab='outcome']")  # this capture's main tab
                await page.focus("#list")
                await page.keyboard.press("j")  # a Response hook: its main tab is the response
                await page.wait_for_selector(".detail-head h2:has-text('Response')")
                assert await selected_tab(page) == "response"
                await page.keyboard.press("j")
                await page.wait_for_selector(".detail-head h2:has-text('PostKeyAuth')")
                assert await selected_tab(page) == "outcome"
        finally:
            await inspector.stop()


async def test_tab_bar_follows_the_aria_tabs_pattern(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    await client.dispatch(load_object("post-key-auth.json"))
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
        page = browser.page
        await page.wait_for_selector("[role='tab'][aria-selected='true']")
        tabs = await page.eval_on_selector_all("[role='tab']", "tabs => tabs.map(t => t.dataset.tab)")
        assert tabs == ["request", "reply", "outcome", "session", "journey", "spec", "raw"]
        tab_stops = await page.eval_on_selector_all("[role='tab']", "tabs => tabs.map(t => t.tabIndex)")
        assert tab_stops == [0, -1, -1, -1, -1, -1, -1]  # one tab stop for the bar: the selected tab
        await page.focus("[role='tab'][aria-selected='true']")
        await page.keyboard.press("ArrowRight")
        assert await selected_tab(page) == "reply"
        assert await page.evaluate("document.activeElement.dataset.tab") == "reply"
        await page.keyboard.press("End")
        assert await selected_tab(page) == "raw"
        await page.keyboard.press("ArrowRight")  # wraps around
        assert await selected_tab(page) == "request"
        await page.keyboard.press("ArrowLeft")
        assert await selected_tab(page) == "raw"
        await page.keyboard.press("Home")
        assert await selected_tab(page) == "request"
        panel = page.locator("[role='tabpanel']")
        assert await panel.get_attribute("aria-labelledby") == "tab-request"
        assert await selected_id(page) == 1  # the arrows stayed in the tab bar


async def test_list_focus_is_visible(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for _ in range(3):
        await client.dispatch(load_object("pre.json"))
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(3)
        await page.keyboard.press("Tab")  # keyboard use: focus rings show from here on
        await page.focus("#list")
        await page.keyboard.press("k")
        await page.wait_for_selector("#list .row[data-id='3'][aria-selected='true']")
        assert await page.get_attribute("#list", "aria-activedescendant") == "row-3"
        ring = await page.eval_on_selector("#list", "l => getComputedStyle(l).boxShadow")
        assert ring != "none"
        outline = await page.eval_on_selector(
            "#list .row[aria-selected='true']", "r => getComputedStyle(r).outlineStyle"
        )
        assert outline == "solid"
        await page.keyboard.press("Home")
        await page.wait_for_selector("#list .row[data-id='1'][aria-selected='true']")
        await page.keyboard.press("End")
        await page.wait_for_selector("#list .row[data-id='3'][aria-selected='true']")


async def test_import_is_reachable_by_keyboard(chromium: Chromium, inspector: Inspector) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        choosers: list[FileChooser] = []
        page.on("filechooser", lambda chooser: choosers.append(chooser))  # intercepted from now on
        await page.focus("#export-button")
        await page.keyboard.press("Tab")  # the next stop after Export is Import
        assert await page.evaluate("document.activeElement.id") == "import-file"
        ring = await page.eval_on_selector("#import", "l => getComputedStyle(l).outlineStyle")
        assert ring == "solid"  # the focus shows on the visible label
        await page.keyboard.press("Enter")
        await wait_until(lambda: choosers, within=30, what="the file chooser")
        assert choosers[0].is_multiple() is False


async def test_no_serious_accessibility_violations(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for name in HOOK_PAYLOADS:
        await client.dispatch(load_object(name))
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
    # Light: every kind of view; dark: the colours of the main ones.
    for scheme, views in (
        ("light", ((5, "response"), (3, "session"), (2, "reply"), (7, "event"))),
        ("dark", ((5, "response"), (3, "session"))),
    ):
        async with dashboard_in(chromium, f"{inspector.http_url}/#capture=2", color_scheme=scheme) as browser:
            page = browser.page
            await page.wait_for_selector(".detail-head h2:has-text('MyAuthCheck')")
            assert await axe_violations(page) == [], scheme
            for capture_id, tab in views:
                await browser.select(capture_id)
                await page.click(f"[role='tab'][data-tab='{tab}']")
                assert await axe_violations(page) == [], (scheme, capture_id, tab)
            await page.click("#export-button")
            assert await axe_violations(page) == [], (scheme, "export menu")
            await page.keyboard.press("Escape")
            await page.click("#clear")
            assert await axe_violations(page) == [], (scheme, "clear dialog")
            await page.keyboard.press("Escape")
            await page.fill("#search", "nothing matches this at all")
            await page.wait_for_selector("#no-match:not([hidden])")
            assert await axe_violations(page) == [], (scheme, "no match")


async def no_horizontal_scroll(page: Page) -> bool:
    result: bool = await page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    return result


async def test_small_screen(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for _ in range(40):
        for name in HOOK_PAYLOADS:
            await client.dispatch(load_object(name))
    async with dashboard_in(chromium, inspector.http_url, width=390, height=844) as browser:
        page: Page = browser.page
        await page.wait_for_selector("#list .row[data-id='240']")
        assert await no_horizontal_scroll(page)
        # Every control is on screen and can be reached.
        for selector in ("#pause", "#export-button", "#import", "#clear", "#search", "select[name='hook_type']"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        # Ids stay readable next to their marks (the custom-key-check reply is modified and warned here
        # only with a plugin; 5-digit ids are the widest a buffer shows).
        for cell in await page.locator("#list .row .c-id").all():
            assert await cell.evaluate("c => c.scrollWidth <= c.clientWidth"), await cell.inner_text()

        await browser.select(240)
        await page.wait_for_selector("[role='tab'][aria-selected='true']")
        assert await no_horizontal_scroll(page)
        for _ in range(5):
            await page.focus("#list")
            await page.keyboard.press("k")
        await page.wait_for_selector("#list .row[data-id='235'][aria-selected='true']")
        await page.click("[role='tab'][data-tab='raw']")
        assert await no_horizontal_scroll(page)
        row_in_view = (
            "() => { const l = document.getElementById('list').getBoundingClientRect();"
            " const r = document.querySelector(\"#list .row[aria-selected='true']\").getBoundingClientRect();"
            " return r.top >= l.top && r.bottom <= l.bottom; }"
        )
        await page.wait_for_function(row_in_view)
        await page.locator("#list").evaluate("l => { l.scrollTop = 0; }")  # scrolled away, then back by key
        await page.focus("#list")
        await page.keyboard.press("k")
        await page.wait_for_selector("#list .row[data-id='234'][aria-selected='true']")
        await page.wait_for_function(row_in_view)
        assert browser.errors == []


async def test_ids_readable_with_marks(chromium: Chromium) -> None:
    async with plugin_server(header_plugin) as plugin:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                for _ in range(12):
                    await Client(channel).dispatch(load_object("custom-key-check.json"))  # modified and warned
            for width in (390, 1500):
                async with dashboard_in(chromium, inspector.http_url, width=width) as browser:
                    await browser.wait_rows(12)
                    row = browser.page.locator("#list .row[data-id='12']")
                    assert "⚠" in await row.locator(".c-mark").inner_text()
                    assert "✎" in await row.locator(".c-mark").inner_text()
                    cell = row.locator(".c-id")
                    assert await cell.inner_text() == "12"
                    assert await cell.evaluate("c => c.scrollWidth <= c.clientWidth")
        finally:
            await inspector.stop()
