"""Redacted values a viewer may still need: reveal one (logged without it), copy with secrets, challenge
headers left readable; --redact-strict turns the way around redaction off."""

# ruff: noqa: F811  (the shared-browser fixtures are imported, then named as test arguments)

from __future__ import annotations

import ast
import logging

import httpx
import pytest
from playwright.async_api import Browser as Chromium

from app.config import Settings
from app.server import Inspector
from tests.browser import chromium, client, dashboard_in, http, inspector  # noqa: F401
from tests.conftest import Client, load_object, with_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.sig"
CHALLENGE = 'Bearer realm="orders", error="invalid_token", error_description="token revoked"'


@pytest.fixture
def settings() -> Settings:
    return with_settings(redact=True)()


async def refused(client: Client) -> None:
    """An auth call (Authorization header) and a Response hook that saw the 401 with its challenge."""
    await client.dispatch(load_object("custom-key-check.json"))
    response = load_object("response-gzip.json")
    response.response.status_code = 401
    response.response.headers["WWW-Authenticate"] = CHALLENGE
    response.response.headers["Proxy-Authenticate"] = 'Basic realm="proxy"'
    await client.dispatch(response)


async def test_a_challenge_header_is_not_a_credential(client: Client, http: httpx.AsyncClient) -> None:
    await refused(client)
    detail = (await http.get("/api/captures/2")).json()
    headers = detail["request"]["response"]["headers"]
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert headers["Proxy-Authenticate"] == 'Basic realm="proxy"'
    found = await http.get("/api/captures", params={"q": "h:WWW-Authenticate=*invalid_token*"})
    assert [c["id"] for c in found.json()["items"]] == [2]
    assert [c["id"] for c in (await http.get("/api/captures", params={"q": "token revoked"})).json()["items"]] == [2]
    # Credentials stay hidden.
    first = (await http.get("/api/captures/1")).json()
    assert first["request"]["request"]["headers"]["Authorization"] == "[redacted]"


async def test_one_value_is_revealed_and_logged_without_it(
    client: Client, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    await refused(client)
    caplog.set_level(logging.INFO, logger="tyk_inspector")
    path = {"path": ["request", "headers", "Authorization"]}
    response = await http.post("/api/captures/1/reveal", json=path)
    assert response.status_code == 200, response.text
    assert response.json() == {"value": TOKEN}
    lines = [r.getMessage() for r in caplog.records if "revealed" in r.getMessage()]
    assert len(lines) == 1 and "Authorization" in lines[0] and "capture 1" in lines[0]
    assert all("eyJ" not in r.getMessage() for r in caplog.records)
    missing = await http.post("/api/captures/1/reveal", json={"path": ["request", "headers", "X-None"]})
    assert missing.status_code == 404 and "detail" in missing.json()
    assert (await http.post("/api/captures/1/reveal", json={"path": []})).status_code == 422
    assert (await http.post("/api/captures/9/reveal", json=path)).status_code == 404
    # Copy with secrets: an explicit choice, logged; without it, no credential and no "[redacted]" in curl.
    curl = (await http.get("/api/captures/1/copy", params={"as": "curl", "secrets": "1"})).text
    assert TOKEN in curl
    assert any("with its secrets" in r.getMessage() for r in caplog.records)
    plain = (await http.get("/api/captures/1/copy", params={"as": "curl"})).text
    assert TOKEN not in plain and "[redacted]" not in plain and "$AUTHORIZATION" not in plain
    assert '"${AUTHORIZATION:?}"' in plain
    send = (await http.get("/api/captures/1/copy", params={"as": "send", "secrets": "1"})).text
    assert TOKEN in send


class TestStrict:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(redact=True, redact_strict=True)()

    async def test_strict_turns_reveal_and_copies_with_secrets_off(
        self, chromium: Chromium, inspector: Inspector, client: Client, http: httpx.AsyncClient
    ) -> None:
        await refused(client)
        reveal = await http.post("/api/captures/1/reveal", json={"path": ["request", "headers", "Authorization"]})
        assert reveal.status_code == 403 and "--redact-strict" in reveal.json()["detail"]
        copy = await http.get("/api/captures/1/copy", params={"as": "curl", "secrets": "1"})
        assert copy.status_code == 403
        async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
            page = browser.page
            await page.click("[role='tab'][data-tab='request']")
            await page.wait_for_selector("table.kv th:text-is('Authorization')")
            assert await page.locator("button.reveal").count() == 0
            await page.click(".detail-head button.copy-as")
            assert await page.locator("[role='menuitem'].with-secrets").count() == 0


async def test_reveal_and_copy_with_secrets_in_the_page(
    chromium: Chromium, inspector: Inspector, client: Client
) -> None:
    await refused(client)
    async with dashboard_in(chromium, f"{inspector.http_url}/#capture=1") as browser:
        page = browser.page
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await page.click("[role='tab'][data-tab='request']")
        row = page.locator("table.kv tr", has=page.locator("th:text-is('Authorization')"))
        assert "[redacted]" in await row.inner_text()
        await row.locator("button.reveal").click()
        await row.locator("code.secret[data-revealed='true']").wait_for()
        assert TOKEN in await row.inner_text()
        await row.locator("button.reveal").click()  # hide again
        await row.locator("code.secret[data-revealed='false']").wait_for()
        await page.click(".detail-head button.copy-as")
        await page.click("[role='menuitem'][data-format='curl-with-secrets']")
        shown = page.locator(".copy-text[data-format='curl with secrets']")
        await shown.wait_for()
        assert TOKEN in await shown.inner_text()
        await page.click(".detail-head button.copy-as")
        # What the page asks for and gets (the preview may be drawn again as the detail refreshes).
        async with page.expect_response(lambda r: "as=pytest" in r.url and "secrets=1" in r.url) as copied:
            await page.click("[role='menuitem'][data-format='pytest-with-secrets']")
        copied_text = await (await copied.value).text()
        # pprint may split a long string into adjacent literals: read the test's SENT as Python reads it.
        sent = next(
            ast.literal_eval(node.value)
            for node in ast.parse(copied_text).body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SENT"
        )
        assert sent["request"]["headers"]["Authorization"] == TOKEN
        # The challenge of a 401 reads as sent.
        await page.goto(f"{inspector.http_url}/#capture=2")
        await page.click("[role='tab'][data-tab='response']")
        challenge = page.locator("table.kv tr", has=page.locator("th:text-is('WWW-Authenticate')"))
        assert "invalid_token" in await challenge.inner_text()
        assert browser.errors == []
