"""Conformance with Tyk Gateway's own tests (coprocess/grpc/*_test.go, gateway/coprocess_test.go).

Each scenario builds the Object the gateway sends, answers it as the test's plugin does, and feeds
the reply to the outcome model: the outcome is what the gateway's test expects, and the lint is
silent, because every one of these replies is correct. Then real plugin servers built from our
protos stand behind `--upstream`: a correct reply gets no warning, and a pass-through that
re-serializes the Object is not "modified".
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest

from app.tyk.lint import lint_reply
from app.tyk.outcome import Gateway, Outcome, outcome_of
from app.tyk.version import TykVersion
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb
from tests.plugins import inspector_in_front, plugin_server
from tests.test_diff import re_serialized
from tests.test_outcome import headers_of

NOW = 1_800_000_000.0
# The test gateway: enable_coprocess, grpc_recv_max_size = grpc_send_max_size = 100,000,000.
TEST_GATEWAY = Gateway(recv_max_size=100_000_000, send_max_size=100_000_000, now=NOW)
API_ID, ORG_ID = "1", "default"


def gateway_object(hook: int, name: str, *, body: bytes = b"", content_type: str = "application/json",
                   session: bool = False) -> pb.Object:  # fmt: skip
    """An Object as the gateway's BuildObject fills it."""
    obj = pb.Object(hook_type=hook, hook_name=name)  # type: ignore[arg-type]
    request = obj.request
    request.headers.update({"Host": "127.0.0.1:8080", "User-Agent": "Go-http-client/1.1"})
    if body:
        request.headers.update({"Content-Type": content_type, "Content-Length": str(len(body))})
        request.raw_body = body
        with contextlib.suppress(UnicodeDecodeError):
            request.body = body.decode("utf-8")  # only valid UTF-8 becomes `body`
    request.url = "/test/"
    request.request_uri = "/test/"
    request.method = "POST" if body else "GET"
    request.scheme = "http"
    request.return_overrides.response_code = -1
    obj.spec.update({"OrgID": ORG_ID, "APIID": API_ID, "bundle_hash": "d41d8cd98f00b204e9800998ecf8427e"})
    if session:
        obj.session.rate, obj.session.per, obj.session.org_id = 1000, 60, ORG_ID
        obj.session.basic_auth_data.SetInParent()
        obj.session.jwt_data.SetInParent()
        obj.session.monitor.SetInParent()
        # Non-string session metadata arrives JSON-encoded.
        obj.session.metadata.update({"testkey": json.dumps({"nestedkey": "nestedvalue"}), "testkey2": "testvalue"})
        obj.metadata.update(obj.session.metadata)
    return obj


def response_object(name: str, upstream_headers: list[tuple[str, list[str]]], body: bytes = b"{}") -> pb.Object:
    """A Response hook's Object: the upstream response with headers in both forms."""
    obj = gateway_object(common.Response, name, session=True)
    response = obj.response
    response.status_code = 200
    response.raw_body = body
    response.body = body.decode()
    for key, values in upstream_headers:
        response.headers[key] = values[0]
        response.multivalue_headers.add(key=key, values=values)
    return obj


def answer(sent: pb.Object) -> pb.Object:
    reply = pb.Object()
    reply.CopyFrom(sent)
    return reply


def judge(sent: pb.Object, reply: pb.Object | None, gateway: Gateway = TEST_GATEWAY, size: int = 0) -> Outcome:
    """The outcome, after checking the lint is silent on this correct reply."""
    if reply is not None:
        reply_size = size or reply.ByteSize()
        assert lint_reply(sent, reply, gateway, reply_size=reply_size) == []
    return outcome_of(sent, reply, gateway, sent_size=size or sent.ByteSize(), reply_size=size or 0)


# --- coprocess/grpc: the dispatcher's hooks -----------------------------------------------------


def test_pre_hook_set_headers_reaches_the_upstream() -> None:
    """testPreHook1: `Testheader: testvalue` in set_headers; the upstream echo shows it."""
    sent = gateway_object(common.Pre, "testPreHook1")
    reply = answer(sent)
    reply.request.set_headers["Testheader"] = "testvalue"
    outcome = judge(sent, reply)
    assert outcome.result == "continue"
    assert headers_of(outcome)["Testheader"] == ["testvalue"]


def test_pre_hook_utf8_and_multipart_bodies() -> None:
    """testPreHook2: a JSON body comes as body and raw_body; a binary multipart one as raw_body only."""
    text = gateway_object(common.Pre, "testPreHook2", body=b'{"a": "caf\xc3\xa9"}')
    assert text.request.body and text.request.raw_body
    binary_body = b"--b\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\x01\r\n--b--\r\n"
    binary = gateway_object(
        common.Pre, "testPreHook2", body=binary_body, content_type="multipart/form-data; boundary=b"
    )
    assert not binary.request.body and binary.request.raw_body
    for sent in (text, binary):
        outcome = judge(sent, answer(sent))
        assert outcome.upstream_request is not None
        assert outcome.upstream_request.body_size == len(sent.request.raw_body)
        assert headers_of(outcome)["Content-Length"] == [str(len(sent.request.raw_body))]


def test_post_hook_nested_metadata_is_json_encoded_and_both_maps_agree() -> None:
    """testPostHook1: session.metadata.testkey is the JSON string; Object.metadata mirrors the session's."""
    sent = gateway_object(common.Post, "testPostHook1", session=True)
    assert json.loads(sent.session.metadata["testkey"]) == {"nestedkey": "nestedvalue"}
    assert sent.session.metadata["testkey2"] == "testvalue"
    assert dict(sent.metadata) == dict(sent.session.metadata)
    outcome = judge(sent, answer(sent))
    assert outcome.status == "continue" and outcome.notes == ()


def test_post_hook_20_mb_passes_and_150_mb_fails_with_500() -> None:
    """testPostHook1 with large bodies against the test gateway's 100,000,000-byte limits."""
    sent = gateway_object(common.Post, "testPostHook1", body=b"x" * 20_000_000, session=True)
    outcome = judge(sent, answer(sent))
    assert outcome.status == "continue"
    assert outcome.upstream_request is not None and outcome.upstream_request.body_size == 20_000_000
    # 150 MB is judged by its size (the Object itself would cost the test 450 MB of memory).
    small = gateway_object(common.Post, "testPostHook1", session=True)
    outcome = outcome_of(small, answer(small), TEST_GATEWAY, sent_size=150_000_000, reply_size=150_000_000)
    assert outcome.status == 500 and outcome.client_response is not None
    assert outcome.client_response.body == '{\n    "error": "Middleware error"\n}'


def test_response_hook_raw_body_newbody_with_content_length_7() -> None:
    """testResponseHook: response.raw_body = "newbody"; the client gets it with Content-Length: 7."""
    sent = response_object("testResponseHook", [("Content-Type", ["application/json"]), ("Content-Length", ["2"])])
    reply = answer(sent)
    reply.response.raw_body = b"newbody"
    outcome = judge(sent, reply)
    assert outcome.client_response is not None and outcome.client_response.status == 200
    assert outcome.client_response.body_size == 7 and outcome.client_response.body_from == "reply.response.rawBody"
    assert headers_of(outcome)["Content-Length"] == ["7"]


@pytest.mark.parametrize(("config_data", "expected"), [(True, "true"), (False, "false")])
def test_response_hook_config_data_header_added_to_both_maps(config_data: bool, expected: str) -> None:
    """testConfigDataResponseHook: x-config-data true|false in headers and multivalue_headers."""
    sent = response_object("testConfigDataResponseHook", [("Content-Type", ["application/json"])])
    if config_data:
        sent.spec["config_data"] = json.dumps({"foo": "bar"})
    reply = answer(sent)
    value = "true" if "config_data" in reply.spec else "false"
    reply.response.headers["x-config-data"] = value
    reply.response.multivalue_headers.add(key="x-config-data", values=[value])
    outcome = judge(sent, reply)
    assert headers_of(outcome)["X-Config-Data"] == [expected]


def auth_hook(sent: pb.Object) -> pb.Object:
    """testAuthHook1: the Authorization header is the token; "abc" gets a session, anything else a 400."""
    reply = answer(sent)
    token = reply.request.headers.get("Authorization", "")
    reply.metadata["token"] = token
    if token != "abc":
        reply.request.return_overrides.response_code = 400
        reply.request.return_overrides.response_error = "Authorization field is not abc"
        return reply
    reply.session.rate, reply.session.per = 100, 1
    reply.session.id_extractor_deadline = int(NOW) + 2
    reply.session.metadata["sessionMetaKey"] = "customAuthSessionMetaValue"
    return reply


def _auth_call(authorization: str | None) -> pb.Object:
    sent = gateway_object(common.CustomKeyCheck, "testAuthHook1")
    if authorization is not None:
        sent.request.headers["Authorization"] = authorization
    return sent


@pytest.mark.parametrize("id_extractor", [False, True])
def test_auth_hook_abc_rate_100_deadline_now_plus_2(id_extractor: bool) -> None:
    sent = _auth_call("abc")
    outcome = judge(sent, auth_hook(sent), replace(TEST_GATEWAY, id_extractor=id_extractor))
    assert outcome.result == "continue" and outcome.auth is not None and outcome.auth.allowed
    assert outcome.auth.token == "abc"
    assert dict(outcome.auth.metadata) == {"token": "abc", "sessionMetaKey": "customAuthSessionMetaValue"}
    assert outcome.auth.cache_until == int(NOW) + 2
    if id_extractor:
        # Stored under the extractor's key; for 2 s the same credential skips the plugin.
        assert outcome.auth.session_key is None and "skip the plugin" in outcome.auth.caching
    else:
        assert outcome.auth.session_key == "abc"  # /tyk/keys/abc
        assert "only counts with an id_extractor" in outcome.auth.caching


def test_auth_hook_refuses_any_other_token_with_its_400() -> None:
    sent = _auth_call("def")
    outcome = judge(sent, auth_hook(sent))
    assert outcome.status == 400 and outcome.client_response is not None
    assert outcome.client_response.body == '{\n    "error": "Authorization field is not abc"\n}'
    assert outcome.client_response.events == ("AuthFailure",)


def test_ignore_test_a_bad_header_is_refused_403() -> None:
    """TestGRPCIgnore: with a bad header the plugin gives no session, and the gateway answers 403.

    (A missing header is answered 400 by the id extractor and an ignored path skips the hook:
    neither reaches the plugin, so neither is a capture.)
    """
    sent = _auth_call("bad")
    reply = answer(sent)  # no session for an unknown credential
    outcome = outcome_of(sent, reply, TEST_GATEWAY)
    assert outcome.status == 403 and outcome.auth is not None and "no session" in outcome.auth.reason


def test_a_plugin_error_in_the_auth_hook_is_403_and_elsewhere_500() -> None:
    assert outcome_of(_auth_call("abc"), None, TEST_GATEWAY).status == 403
    assert outcome_of(gateway_object(common.Post, "testPostHook1"), None, TEST_GATEWAY).status == 500


# --- gateway/coprocess_test.go: TestSyncHeadersAndMultiValueHeaders ------------------------------

COOKIES = ["session=1", "theme=dark", "lang=en"]
UPSTREAM = [("Content-Type", ["application/json"]), ("Set-Cookie", COOKIES), ("X-Extra", ["a", "b"])]


def _sync_case(edit: str) -> pb.Object:
    reply = answer(response_object("headerSync", UPSTREAM))
    headers = reply.response.headers
    if edit == "add":
        headers["X-Added"] = "new"
    elif edit == "remove":
        del headers["Content-Type"]
    elif edit == "update":
        headers["Content-Type"] = "text/plain"
    elif edit == "keep extra values":
        headers["X-Other"] = "1"  # any change to headers; X-Extra keeps both values
    elif edit == "set-cookie":
        headers["Set-Cookie"] = "session=2"
    elif edit == "multivalue only":
        for header in reply.response.multivalue_headers:  # headers unchanged: used as returned
            if header.key == "Set-Cookie":
                header.values[2] = "lang=fr"
    return reply


SYNC_CASES = [
    ("add", {"X-Added": ["new"], "Set-Cookie": COOKIES, "Content-Type": ["application/json"]}),
    ("remove", {"Set-Cookie": COOKIES, "X-Extra": ["a", "b"]}),
    ("update", {"Content-Type": ["text/plain"], "Set-Cookie": COOKIES}),
    ("keep extra values", {"X-Extra": ["a", "b"], "X-Other": ["1"], "Set-Cookie": COOKIES}),
    ("set-cookie", {"Set-Cookie": ["session=2", "theme=dark", "lang=en"]}),
    ("multivalue only", {"Set-Cookie": ["session=1", "theme=dark", "lang=fr"], "X-Extra": ["a", "b"]}),
]


@pytest.mark.parametrize(("edit", "expected"), SYNC_CASES, ids=[c[0] for c in SYNC_CASES])
def test_header_sync(edit: str, expected: dict[str, list[str]]) -> None:
    sent = response_object("headerSync", UPSTREAM)
    outcome = judge(sent, _sync_case(edit))
    headers = headers_of(outcome)
    for key, values in expected.items():
        assert headers[key] == values
    if edit == "remove":
        # The upstream's Content-Type is gone from the header list; net/http sniffs one from the body
        # (seen with the real gateway: docs/conformance.md).
        assert headers["Content-Type"] == ["text/plain; charset=utf-8"]


def test_header_sync_before_the_fix_collapses_the_cookies() -> None:
    """Before 5.8.0 / 5.3.11 (TT-13440) the same reply loses two of the three cookies, and the lint says so."""
    sent = response_object("headerSync", UPSTREAM)
    old = replace(TEST_GATEWAY, version=TykVersion.parse("5.3.10"))
    reply = _sync_case("set-cookie")
    assert headers_of(outcome_of(sent, reply, old))["Set-Cookie"] == ["session=2"]
    assert [w["code"] for w in lint_reply(sent, reply, old)] == ["multivalue-collapsed"]


# --- real plugin servers behind --upstream ------------------------------------------------------


async def tyk_test_dispatcher(obj: pb.Object) -> pb.Object:
    """Tyk's own test dispatcher, in Python: routes on hook_name, returns the received Object modified."""
    if obj.hook_name == "testPreHook1":
        obj.request.set_headers["Testheader"] = "testvalue"
    elif obj.hook_name == "testResponseHook":
        obj.response.raw_body = b"newbody"
    elif obj.hook_name == "testAuthHook1":
        return auth_hook(obj)
    return obj  # testPostHook1 and others: parsed and re-serialized, unchanged


async def test_a_real_plugin_server_behind_upstream() -> None:
    """Correct replies get no warning; a pass-through that re-serializes the Object is not modified."""
    calls = [
        gateway_object(common.Pre, "testPreHook1"),
        gateway_object(common.Post, "testPostHook1", body=b'{"x": 1}', session=True),
        response_object("testResponseHook", [("Content-Type", ["application/json"]), ("Set-Cookie", COOKIES)]),
        _auth_call("abc"),
    ]
    async with plugin_server(tyk_test_dispatcher) as plugin, inspector_in_front(plugin.target) as (client, http):
        replies = []
        for sent in calls:
            # Bytes in another field order, as another serializer (the gateway's Go) may write them.
            replies.append(await client.dispatch_bytes(re_serialized(sent)))
        assert replies[1] != re_serialized(calls[1])  # the plugin re-serialized: other bytes, same message
        assert pb.Object.FromString(replies[1]) == calls[1]
        # Each call is recorded before its reply goes back, so all four are listed now.
        items = (await http.get("/api/captures", params={"after": 0})).json()["items"]
        assert [c["answered_by"] for c in items] == ["upstream"] * 4
        assert [c["warnings"] for c in items] == [[], [], [], []]
        assert [c["modified"] for c in items] == [True, False, True, True]
        assert [c["outcome_status"] for c in items] == ["continue", "continue", 200, "continue"]
        # The pass-through came back as other bytes (re-serialized), and still changed nothing.
        post = (await http.get(f"/api/captures/{items[1]['id']}")).json()
        assert all(change["ignored"] for change in post["changes"])
        response = (await http.get(f"/api/captures/{items[2]['id']}")).json()["outcome"]["client_response"]
        assert ["Content-Length", "7"] in response["headers"]
        assert [h for h in response["headers"] if h[0] == "Set-Cookie"] == [["Set-Cookie", c] for c in COOKIES]
