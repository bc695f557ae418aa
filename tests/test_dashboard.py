"""The dashboard in real Chromium: live list, decoded detail, controls, export/import, reconnect, XSS."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format
from playwright.async_api import Browser as Chromium

from app.config import Settings
from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, inspector, tiny_png  # noqa: F401
from tests.conftest import TEST_SETTINGS, Client, load_event, load_object, with_settings
from tests.plugins import auth_plugin, header_plugin, plugin_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_empty_state_teaches_setup(chromium: Chromium, inspector: Inspector) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        empty = browser.page.locator("#empty")
        await empty.wait_for(state="visible")
        text = await empty.inner_text()
        assert f"tcp://localhost:{inspector.grpc_port}" in text
        assert "TYK_GW_COPROCESSOPTIONS_COPROCESSGRPCSERVER" in text
        assert browser.errors == []


async def test_live_captures_with_decoded_html_image_and_session(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await client.dispatch(load_object("pre.json"))
        await client.dispatch(load_object("response-petstore-301.json"))
        png_response = load_object("response-gzip.json")
        png_response.response.raw_body = tiny_png()
        await client.dispatch(png_response)
        session = load_object("post-key-auth.json")
        session.session.basic_auth_data.password = "hunter2-password"
        session.session.jwt_data.secret = "jwt-signing-secret"
        await client.dispatch(session)
        assert await browser.wait_rows(4) == [1, 2, 3, 4]
        assert await page.locator("#empty").is_hidden()

        # A Response capture whose raw_body is HTML: decoded, shown as source, never rendered.
        await browser.select(2)
        await page.click("button[data-tab='response']")
        body = page.locator(".body-viewer .body-text")
        # Indented one element a line, with the source as it came one click away.
        assert "    <center>\n      <h1>301 Moved Permanently</h1>\n    </center>" in await body.inner_text()
        await page.click(".body-toggle")
        assert "<center><h1>301 Moved Permanently</h1></center>" in await body.inner_text()
        assert await page.locator(".detail-pane center, .detail-pane h1").count() == 0
        assert "text/html" in await page.locator(".body-head").inner_text()

        # A PNG raw_body is previewed as an image.
        await browser.select(3)
        await page.click("button[data-tab='response']")
        image = page.locator("img.body-image")
        await image.wait_for()
        await page.wait_for_function("document.querySelector('img.body-image').naturalWidth === 2")
        # From a data: URL, never a blob URL on the inspector's origin (tests/test_previews.py).
        assert (await image.get_attribute("src") or "").startswith("data:image/png;base64,")
        # The size is written by the image's load event, which may come a turn after naturalWidth is known.
        await page.wait_for_function("document.querySelector('.image-size').textContent !== ''")
        assert await page.locator(".image-size").inner_text() == "2 \u00d7 2 px"

        # Session: epoch fields as dates with the raw number, secrets masked until revealed.
        await browser.select(4)
        await page.click("button[data-tab='session']")
        key_card = await page.locator(".card", has_text="key alias").inner_text()
        assert "2026-01-01T00:00:00Z" in key_card and "(1767225600)" in key_card
        assert "Orders API" in await page.locator("table.grid").inner_text()
        secrets = page.locator(".card", has_text="JWT secret")
        assert "jwt-signing-secret" not in await secrets.inner_text()
        assert "hunter2-password" not in await page.content()
        await secrets.locator("tr", has_text="JWT secret").locator("button").click()
        assert "jwt-signing-secret" in await secrets.inner_text()
        assert browser.errors == []


async def test_event_payload_is_pretty_printed(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
        await browser.wait_rows(1)
        await browser.select(1)
        detail = await browser.page.locator("#detail").inner_text()
        assert "Event AuthFailure" in detail
        assert '"handler_name"' in detail and '"my_event_handler"' in detail
        assert "GET /orders-api/v1/orders/1234 HTTP/1.1" in detail  # the originating request, decoded


async def test_filters(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for name in ("pre.json", "response-gzip.json", "post-json-body.json", "response-petstore-301.json"):
        await client.dispatch(load_object(name))
    await client.event("not json")
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        assert await browser.wait_rows(5) == [1, 2, 3, 4, 5]
        await page.select_option("select[name='hook_type']", "Response")
        await browser.wait_for_ids([2, 4])
        await page.select_option("select[name='hook_type']", "")
        await page.select_option("select[name='kind']", "event")
        await browser.wait_for_ids([5])
        await page.select_option("select[name='kind']", "")
        await page.fill("input[name='status']", "301")
        await browser.wait_for_ids([4])
        await page.fill("input[name='status']", "")
        # Free text reaches into bodies: only the JSON body of the Post hook holds this word.
        await page.fill("#search", "café")
        await browser.wait_for_ids([3])
        await client.dispatch(load_object("post-json-body.json"))  # a live one that matches
        await client.dispatch(load_object("pre.json"))  # and one that does not
        await browser.wait_for_ids([3, 6])
        await page.wait_for_selector("#counts:has-text('2 of 7 captures')")
        await page.click("button[type='reset']")
        assert await browser.wait_rows(7) == list(range(1, 8))


async def test_pause_and_resume(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await client.dispatch(load_object("pre.json"))
        await browser.wait_rows(1)
        await page.click("#pause")
        for _ in range(5):
            await client.dispatch(load_object("pre.json"))
        await page.wait_for_function("document.getElementById('waiting').textContent === '5 waiting'")
        assert await browser.rows() == [1]
        await page.click("#pause")
        assert await browser.wait_rows(6) == [1, 2, 3, 4, 5, 6]
        assert await page.locator("#waiting").is_hidden()


async def test_clear(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        await client.dispatch(load_object("pre.json"))
        await browser.wait_rows(1)
        await browser.page.click("#clear")
        await browser.page.click("#clear-confirm")
        await browser.wait_for_ids([])
        assert await browser.page.locator("#empty").is_visible()
        assert inspector.store.stats().count == 0


async def test_deep_link_and_keyboard(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    for name in ("pre.json", "custom-key-check.json", "post-key-auth.json"):
        await client.dispatch(load_object(name))
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=2") as browser:
        page = browser.page
        await page.wait_for_selector("#list .row[data-id='2'][aria-selected='true']")
        assert "MyAuthCheck" in await page.locator(".detail-head h2").inner_text()
        await page.keyboard.press("j")
        await page.wait_for_selector(".detail-head h2:has-text('MyPostKeyAuthHook')")
        assert page.url.endswith("#capture=3")
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("k")
        await page.wait_for_selector(".detail-head h2:has-text('MyPreHook')")
        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.id") == "search"
        await page.keyboard.type("nothing matches this")
        await browser.wait_for_ids([])
        await page.keyboard.press("Escape")
        await browser.wait_rows(3)
        assert await page.input_value("#search") == ""


async def test_export_matches_the_api_and_import_restores(
    chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    for name in ("pre.json", "response-gzip.json"):
        await client.dispatch(load_object(name))
    await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await browser.wait_rows(3)
        await page.click("#export-button")
        async with page.expect_download() as download_info:
            await page.click("#export-all")
        download = await download_info.value
        assert download.suggested_filename.startswith("tyk-inspector-") and download.suggested_filename.endswith(
            ".json"
        )
        saved = tmp_path / "export.json"
        await download.save_as(saved)
        from_page = json.loads(saved.read_text())
        from_api = (await http.get("/api/export")).json()
        assert from_page["captures"] == from_api["captures"]

        await page.click("#clear")
        await page.click("#clear-confirm")
        await browser.wait_for_ids([])
        await page.set_input_files("#import-file", saved)
        assert await browser.wait_rows(3) == [4, 5, 6]
        assert "Imported 3 capture(s)" in await page.locator("#notice").inner_text()
        assert [c.imported for c in inspector.store.oldest_first()] == [True, True, True]


async def test_reconnect_loses_nothing(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        for _ in range(5):
            await client.dispatch(load_object("pre.json"))
        await browser.wait_rows(5)
        inspector.broadcaster.end_streams()  # as when a proxy or the network drops the stream
        for _ in range(5):
            await client.dispatch(load_object("pre.json"))  # while the page is reconnecting
        assert await browser.wait_rows(10) == list(range(1, 11))
        await page.wait_for_selector("#connection[data-state='live']")
        for _ in range(2):
            await client.dispatch(load_object("pre.json"))
        assert await browser.wait_rows(12) == list(range(1, 13))


class TestGapNotice:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(buffer_items=3)()

    async def test_gap_notice_when_captures_were_evicted(
        self, chromium: Chromium, inspector: Inspector, client: Client
    ) -> None:
        async with dashboard_in(chromium, inspector.http_url) as browser:
            await client.dispatch(load_object("pre.json"))
            await browser.wait_rows(1)
            inspector.broadcaster.end_streams()
            for _ in range(10):  # before the page is back (it waits a second), most leave the buffer
                await client.dispatch(load_object("pre.json"))
            notice = browser.page.locator("#notice")
            await notice.wait_for(state="visible")
            assert "left the server's buffer" in await notice.inner_text()
            assert await browser.wait_rows(4) == [1, 9, 10, 11]


HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='img'\">",
    "javascript:window.__pwned='url'",
    '"><svg onload="window.__pwned=\'svg\'">',
    "';window.__pwned='quote';'",
    "{{constructor.constructor('window.__pwned=1')()}}",
]
SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.__pwned="svgbody"</script>'
    b'<rect width="2" height="2"/></svg>'
)


async def test_hostile_payloads_execute_nothing_and_show_as_text(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    obj = load_object("post-key-auth.json")
    obj.hook_name = HOSTILE[0]
    obj.spec["APIID"] = HOSTILE[1]
    obj.request.url = HOSTILE[2]
    obj.request.headers.update({f"X-Evil-{i}": value for i, value in enumerate(HOSTILE)})
    obj.request.raw_body = HOSTILE[3].encode()
    obj.session.metadata.update({f"evil{i}": value for i, value in enumerate(HOSTILE)})
    obj.session.alias = HOSTILE[4]
    html_response = load_object("response-petstore-301.json")
    html_response.response.raw_body = (
        b"<html><body><script>window.__pwned='html'</script><img src=x onerror=alert(1)></body></html>"
    )
    svg_response = load_object("response-gzip.json")
    svg_response.response.raw_body = SVG_WITH_SCRIPT
    async with dashboard_in(chromium, inspector.http_url) as browser:
        page = browser.page
        await client.dispatch(obj)
        await client.dispatch(html_response)
        await client.dispatch(svg_response)
        await client.event(
            json.dumps({"message": {"Type": HOSTILE[0], "Meta": {"Path": HOSTILE[5]}}, "handler_name": HOSTILE[1]})
        )
        await browser.wait_rows(4)
        for capture_id, tabs in (
            (1, ["request", "session", "spec", "raw"]),
            (2, ["response"]),
            (3, ["response"]),
            (4, ["event", "raw"]),
        ):
            await browser.select(capture_id)
            for tab in tabs:
                await page.click(f"button[data-tab='{tab}']")
                await page.wait_for_selector(f"button[data-tab='{tab}'][aria-selected='true']")
        await browser.select(1)
        await page.click("button[data-tab='request']")
        assert HOSTILE[0] in await page.locator(".detail-head h2").inner_text()  # shown literally
        assert HOSTILE[1] in await page.locator("#list .row[data-id='1']").inner_text()
        request_text = await page.locator("#detail").inner_text()
        assert HOSTILE[2] in request_text and HOSTILE[3] in request_text
        assert await page.evaluate("window.__pwned") is None
        assert browser.dialogs == []
        assert await page.locator("#detail script, #list script, #detail iframe, #detail svg").count() == 0
        assert browser.errors == []


async def test_undecodable_capture_shows_a_hex_dump(chromium: Chromium, inspector: Inspector, client: Client) -> None:
    async with dashboard_in(chromium, inspector.http_url) as browser:
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await client.dispatch_bytes(b"\xff\xfe<script>window.__pwned=1</script>")
        await browser.wait_rows(1)
        row = browser.page.locator("#list .row[data-id='1']")
        assert "failed" in (await row.get_attribute("class") or "")
        await browser.select(1)
        await browser.page.click("button[data-tab='raw-bytes']")
        dump = await browser.page.locator(".hexdump").inner_text()
        assert dump.startswith("00000000  ff fe 3c 73 63 72")
        assert "..<script>window" in dump
        assert "not a coprocess.Object" in await browser.page.locator(".detail-head").inner_text()
        assert await browser.page.evaluate("window.__pwned") is None


async def test_login_page_in_the_browser(chromium: Chromium) -> None:

    inspector = Inspector(replace(TEST_SETTINGS, auth_token="browser-token"))
    await inspector.start()
    try:
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(inspector.http_url)
        assert page.url.endswith("/login")
        await page.fill("#token", "wrong")
        await page.click("button[type='submit']")
        await page.wait_for_selector("text=That is not the token.")
        await page.fill("#token", "browser-token")
        await page.click("button[type='submit']")
        await page.wait_for_selector("#connection[data-state='live']")  # the page and its SSE stream
        await context.close()
    finally:
        await inspector.stop()


async def test_reply_diff_warnings_and_replay_in_the_page(chromium: Chromium) -> None:

    async with plugin_server(header_plugin) as plugin, plugin_server(auth_plugin) as auth:
        inspector = Inspector(replace(TEST_SETTINGS, upstream=plugin.target))
        await inspector.start()
        try:
            async with (
                grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
                dashboard_in(chromium, inspector.http_url) as browser,
            ):
                page = browser.page
                await Client(channel).dispatch(load_object("pre.json"))
                await Client(channel).dispatch(load_object("custom-key-check.json"))
                await browser.wait_rows(2)
                assert "modified" in (await page.locator("#list .row[data-id='1']").get_attribute("class") or "")
                assert "warned" in (await page.locator("#list .row[data-id='2']").get_attribute("class") or "")
                await page.check("input[name='warnings']")
                await browser.wait_for_ids([2])
                await page.uncheck("input[name='warnings']")
                await page.check("input[name='modified']")
                await browser.wait_for_ids([1, 2])  # both replies differ from what was sent
                await page.uncheck("input[name='modified']")

                await browser.select(1)
                await page.click("button[data-tab='reply']")
                table = await page.locator(".changes-table").inner_text()
                assert "set header" in table and "X-Plugin added" in table and "delete param" in table
                assert f"The plugin server {plugin.target} answered" in await page.locator("#detail").inner_text()

                await browser.select(2)
                await page.click("button[data-tab='reply']")
                assert "auth-no-session" in await page.locator("ul.warnings").inner_text()
                await page.fill(".replay input[name='to']", auth.target)
                await page.check(".replay input[type='checkbox']")
                edited = load_object("custom-key-check.json")
                edited.request.headers["Authorization"] = "Bearer good"

                await page.fill(".replay-editor", json_format.MessageToJson(edited))
                await page.click(".replay button.primary")
                await page.wait_for_selector(".replay-result a[href='#capture=3']")
                await browser.wait_rows(3)
                await page.click(".replay-result a")
                await page.wait_for_selector(".detail-head h2:has-text('MyAuthCheck')")
                await page.click("button[data-tab='reply']")
                assert "session created" in await page.locator(".changes-table").inner_text()
                assert "replay of #2" in await page.locator("#detail").inner_text()
                assert browser.errors == []
        finally:
            await inspector.stop()


async def test_list_follows_new_captures_until_the_user_scrolls_away(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    async with dashboard_in(chromium, inspector.http_url, height=600) as browser:
        page = browser.page
        at_bottom = (
            "() => { const l = document.getElementById('list'); "
            "return l.scrollTop + l.clientHeight >= l.scrollHeight - 2; }"
        )
        obj = load_object("pre.json")
        for _ in range(60):  # more rows than the list shows
            await client.dispatch(obj)
        await page.wait_for_selector("#list .row[data-id='60']")
        await page.wait_for_function(at_bottom)  # it followed the newest capture
        await page.evaluate("document.getElementById('list').scrollTop = 0")  # the user looks at older ones
        await page.wait_for_function("() => document.querySelector(\"#list .row[data-id='1']\") !== null")
        for _ in range(20):
            await client.dispatch(obj)
        await page.wait_for_function("() => window.tykInspector.state.all.length === 80")
        assert await page.evaluate("document.getElementById('list').scrollTop") == 0  # left where the user is
        assert not await page.evaluate(at_bottom)
        await page.evaluate("const l = document.getElementById('list'); l.scrollTop = l.scrollHeight")
        await client.dispatch(obj)
        await page.wait_for_selector("#list .row[data-id='81']")  # following again
        await page.wait_for_function(at_bottom)
