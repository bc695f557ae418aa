"""The reply diff names each kind of change in Tyk's terms, and marks the ones the gateway ignores."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.tyk.diff import diff_objects, has_effect
from app.tyk.outcome import outcome_of
from app.tyk.version import TykVersion
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object

Edit = Callable[[pb.Object], None]


def _do(*statements: Callable[[pb.Object], object]) -> Edit:
    def edit(obj: pb.Object) -> None:
        for statement in statements:
            statement(obj)

    return edit


def _ro(name: str, value: object) -> Callable[[pb.Object], object]:
    return lambda o: setattr(o.request.return_overrides, name, value)


# kind, payload, edit, what, ignored (None: the gateway acts on it; else a word of the reason)
CASES: list[tuple[str, str, Edit, str, str | None]] = [
    ("set header", "pre.json", _do(lambda o: o.request.set_headers.update({"X-A": "1"})), "X-A added", None),
    ("set header", "pre.json", _do(lambda o: o.request.set_headers.update({"host": "x"})), "host added", "Host"),
    ("delete header", "pre.json", _do(lambda o: o.request.delete_headers.append("Accept")), "Accept", None),
    ("add param", "pre.json", _do(lambda o: o.request.add_params.update({"p": "1"})), "p added", None),
    ("extended param", "pre.json", _do(lambda o: o.request.extended_params.update({"e": "1"})), "e added", "never"),
    ("delete param", "pre.json", _do(lambda o: o.request.delete_params.append("status")), "status", None),
    (
        "URL rewritten",
        "pre.json",
        _do(lambda o: setattr(o.request, "url", "/v2/orders?status=open&limit=20")),
        "url",
        None,
    ),
    (
        "URL query edited",
        "pre.json",
        _do(lambda o: setattr(o.request, "url", "/orders-api/v1/orders?limit=5")),
        "url query",
        "query",
    ),
    ("method changed", "pre.json", _do(lambda o: setattr(o.request, "method", "POST")), "method", None),
    ("body changed", "post-json-body.json", _do(lambda o: setattr(o.request, "raw_body", b"{}")), "raw_body", None),
    ("body string changed", "post-json-body.json", _do(lambda o: setattr(o.request, "body", "{}")), "body", "2.8"),
    (
        "request header edited",
        "pre.json",
        _do(lambda o: o.request.headers.update({"Accept": "*/*"})),
        "Accept changed",
        "set_headers",
    ),
    ("request param edited", "pre.json", _do(lambda o: o.request.params.pop("limit")), "limit removed", "add_params"),
    ("return override", "pre.json", _do(_ro("response_code", 418)), "status", None),
    ("return override", "pre.json", _do(_ro("response_body", "no")), "response_body", "response_code"),
    (
        "return override header",
        "pre.json",
        _do(lambda o: o.request.return_overrides.headers.update({"R": "5"})),
        "R added",
        "response_code",
    ),
    ("session created", "custom-key-check.json", _do(lambda o: setattr(o.session, "rate", 5)), "session", None),
    (
        "session changed",
        "post-key-auth.json",
        _do(lambda o: setattr(o.session, "quota_remaining", 1)),
        "quotaRemaining",
        "CustomKeyCheck",
    ),
    ("session removed", "post-key-auth.json", _do(lambda o: o.ClearField("session")), "session", "CustomKeyCheck"),
    (
        "metadata",
        "post-key-auth.json",
        _do(lambda o: o.metadata.update({"plan": "gold"})),
        "plan added",
        "CustomKeyCheck",
    ),
    ("metadata", "custom-key-check.json", _do(lambda o: o.metadata.update({"token": "t"})), "token added", None),
    (
        "response status",
        "response-gzip.json",
        _do(lambda o: setattr(o.response, "status_code", 503)),
        "status_code",
        None,
    ),
    ("response header", "response-gzip.json", _do(lambda o: o.response.headers.pop("Vary")), "Vary removed", None),
    (
        "response body changed",
        "response-gzip.json",
        _do(lambda o: setattr(o.response, "raw_body", b"plain")),
        "raw_body",
        None,
    ),
    (
        "response body string changed",
        "response-gzip.json",
        _do(lambda o: setattr(o.response, "body", "x")),
        "body",
        "raw_body",
    ),
    (
        "response multivalue headers",
        "response-gzip.json",
        _do(lambda o: o.response.multivalue_headers.add(key="X-New", values=["1"])),
        "multivalue_headers",
        None,
    ),
    ("return override", "response-gzip.json", _do(_ro("response_code", 401)), "status", "Response hook"),
    ("session changed", "response-gzip.json", _do(lambda o: setattr(o.session, "rate", 1)), "rate", "Response hook"),
    ("hook changed", "pre.json", _do(lambda o: setattr(o, "hook_name", "Other")), "hook", "knows"),
]


@pytest.mark.parametrize(
    ("kind", "payload", "edit", "what", "ignored"), CASES, ids=[f"{c[0]}:{c[3]}:{c[1]}" for c in CASES]
)
def test_each_kind_of_change(kind: str, payload: str, edit: Edit, what: str, ignored: str | None) -> None:
    sent = load_object(payload)
    reply = pb.Object()
    reply.CopyFrom(sent)
    edit(reply)
    changes = diff_objects(sent, reply)
    found = [c for c in changes if c["kind"] == kind and c["what"] == what]
    assert len(found) == 1 and len(changes) == 1, changes  # that change and nothing else
    assert found[0]["ignored"] is (ignored is not None)
    if ignored is not None:
        assert ignored in found[0]["why"]
    assert has_effect(changes) is (ignored is None)


@pytest.mark.parametrize("payload", ["pre.json", "post-key-auth.json", "response-gzip.json", "custom-key-check.json"])
def test_an_echo_changes_nothing(payload: str) -> None:
    assert diff_objects(load_object(payload), load_object(payload)) == []


def re_serialized(obj: pb.Object) -> bytes:
    """Other bytes for the same message: fields in reverse order, a default value written out first."""
    parts = []
    for descriptor, _ in obj.ListFields():
        single = pb.Object()
        single.CopyFrom(obj)
        for other, _ in obj.ListFields():
            if other.name != descriptor.name:
                single.ClearField(other.name)
        parts.append(single.SerializeToString())
    return b"\x12\x00" + b"".join(reversed(parts))  # hook_name "" first, then the real fields


def test_a_re_serialized_object_is_unchanged() -> None:
    sent = load_object("response-gzip.json")
    wire = re_serialized(sent)
    rebuilt = pb.Object.FromString(wire)
    assert wire != sent.SerializeToString()
    assert diff_objects(sent, rebuilt) == []


def test_override_fields_count_once_a_response_code_is_set() -> None:
    sent = load_object("pre.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.request.return_overrides.response_code = 200
    reply.request.return_overrides.response_body = "no"
    reply.request.return_overrides.response_error = "err"
    changes = {c["what"]: c for c in diff_objects(sent, reply)}
    assert not changes["status"]["ignored"] and not changes["response_error"]["ignored"]
    assert changes["response_body"]["ignored"] and "response_error" in changes["response_body"]["why"]


def test_response_code_minus_one_to_zero_is_no_change() -> None:
    sent = load_object("pre.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.request.return_overrides.response_code = 0
    assert sent.request.return_overrides.response_code == -1
    assert diff_objects(sent, reply) == []


def test_header_edits_that_leave_the_client_headers_alone_are_ignored() -> None:
    """Editing multivalue_headers while headers is unchanged matters; the same edit mirrored in both is one effect."""
    sent = load_object("response-gzip.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.response.headers["X-New"] = "1"
    reply.response.multivalue_headers.add(key="X-New", values=["1"])
    changes = diff_objects(sent, reply)
    assert {(c["kind"], c["ignored"]) for c in changes} == {
        ("response header", False),
        ("response multivalue headers", False),
    }


def test_old_gateways_collapse_values_so_the_diff_follows_the_version() -> None:
    sent = load_object("response-gzip.json")
    sent.response.multivalue_headers.add(key="Set-Cookie", values=["a=1", "b=2"])
    reply = pb.Object()
    reply.CopyFrom(sent)
    # Changing only the second value is invisible once the gateway collapses values to headers' one.
    for header in reply.response.multivalue_headers:
        if header.key == "Set-Cookie" and len(header.values) == 2:
            header.values[1] = "b=3"
    reply.response.headers["X-Touch"] = "1"
    reply.response.multivalue_headers.add(key="X-Touch", values=["1"])
    latest = {c["kind"]: c["ignored"] for c in diff_objects(sent, reply)}
    assert latest["response multivalue headers"] is False
    old = diff_objects(sent, reply, TykVersion.parse("5.3.0"))
    assert any(not c["ignored"] for c in old)  # X-Touch still reaches the client


def test_a_header_removed_from_multivalue_only_while_headers_changed_comes_back() -> None:
    sent = load_object("response-gzip.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.response.headers["X-New"] = "1"
    kept = [h for h in reply.response.multivalue_headers if h.key != "Vary"]
    del reply.response.multivalue_headers[:]
    reply.response.multivalue_headers.extend(kept)
    outcome = outcome_of(sent, reply)
    assert outcome.client_response is not None and ("Vary", "Accept-Encoding") in outcome.client_response.headers
    multi = [c for c in diff_objects(sent, reply) if c["what"] == "multivalue_headers"]
    assert multi and multi[0]["ignored"] and "Vary come back" in multi[0]["why"]
