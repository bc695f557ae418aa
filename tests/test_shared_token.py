"""auth-shared-token: one CustomKeyCheck token returned for different credentials, found across captures."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.capture.record import Capture
from app.journeys.tokens import MAX_TOKENS, SharedTokens
from app.store.buffer import RingBuffer
from app.tyk.outcome import Gateway
from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object
from tests.plugins import inspector_in_front, plugin_server


def _allow(token_of: Any) -> Any:
    async def plugin(obj: pb.Object) -> pb.Object:
        obj.session.rate, obj.session.per = 100, 1
        obj.session.metadata["token"] = token_of(obj.request.headers.get("Authorization", ""))
        return obj

    return plugin


constant_token = _allow(lambda credential: "mytoken")
derived_token = _allow(lambda credential: "user-" + credential.rsplit(" ", 1)[-1])


@asynccontextmanager
async def proxied(plugin: Any) -> AsyncIterator[tuple[Client, httpx.AsyncClient]]:
    async with plugin_server(plugin) as server, inspector_in_front(server.target) as clients:
        yield clients


def auth_call(authorization: str) -> pb.Object:
    obj = load_object("custom-key-check.json")
    obj.request.headers["Authorization"] = authorization
    return obj


async def codes(http: httpx.AsyncClient, capture_id: int) -> list[str]:
    response = await http.get(f"/api/captures/{capture_id}")
    assert response.status_code == 200
    return [w["code"] for w in response.json()["warnings"]]


async def test_a_constant_token_for_two_credentials_is_warned_on_both_captures() -> None:
    async with proxied(constant_token) as (client, http):
        await client.dispatch(auth_call("Bearer alice-key"))
        assert "auth-shared-token" not in await codes(http, 1)  # one credential so far
        await client.dispatch(auth_call("Bearer bob-key"))
        assert "auth-shared-token" in await codes(http, 2)
        assert "auth-shared-token" in await codes(http, 1)  # the cached detail is rebuilt
        detail = (await http.get("/api/captures/2")).json()
        [warning] = [w for w in detail["warnings"] if w["code"] == "auth-shared-token"]
        assert "shares one session, rate limit and quota" in warning["message"]
        assert "id_extractor" in warning["message"] and "2 different" in warning["message"]
        assert "mytoken" not in warning["message"] and "alice" not in warning["message"]


async def test_the_same_credential_twice_and_tokens_per_credential_are_silent() -> None:
    async with proxied(constant_token) as (client, http):
        await client.dispatch(auth_call("Bearer alice-key"))
        await client.dispatch(auth_call("Bearer alice-key"))
        assert "auth-shared-token" not in await codes(http, 1)
        assert "auth-shared-token" not in await codes(http, 2)
    async with proxied(derived_token) as (client, http):
        await client.dispatch(auth_call("Bearer alice-key"))
        await client.dispatch(auth_call("Bearer bob-key"))
        assert await codes(http, 1) == [] and await codes(http, 2) == []


async def test_clear_forgets_the_tokens() -> None:
    async with proxied(constant_token) as (client, http):
        await client.dispatch(auth_call("Bearer alice-key"))
        assert (await http.delete("/api/captures")).status_code in (200, 204)
        await client.dispatch(auth_call("Bearer bob-key"))
        assert "auth-shared-token" not in await codes(http, 2)


# --- the index on its own --------------------------------------------------------------------------


def _capture(authorization: str, token: str, **headers: str) -> Capture:
    sent = auth_call(authorization)
    sent.request.headers.update(headers)
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.session.metadata["token"] = token
    return Capture("dispatch", sent.SerializeToString(), reply.SerializeToString(), hook_type="CustomKeyCheck")


def _jwt(claims: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"Bearer eyJhbGciOiJIUzI1NiJ9.{body}.sig"


async def _shared(store: RingBuffer, index: SharedTokens, *captures: Capture) -> list[bool]:
    for capture in captures:
        store.add(capture)
    await index.catch_up()
    return [bool(index.warnings(c, Gateway())) for c in captures]


async def test_a_callers_renewed_jwts_are_one_credential_and_other_subjects_are_not() -> None:
    store = RingBuffer(100, 1 << 24)
    index = SharedTokens(store)
    same_user = await _shared(
        store, index, _capture(_jwt({"sub": "u1", "iat": 1}), "t"), _capture(_jwt({"sub": "u1", "iat": 2}), "t")
    )
    assert same_user == [False, False]
    assert await _shared(store, index, _capture(_jwt({"sub": "u2"}), "t")) == [True]


async def test_per_request_signatures_and_cookies_do_not_make_new_credentials() -> None:
    store = RingBuffer(100, 1 << 24)
    index = SharedTokens(store)
    first = _capture('Signature keyId="k1",signature="aaa"', "t", Cookie="a=1", **{"X-Signature": "1"})
    second = _capture('Signature keyId="k1",signature="bbb"', "t", Cookie="a=2", **{"X-Signature": "2"})
    assert await _shared(store, index, first, second) == [False, False]
    assert await _shared(store, index, _capture("Bearer x", "t", **{"X-Api-Key": "k"})) == [True]


async def test_eviction_an_id_extractor_and_the_bound() -> None:
    store = RingBuffer(2, 1 << 24)
    index = SharedTokens(store)
    alice, bob = _capture("Bearer alice", "t"), _capture("Bearer bob", "t")
    assert await _shared(store, index, alice, bob) == [True, True]
    assert not index.warnings(bob, Gateway(id_extractor=True))  # stored under the extractor's key
    await _shared(store, index, _capture("Bearer carol", "other"), _capture("Bearer dave", "other2"))
    assert len(index) == 2  # alice's and bob's token went with their captures
    assert not index.warnings(bob, Gateway())

    big = RingBuffer(MAX_TOKENS + 10, 1 << 30)
    bounded = SharedTokens(big)
    await _shared(big, bounded, *(_capture(f"Bearer k{i}", f"t{i}") for i in range(MAX_TOKENS + 10)))
    assert len(bounded) == MAX_TOKENS


async def test_refused_replies_do_not_count() -> None:
    store = RingBuffer(100, 1 << 24)
    index = SharedTokens(store)
    denied = _capture("Bearer bob", "t")
    reply = pb.Object.FromString(denied.reply or b"")
    reply.request.return_overrides.response_code = 403
    denied.reply = reply.SerializeToString()
    assert await _shared(store, index, _capture("Bearer alice", "t"), denied) == [False, False]
