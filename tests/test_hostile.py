"""Hostile input gets a clear 4xx with a JSON detail, never a 500; the server keeps serving."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.live.broadcast import Broadcaster
from app.server import Inspector
from app.store.buffer import RingBuffer
from app.web import create_app
from app.web.app import SECURITY_HEADERS
from app.web.context import WebContext
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_until, with_settings
from tests.test_stream import open_stream

HEADER = '{"format": "tyk-inspector-export", "version": 1, "captures": ['
EVENT = '{{"kind": "event", "received_at": "{when}", "request": {{"payload": ""}}{extra}}}'


def document(records: str, header: str = HEADER) -> bytes:
    return (header + records + "]}").encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (document("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (
            document(EVENT.format(when="2026-01-01T00:00:00Z", extra=', "duration_ms": ' + "[" * 50_000)),
            "nested too deeply",
        ),
        (document(EVENT.format(when="2026-01-01T00:00:00Z", extra=', "duration_ms": 1e309')), "out of range"),
        (document(EVENT.format(when="2026-01-01T00:00:00Z", extra=', "duration_ms": NaN')), "not a JSON number"),
        (document(EVENT.format(when="9999-12-31T23:59:59.999999-01:00", extra="")), '"received_at" is out of range'),
        (document(EVENT.format(when="2026-01-01T00:00:00Z", extra=', "answered_by": "magic"')), '"answered_by"'),
        (document(EVENT.format(when="2026-01-01T00:00:00Z", extra=', "replay_of": true')), '"replay_of"'),
        (document("", header=HEADER.replace('"version": 1', '"version": true')), "unsupported export version True"),
        (document("", header=HEADER.replace('"version": 1', '"version": 1.0')), "unsupported export version 1.0"),
        (document(EVENT.format(when="2026-01-01T00:00:00Z", extra="") * 2), "expected ',' or ']'"),
        (b"\xff\xfe not utf-8", "not UTF-8"),
    ],
)
async def test_hostile_imports_are_400_and_change_nothing(
    inspector: Inspector, client: Client, http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    await client.dispatch(load_object("pre.json"))
    response = await http.post("/api/import", content=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert [c.id for c in inspector.store.oldest_first()] == [1]
    assert (await http.get("/api/export")).json()["captures"][0]["id"] == 1  # exports still work
    assert (await http.get("/api/captures/1")).status_code == 200


# Header bytes arrive as latin-1: b"\xb2" is "²", which str.isdigit() takes and int() refuses.
@pytest.mark.parametrize("last_event_id", [b"\xb2", b"1\xb3", b"1" * 5000, b"-1", b"12a"])
async def test_a_hostile_last_event_id_is_400(http: httpx.AsyncClient, last_event_id: bytes) -> None:
    response = await http.get("/api/stream", headers={b"Last-Event-ID": last_event_id})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


async def test_an_empty_last_event_id_is_no_resume_point(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    async with open_stream(http, last_event_id="", after=0) as stream:
        await wait_until(lambda: stream.capture_ids() == [1], within=10, what="the capture, as without the header")


async def test_a_replay_post_that_is_not_json_is_422_without_echoing_it(
    client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    for body in (b"to=127.0.0.1:1", b"\xff\xfe\x00 binary"):
        response = await http.post("/api/captures/1/replay", content=body, headers={"Content-Type": "text/plain"})
        assert response.status_code == 422, response.text
        detail: dict[str, Any] = response.json()
        assert detail["detail"].startswith("invalid request: ")
        assert "binary" not in json.dumps(detail) and "127.0.0.1:1" not in json.dumps(detail)


async def test_an_unexpected_error_is_a_json_500_with_the_security_headers() -> None:
    context = WebContext(RingBuffer(10, 1_000_000), Broadcaster(10), TEST_SETTINGS)
    app = create_app(context)

    async def broken() -> None:
        raise RuntimeError("a bug")

    # A route added for the test: every route of the product answers its errors as 4xx.
    assert isinstance(app, FastAPI)
    app.add_api_route("/api/broken", broken)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        response = await http.get("/api/broken")
        assert response.status_code == 500
        assert response.json() == {
            "detail": "internal error: the inspector could not answer this request (see its log)"
        }
        for name, value in SECURITY_HEADERS:
            assert response.headers[name.decode()] == value.decode()
        assert (await http.get("/api/stats")).status_code == 200  # and it serves on


DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_EVENT = '{"message": {"Meta": {"Path": "/deep"}, "Type": "AuthFailure"}, "x": ' + DEEP_JSON + "}"


@pytest.mark.parametrize("payload", [DEEP_JSON, DEEP_EVENT])
async def test_an_event_nested_too_deeply_is_answered_and_recorded(
    inspector: Inspector, client: Client, http: httpx.AsyncClient, payload: str
) -> None:
    # The gateway's event call is answered whatever the payload; the JSON parsers give up, the server does not.
    await client.event(payload)
    assert [c.kind for c in inspector.store.oldest_first()] == ["event"]
    for path in ("/api/captures", "/api/captures/1", "/api/captures/1/export", "/api/export", "/api/journeys"):
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text[:200])
    assert (await http.get("/api/captures", params={"q": "deep"})).status_code == 200
    assert (await http.get("/api/captures/1/copy", params={"as": "send"})).status_code == 200


@pytest.mark.parametrize("settings", [with_settings(redact=False)()], ids=["no-redact"])
async def test_an_event_nested_too_deeply_shows_without_redaction(
    client: Client, http: httpx.AsyncClient, settings: Settings
) -> None:
    await client.event(DEEP_EVENT)
    response = await http.get("/api/captures/1")
    assert response.status_code == 200, response.text[:200]
    assert response.json()["event"]["payload_error"] == "payload is JSON nested too deeply to read"


@pytest.mark.parametrize("settings", [with_settings(redact=False)()], ids=["no-redact"])
async def test_a_body_nested_too_deeply_shows_without_redaction(
    client: Client, http: httpx.AsyncClient, settings: Settings
) -> None:
    obj = load_object("pre.json")
    obj.request.raw_body = DEEP_JSON.encode()
    obj.request.headers["Content-Type"] = "application/json"
    await client.dispatch(obj)
    for path in ("/api/captures", "/api/captures/1", "/api/captures?q=warnings", "/api/export?format=har"):
        response = await http.get(path)
        assert response.status_code == 200, (path, response.text[:200])
