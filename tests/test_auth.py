"""The access token over a real server: non-ASCII tokens, login, logout, expiry, throttling."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from tests.conftest import TEST_SETTINGS

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
UNICODE_TOKEN = "pässwort-ünïcode-tøken"


@pytest.fixture
def settings() -> Settings:
    return replace(TEST_SETTINGS, auth_token=UNICODE_TOKEN)


async def test_a_non_ascii_token_works_as_bearer_and_login(inspector: Inspector) -> None:
    async with httpx.AsyncClient(base_url=inspector.http_url) as http:
        bearer = {b"Authorization": f"Bearer {UNICODE_TOKEN}".encode()}
        assert (await http.get("/api/stats", headers=bearer)).status_code == 200
        wrong = {b"Authorization": "Bearer pässwort-ünïcode-tøkeN".encode()}
        refused = await http.get("/api/stats", headers=wrong)
        assert refused.status_code == 401 and "access token" in refused.json()["detail"]
        login = await http.post("/login", content=f"token={quote(UNICODE_TOKEN)}", headers=FORM)
        assert login.status_code == 303
        assert (await http.get("/")).status_code == 200


async def test_non_ascii_guesses_against_an_ascii_token_are_refused_not_errors() -> None:
    inspector = Inspector(replace(TEST_SETTINGS, auth_token="plain-ascii-token-1234"))
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            refused = await http.get("/api/stats", headers={b"Authorization": "Bearer ünïcode".encode()})
            assert refused.status_code == 401
            bad_login = await http.post("/login", content="token=%C3%BCn%C3%AFcode", headers=FORM)
            assert bad_login.status_code == 401 and "not the token" in bad_login.text
            cookie = await http.get("/api/stats", headers={b"Cookie": "tyk_inspector_session=ünï".encode()})
            assert cookie.status_code == 401
    finally:
        await inspector.stop()
