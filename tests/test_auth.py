"""The access token over a real server: non-ASCII tokens, login, logout, expiry, throttling."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from app.web.auth import COOKIE, FREE_ATTEMPTS, MAX_CLIENTS, MAX_LOCKOUT_SECONDS, MAX_SESSIONS, LoginThrottle, Sessions
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


# --- sessions: expiry and logout ------------------------------------------------------------------

TOKEN = "a-long-enough-test-token"


async def logged_in(http: httpx.AsyncClient) -> str:
    login = await http.post("/login", content=f"token={TOKEN}", headers=FORM)
    assert login.status_code == 303
    return login.cookies[COOKIE]


async def test_logout_ends_the_session_for_good() -> None:
    inspector = Inspector(replace(TEST_SETTINGS, auth_token=TOKEN))
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            session = await logged_in(http)
            page = await http.get("/")
            assert page.status_code == 200 and 'action="/logout"' in page.text
            out = await http.post("/logout")
            assert out.status_code == 303 and out.headers["location"] == "/login"
            assert COOKIE not in http.cookies or not http.cookies[COOKIE]
            # The old cookie, sent again by hand, no longer opens anything.
            replayed = await http.get("/api/stats", headers={"Cookie": f"{COOKIE}={session}"})
            assert replayed.status_code == 401
    finally:
        await inspector.stop()


async def test_a_session_expires() -> None:
    inspector = Inspector(replace(TEST_SETTINGS, auth_token=TOKEN, session_seconds=1.0))
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            login = await http.post("/login", content=f"token={TOKEN}", headers=FORM)
            assert "Max-Age=1" in login.headers["set-cookie"]
            cookie = {"Cookie": f"{COOKIE}={login.cookies[COOKIE]}"}
            assert (await http.get("/api/stats", headers=cookie)).status_code == 200
            deadline = asyncio.get_running_loop().time() + 15
            while (await http.get("/api/stats", headers=cookie)).status_code == 200:
                assert asyncio.get_running_loop().time() < deadline, "the session never expired"
                await asyncio.sleep(0.1)
            assert (await http.get("/api/stats", headers=cookie)).status_code == 401
    finally:
        await inspector.stop()


# --- failed attempts ------------------------------------------------------------------------------


async def test_failed_attempts_are_throttled_per_client_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    inspector = Inspector(replace(TEST_SETTINGS, auth_token=TOKEN))
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            for attempt in range(FREE_ATTEMPTS):
                wrong = await http.post("/login", content=f"token=guess{attempt}", headers=FORM)
                assert wrong.status_code == 401
            # Locked out now, on the form and by bearer alike, even with the right token.
            locked = await http.post("/login", content=f"token={TOKEN}", headers=FORM)
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
            bearer = await http.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
            assert bearer.status_code == 429 and "try again" in bearer.json()["detail"]
            assert int(bearer.headers["retry-after"]) >= 1
        # Another address is not held up by this one's failures.
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=inspector.http_url, transport=other) as http:
            assert (await http.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        warnings = [r.getMessage() for r in caplog.records if "wrong access token" in r.getMessage()]
        assert len(warnings) == FREE_ATTEMPTS and "127.0.0.1" in warnings[-1] and "guess" not in " ".join(warnings)
    finally:
        await inspector.stop()


def test_the_throttle_doubles_the_wait_and_forgets() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(FREE_ATTEMPTS - 1):
        throttle.failed("a")
    assert throttle.retry_after("a") == 0
    throttle.failed("a")
    assert throttle.retry_after("a") == 1
    now[0] += 1
    throttle.failed("a")
    assert throttle.retry_after("a") == 2
    for _ in range(20):
        throttle.failed("a")
    assert throttle.retry_after("a") == MAX_LOCKOUT_SECONDS
    now[0] += 10_000
    throttle.failed("a")  # long after: counted afresh
    assert throttle.retry_after("a") == 0
    throttle.succeeded("a")
    assert len(throttle) == 0


def test_memory_for_failures_and_sessions_is_bounded() -> None:
    throttle = LoginThrottle()
    for n in range(MAX_CLIENTS + 500):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == MAX_CLIENTS
    sessions = Sessions(3600)
    ids = [sessions.create() for _ in range(MAX_SESSIONS + 10)]
    assert len(sessions) == MAX_SESSIONS and not sessions.valid(ids[0]) and sessions.valid(ids[-1])
