"""Security over real servers: token and login, Host and same-origin checks, redaction, HTTPS, unix socket."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
import trustme

from app.config import Settings
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import TEST_SETTINGS, Client, load_event, load_object

TOKEN = "s3cret-token-for-tests"
REDACTED_SETTINGS = replace(TEST_SETTINGS, redact=True)


async def running(settings: Settings) -> Inspector:
    inspector = Inspector(settings)
    await inspector.start()
    return inspector


# --- binding and the token ---------------------------------------------------------------------


def test_listening_beyond_loopback_needs_a_token_or_an_explicit_opt_out() -> None:
    with pytest.raises(ValueError, match="--auth-token"):
        replace(TEST_SETTINGS, http_host="0.0.0.0")
    assert replace(TEST_SETTINGS, http_host="0.0.0.0", auth_token=TOKEN).auth_token == TOKEN
    assert replace(TEST_SETTINGS, http_host="0.0.0.0", allow_no_auth=True).allow_no_auth
    assert replace(TEST_SETTINGS, http_host="::1").http_is_loopback


async def test_no_auth_on_a_public_address_is_loudly_logged(caplog: pytest.LogCaptureFixture) -> None:
    inspector = await running(replace(TEST_SETTINGS, http_host="0.0.0.0", allow_no_auth=True))
    try:
        assert any("NO access token" in r.message and r.levelname == "WARNING" for r in caplog.records)
    finally:
        await inspector.stop()


@pytest.fixture
async def guarded() -> AsyncIterator[Inspector]:
    inspector = await running(replace(TEST_SETTINGS, auth_token=TOKEN))
    try:
        yield inspector
    finally:
        await inspector.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/captures"), ("GET", "/api/captures/1"), ("GET", "/api/stats"), ("GET", "/api/stream"),
     ("GET", "/api/export"), ("GET", "/api/captures/1/export"), ("DELETE", "/api/captures"), ("POST", "/api/import")],
)  # fmt: skip
async def test_every_api_route_needs_the_token(guarded: Inspector, method: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=guarded.http_url) as http:
        refused = await http.request(method, path)
        assert refused.status_code == 401
        assert "access token" in refused.json()["detail"]
        wrong = await http.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_bearer_token_and_login_cookie(guarded: Inspector) -> None:
    async with httpx.AsyncClient(base_url=guarded.http_url) as http:
        assert (await http.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        page = await http.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert "Access token" in (await http.get("/login")).text
        bad = await http.post(
            "/login", content="token=guess", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert bad.status_code == 401 and "not the token" in bad.text
        good = await http.post(
            "/login", content=f"token={TOKEN}", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert (await http.get("/")).status_code == 200  # the client keeps the cookie
        assert (await http.get("/api/export")).status_code == 200
        async with http.stream("GET", "/api/stream") as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")


# --- Host and origin checks ---------------------------------------------------------------------


async def test_foreign_host_header_is_refused(inspector: Inspector, http: httpx.AsyncClient) -> None:
    refused = await http.get("/api/stats", headers={"Host": "attacker.example"})
    assert refused.status_code == 403 and "--allowed-host" in refused.json()["detail"]
    for host in (
        f"localhost:{inspector.http_port}",
        f"127.0.0.1:{inspector.http_port}",
        f"[::1]:{inspector.http_port}",
    ):
        assert (await http.get("/api/stats", headers={"Host": host})).status_code == 200


async def test_allowed_host_setting() -> None:
    inspector = await running(replace(TEST_SETTINGS, allowed_hosts=("inspector.internal",)))
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            assert (await http.get("/api/stats", headers={"Host": "inspector.internal:80"})).status_code == 200
            assert (await http.get("/api/stats", headers={"Host": "other.internal"})).status_code == 403
    finally:
        await inspector.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_cross_site_writes_are_refused_and_change_nothing(
    inspector: Inspector, client: Client, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.dispatch(load_object("pre.json"))
    export = (await http.get("/api/export")).content
    assert (await http.delete("/api/captures", headers=headers)).status_code == 403
    assert (await http.post("/api/import", content=export, headers=headers)).status_code == 403
    assert inspector.store.stats().count == 1


async def test_same_origin_writes_pass(inspector: Inspector, client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    same = {"Sec-Fetch-Site": "same-origin", "Origin": inspector.http_url}
    assert (await http.delete("/api/captures", headers=same)).status_code == 200


# --- redaction -------------------------------------------------------------------------------------


def secret_object() -> pb.Object:
    obj = load_object("post-key-auth.json")
    obj.request.headers["Cookie"] = "sid=cookie-secret"
    obj.request.headers["X-Api-Key"] = "api-key-secret"
    obj.session.hmac_secret = "hmac-secret"
    obj.session.jwt_data.secret = "jwt-secret"
    obj.session.basic_auth_data.password = "basic-password"
    obj.session.basic_auth_data.hash = "basic-hash"
    obj.session.metadata["refresh_token"] = "refresh-secret"
    obj.session.key_id = "key-hash-3f7c87e8"  # the key's ID (a hash with hashed keys), not the key
    return obj


SECRETS = [
    "5e9d9544a1dcd60001d0ed20f8a3c4b2e1d04a5f9c7b6e3d2a1f0e9d",  # the Authorization header value
    "cookie-secret", "api-key-secret", "hmac-secret", "jwt-secret", "basic-password", "basic-hash", "refresh-secret",
]  # fmt: skip


async def test_credentials_are_redacted_in_api_and_export_but_not_for_the_gateway() -> None:
    settings = replace(REDACTED_SETTINGS, redact_headers=("X-Api-Key",), redact_metadata=("refresh_token",))
    inspector = await running(settings)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url) as http,
        ):
            obj = secret_object()
            reply = await Client(channel).dispatch(obj)
            assert reply == obj  # the gateway gets every byte back, secrets included
            await Client(channel).event_bytes(load_event("event-auth-failure.json").SerializeToString())
            detail = (await http.get("/api/captures/1")).text
            export = (await http.get("/api/export")).text
            event = (await http.get("/api/captures/2")).json()
        for secret in SECRETS:
            assert secret not in detail and secret not in export, secret
        assert json.loads(export)["redacted"] is True
        assert "[redacted]" in detail
        request = json.loads(detail)["request"]["request"]
        assert request["headers"]["Host"] == "gw.example.com"  # everything else stays
        assert event["event"]["payload"]["message"]["Meta"]["Key"] == "[redacted]"
        assert "Authorization: [redacted]" in event["event"]["originating_request"]
        assert "bad-token" not in json.dumps(event)
    finally:
        await inspector.stop()


async def test_no_redact_shows_everything(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(secret_object())  # TEST_SETTINGS has redact=False
    detail = (await http.get("/api/captures/1")).text
    assert all(secret in detail for secret in SECRETS if secret != "api-key-secret")


# --- HTTPS and the unix socket ----------------------------------------------------------------------


async def test_https_listener_with_a_self_signed_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    inspector = await running(replace(TEST_SETTINGS, tls_cert=str(cert_file), tls_key=str(key_file)))
    try:
        assert inspector.http_url.startswith("https://")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        async with httpx.AsyncClient(base_url=inspector.http_url, verify=context) as https:
            assert (await https.get("/api/stats")).status_code == 200
        async with httpx.AsyncClient(base_url=inspector.http_url.replace("https", "http")) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/api/stats")
    finally:
        await inspector.stop()


async def test_unix_socket_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "inspector.sock"
    inspector = await running(replace(TEST_SETTINGS, grpc_address="", grpc_unix_socket=str(path)))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await inspector.stop()
