"""Redaction on by default wherever a value leaves the process: list, SSE, detail, export, console, search, replay.

Every secret below starts with SECRET_MARK; a leak check walks each output, decoding base64,
gzip and nested JSON on the way, so a secret inside a raw body or an event's request dump counts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import logging
from dataclasses import replace
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from app.config import Settings
from app.redaction.redact import REDACTED, Redactor
from app.redaction.secrets import NameRules, scrub
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from protogen.coprocess_common_pb2 import HookType
from tests.conftest import DISPATCH, TEST_SETTINGS, Client, load_object, wait_until
from tests.plugins import plugin_server

SECRET_MARK = "S3CR"
SETTINGS = replace(TEST_SETTINGS, redact=True, redact_query=("ref",), redact_body=("card.number",), capture_log="json")


def secret(n: int) -> str:
    return f"{SECRET_MARK}{n:02d}x"


def leaks(value: Any, depth: int = 0) -> list[str]:
    """Every place in a JSON-ready value (or text, or bytes) where a secret shows."""
    if depth > 8:
        return []
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in leaks(k, depth) + leaks(v, depth + 1)]
    if isinstance(value, list):
        return [hit for v in value for hit in leaks(v, depth + 1)]
    if isinstance(value, bytes):
        if value[:2] == b"\x1f\x8b":
            value = gzip.decompress(value)
        return leaks(value.decode("utf-8", "replace"), depth + 1)
    if not isinstance(value, str):
        return []
    if SECRET_MARK in value:
        return [value]
    found: list[str] = []
    if value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            found += leaks(json.loads(value), depth + 1)
    if len(value) >= 8:
        with contextlib.suppress(binascii.Error, ValueError, OSError, EOFError):
            found += leaks(base64.b64decode(value, validate=True), depth + 1)
    return found


def secret_object() -> pb.Object:
    obj = load_object("post-json-body.json")
    request = obj.request
    request.headers.update(
        {
            "Authorization": f"Bearer {secret(1)}",
            "X-Api-Key": secret(2),
            "X-Custom-Auth-Token": secret(3),
            "Cookie": f"sid={secret(4)}",
            "Content-Type": "application/json",
            "X-Request-Id": "req-visible-1",
        }
    )
    request.set_headers["X-Auth-Token"] = secret(5)
    request.return_overrides.headers["Set-Cookie"] = f"sid={secret(6)}"
    request.url = f"/orders?api_key={secret(7)}&page=2&ref={secret(23)}"
    request.request_uri = f"/orders?access_token={secret(8)}&page=2"
    request.params.update({"token": secret(9), "page": "2"})
    body = {
        "user": "alice",
        "password": secret(10),
        "nested": {"client_secret": secret(11)},
        "card": {"number": secret(12)},
    }
    request.raw_body = json.dumps(body).encode()
    request.body = json.dumps(body, indent=2)
    response = obj.response
    response.status_code = 200
    response.headers["Set-Cookie"] = f"session={secret(13)}"
    response.headers["Content-Type"] = "application/json"
    response.multivalue_headers.add(key="Set-Cookie", values=[f"a={secret(14)}", f"b={secret(15)}"])
    response.raw_body = gzip.compress(json.dumps({"access_token": secret(16), "expires": 3600}).encode(), mtime=0)
    obj.metadata["token"] = secret(17)
    obj.spec["APIID"] = "api-visible"
    obj.spec["config_data"] = json.dumps({"upstream_api_key": secret(18), "timeout": 5})
    obj.session.hmac_secret = secret(19)
    obj.session.basic_auth_data.password = secret(20)
    obj.session.jwt_data.secret = secret(21)
    obj.session.oauth_keys["client"] = secret(22)
    return obj


def form_object() -> pb.Object:
    obj = pb.Object(hook_type=HookType.Pre, hook_name="FormHook")
    obj.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    obj.request.method = "POST"
    obj.request.url = "/login"
    obj.request.raw_body = f"user=bob&password={secret(24)}".encode()
    return obj


def secret_event() -> str:
    dump = (
        f"GET /x?token={secret(27)}&q=visible HTTP/1.1\r\nHost: gw\r\nX-Api-Key: {secret(28)}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n\r\npassword={secret(29)}"
    )
    meta = {
        "Message": "Auth Failure",
        "OriginatingRequest": base64.b64encode(dump.encode()).decode(),
        "Path": "/x",
        "Origin": "203.0.113.7",
        "Key": secret(26),
    }
    return json.dumps({"message": {"Type": "AuthFailure", "Meta": meta}, "handler_name": "h", "spec": {}})


@pytest.fixture
def settings() -> Settings:
    return SETTINGS


@pytest.fixture
async def loaded(inspector: Inspector, client: Client) -> Inspector:
    """An inspector holding a capture with a secret in every place, a form post and a key event."""
    obj = secret_object()
    sent = obj.SerializeToString()
    call = client.channel.unary_unary(DISPATCH)
    reply = await call(sent, metadata=(("authorization", f"Bearer {secret(25)}"),))
    assert reply == sent, "redaction never touches what the gateway gets back"
    await client.dispatch(form_object())
    await client.event(secret_event())
    await wait_until(lambda: inspector.store.last_id == 3, what="three captures")
    return inspector


@pytest.fixture
def console(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="tyk_inspector.captures")
    return caplog


async def test_list_detail_export_and_sse_show_no_secret(loaded: Inspector, http: httpx.AsyncClient) -> None:
    listing = (await http.get("/api/captures")).json()
    assert not leaks(listing)
    assert listing["items"][-1]["path"] == f"/orders?api_key={REDACTED}&page=2&ref={REDACTED}"
    for capture_id in (1, 2, 3):
        detail = (await http.get(f"/api/captures/{capture_id}")).json()
        assert not leaks(detail), capture_id
        single = (await http.get(f"/api/captures/{capture_id}/export")).text
        assert not leaks(single) and SECRET_MARK not in single
    export = (await http.get("/api/export")).json()
    assert export["redacted"] is True and not leaks(export)
    async with http.stream("GET", "/api/stream", params={"after": 0}) as stream:
        text = ""
        async for chunk in stream.aiter_text():
            text += chunk
            if "event: ready" in text:
                break
    assert "event: capture" in text and SECRET_MARK not in text


async def test_what_is_not_a_credential_stays_visible(loaded: Inspector, http: httpx.AsyncClient) -> None:
    detail = (await http.get("/api/captures/1")).json()
    request = detail["request"]["request"]
    assert request["headers"]["X-Request-Id"] == "req-visible-1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["params"]["page"] == "2"
    body = detail["bodies"]["request.rawBody"]["json"]
    assert body["user"] == "alice" and body["password"] == REDACTED and body["card"] == {"number": REDACTED}
    assert json.loads(detail["request"]["spec"]["config_data"]) == {"upstream_api_key": REDACTED, "timeout": 5}
    response_body = json.loads(base64.b64decode(detail["bodies"]["response.rawBody"]["inflated_base64"]))
    assert response_body == {"access_token": REDACTED, "expires": 3600}
    assert ["authorization", REDACTED] in detail["metadata"]
    event = (await http.get("/api/captures/3")).json()["event"]
    dump = event["originating_request"]
    assert "q=visible" in dump and "Host: gw" in dump and f"X-Api-Key: {REDACTED}" in dump
    assert event["payload"]["message"]["Meta"]["Origin"] == "203.0.113.7"


async def test_search_matches_what_is_shown_not_the_secrets(loaded: Inspector, http: httpx.AsyncClient) -> None:
    async def ids(q: str) -> list[int]:
        return [c["id"] for c in (await http.get("/api/captures", params={"q": q})).json()["items"]]

    for q in (SECRET_MARK, secret(1), secret(1)[:5], "Bearer S", secret(17), secret(26), secret(28), secret(25)):
        assert await ids(q) == [], q
    assert await ids("req-visible-1") == [1]
    assert await ids("alice") == [1]
    assert await ids("q=visible") == [3]  # the event's originating request, decoded as the page shows it
    export = (await http.get("/api/export", params={"q": secret(2)})).json()
    assert export["captures"] == []


async def test_console_log_shows_no_secret(console: pytest.LogCaptureFixture, loaded: Inspector) -> None:
    def lines() -> list[str]:
        records = console.get_records("setup") + console.get_records("call")  # the captures came in setup
        return [r.getMessage() for r in records if r.name == "tyk_inspector.captures"]

    await wait_until(lambda: len(lines()) >= 3, what="console lines")
    assert any("api_key=[redacted]" in line for line in lines())
    assert not [line for line in lines() if leaks(line) or SECRET_MARK in line]


async def test_replay_results_show_no_secret_and_edits_send_the_originals(
    loaded: Inspector, http: httpx.AsyncClient
) -> None:
    async def answer(obj: pb.Object) -> pb.Object:
        obj.response.headers["Set-Cookie"] = f"new={secret(30)}"
        return obj

    async with plugin_server(answer) as plugin:
        result = await http.post("/api/captures/1/replay", json={"to": plugin.target})
        assert result.status_code == 201, result.text
        assert not leaks(result.json())
        assert plugin.received[-1] == secret_object(), "an unedited replay sends the captured Object"

        # The page edits the redacted view: untouched hidden values go out as captured.
        edited = (await http.get("/api/captures/1")).json()["request"]
        edited["hookName"] = "EditedHook"
        result = await http.post("/api/captures/1/replay", json={"to": plugin.target, "object": edited})
        assert result.status_code == 201, result.text
        assert not leaks(result.json())
        sent = plugin.received[-1]
        expected = secret_object()
        expected.hook_name = "EditedHook"
        assert sent == expected

        # A changed field that still holds a hidden part cannot be restored: refused, saying where.
        edited["request"]["url"] = edited["request"]["url"].replace("/orders", "/orders/7")
        refused = await http.post("/api/captures/1/replay", json={"to": plugin.target, "object": edited})
        assert refused.status_code == 400
        assert "request.url" in refused.json()["detail"] and REDACTED in refused.json()["detail"]


async def test_no_redact_shows_the_secrets_in_search() -> None:
    inspector = Inspector(replace(SETTINGS, redact=False, capture_log="off"))
    await inspector.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
            await Client(channel).dispatch(secret_object())
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            items = (await http.get("/api/captures", params={"q": secret(2)})).json()["items"]
            assert [c["id"] for c in items] == [1]
    finally:
        await inspector.stop()


# --- the name rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "api-key", "apikey", "X-Auth-Token",
     "X-Access-Token", "X-Tyk-Authorization", "X-Session-Id", "X-Client-Secret", "X-Password", "x-amz-security-token",
     "X-Signature", "X-Hub-Signature-256", "X-Auth", "access_token", "refreshToken", "client_secret", "privateKey",
     "sig", "pwd", "passwd", "JWT"],
)  # fmt: skip
def test_credential_names(name: str) -> None:
    assert NameRules().header(name) and NameRules().json_key(name)


@pytest.mark.parametrize(
    "name",
    ["Content-Type", "Accept", "X-Request-Id", "User-Agent", "Host", "author", "keyboard", "monkey", "passenger",
     "Keep-Alive", "status_code", "code", "X-Forwarded-For", "Origin"],
)  # fmt: skip
def test_names_that_are_not_credentials(name: str) -> None:
    assert not NameRules().header(name) and not NameRules().json_key(name)


async def test_grpc_metadata_keys_and_url_passwords_are_hidden() -> None:
    settings = replace(SETTINGS, redact_metadata=("traceparent",))
    inspector = Inspector(settings)
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url) as http,
        ):
            obj = load_object("pre.json")
            obj.request.url = f"http://alice:{secret(40)}@upstream.example/orders?page=2"
            obj.request.request_uri = f"//bob:{secret(41)}@upstream.example/orders"
            metadata = (("traceparent", f"00-{secret(42)}-01"), ("x-visible", "shown"))
            await channel.unary_unary(DISPATCH)(obj.SerializeToString(), metadata=metadata)
            await wait_until(lambda: inspector.store.last_id == 1, what="the capture")
            listing = (await http.get("/api/captures")).json()
            detail = (await http.get("/api/captures/1")).json()
            export = (await http.get("/api/export")).json()
    finally:
        await inspector.stop()
    assert not leaks(listing) and not leaks(detail) and not leaks(export)
    assert dict(detail["metadata"])["traceparent"] == REDACTED
    assert dict(detail["metadata"])["x-visible"] == "shown"
    assert listing["items"][0]["path"].startswith(f"http://alice:{REDACTED}@upstream.example/orders")


async def test_a_journey_keyed_by_a_redacted_metadata_key_shows_it_redacted() -> None:
    from tests.test_journey import hook_object, matching_ids

    inspector = Inspector(replace(SETTINGS, redact_metadata=("traceparent",)))
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url) as http,
        ):
            trace = "d" * 32
            for hook in (HookType.Pre, HookType.Post):
                await Client(channel).dispatch(
                    hook_object(hook), metadata=(("traceparent", f"00-{trace}-{'1' * 16}-01"),)
                )
            listed = await http.get("/api/journeys")
            assert [(r["by"], r["key"]) for r in listed.json()["items"]] == [("traceparent", REDACTED)]
            assert trace not in listed.text
            assert await matching_ids(http, f"journey:{trace}") == []
    finally:
        await inspector.stop()


def test_query_strings_forms_and_paths() -> None:
    rules = NameRules.build(query=["ref"], body=["items.*.pin", "ssn"])
    assert rules.url("/cb?code=abc&state=s&page=1#x") == f"/cb?code={REDACTED}&state=s&page=1#x"
    assert rules.url("/p?key=k&ref=r&Signature=z") == f"/p?key={REDACTED}&ref={REDACTED}&Signature={REDACTED}"
    assert rules.url("/p?api%5Fkey=k") == f"/p?api%5Fkey={REDACTED}"
    assert rules.url("http://bob:pw@up.example/p?a=1") == f"http://bob:{REDACTED}@up.example/p?a=1"
    assert rules.url("https://ghp_token@host:8443/") == f"https://{REDACTED}@host:8443/"
    assert rules.url("//u:p@h/x") == f"//u:{REDACTED}@h/x"
    assert rules.url("/p@x?next=http://a:b@c") == "/p@x?next=http://a:b@c"  # no authority: nothing to hide
    assert rules.body_text("a=1&password=p&ssn=9") == f"a=1&password={REDACTED}&ssn={REDACTED}"
    doc = json.loads(rules.json_text(json.dumps({"items": [{"pin": 1, "qty": 2}], "deep": {"ssn": "x", "a": None}})))
    assert doc == {"items": [{"pin": REDACTED, "qty": 2}], "deep": {"ssn": REDACTED, "a": None}}


def test_hostile_payloads_are_redacted_without_errors() -> None:
    redactor = Redactor()
    assert redactor.event_payload('{"message":"x"}') == '{"message":"x"}'
    assert redactor.event_payload("not json") == "not json"
    deep = "[" * 100_000 + "]" * 100_000
    assert SECRET_MARK not in redactor.event_payload(deep)
    assert SECRET_MARK not in NameRules().json_text('{"a":' * 5000 + '"S3CR"' + "}" * 5000)
    obj = pb.Object()
    obj.request.raw_body = b"\x1f\x8b not gzip"
    obj.request.url = "?&=&&==x"
    redactor.object(obj)
    assert obj.request.raw_body == b"\x1f\x8b not gzip"


def test_a_message_round_trips_through_the_redacted_json() -> None:
    # The redacted view is still a valid Object (the page's replay editor parses it).
    obj = secret_object()
    Redactor(query=["ref"], body=["card.number"]).object(obj)
    again = json_format.ParseDict(json_format.MessageToDict(obj), pb.Object())
    assert again == obj and not leaks(json_format.MessageToDict(obj))


async def test_redaction_flags_reach_the_settings() -> None:
    from app.cli import build_parser, settings_from_args

    parser, _ = build_parser({"TYK_INSPECTOR_REDACT_QUERY": "ref,sess"})
    args = parser.parse_args(["serve", "--redact-body", "card.number", "--redact-query", "x"])
    settings = settings_from_args(args)
    assert settings.redact_query == ("ref", "sess", "x") and settings.redact_body == ("card.number",)


def test_logging_is_quiet_about_redaction(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        Redactor().event_payload(secret_event())
    assert not caplog.records


async def test_lint_messages_quoting_a_secret_are_scrubbed() -> None:
    async def answer(obj: pb.Object) -> pb.Object:
        # A reply the lint explains by quoting its body: the quote must not carry the secret.
        obj.request.return_overrides.response_code = 401
        obj.request.return_overrides.response_body = json.dumps({"token": secret(40)})
        obj.request.set_headers["X-Api-Key"] = secret(41)
        return obj

    async with plugin_server(answer) as plugin:
        inspector = Inspector(replace(SETTINGS, upstream=plugin.target, capture_log="off"))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                await Client(channel).dispatch(load_object("pre.json"))
            async with httpx.AsyncClient(base_url=inspector.http_url) as http:
                detail = (await http.get("/api/captures/1")).json()
            assert detail["warnings"], "the reply is one the lint explains"
            assert not leaks(detail)
            assert any(REDACTED in w["message"] for w in detail["warnings"])
        finally:
            await inspector.stop()


def test_scrub_replaces_plain_and_escaped_forms() -> None:
    text = 'got {"error": "{&#34;token&#34;:&#34;abc&lt;12&#34;}"} and \\"abc<12\\" and abc<12'
    assert scrub(text, ["abc<12", "no"]) == (
        'got {"error": "{&#34;token&#34;:&#34;[redacted]&#34;}"} and \\"[redacted]\\" and [redacted]'
    )
