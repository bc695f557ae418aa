"""The reply diff names each kind of change in Tyk's terms."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.tyk.diff import diff_objects
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object

Edit = Callable[[pb.Object], None]


def _do(*statements: Callable[[pb.Object], object]) -> Edit:
    def edit(obj: pb.Object) -> None:
        for statement in statements:
            statement(obj)

    return edit


CASES: list[tuple[str, str, Edit, str]] = [
    ("set header", "pre.json", _do(lambda o: o.request.set_headers.update({"X-A": "1"})), "X-A added"),
    ("delete header", "pre.json", _do(lambda o: o.request.delete_headers.append("Accept")), "Accept"),
    ("add param", "pre.json", _do(lambda o: o.request.add_params.update({"p": "1"})), "p added"),
    ("extended param", "pre.json", _do(lambda o: o.request.extended_params.update({"e": "1"})), "e added"),
    ("delete param", "pre.json", _do(lambda o: o.request.delete_params.append("status")), "status"),
    ("URL rewritten", "pre.json", _do(lambda o: setattr(o.request, "url", "/v2/orders")), "url"),
    ("method changed", "pre.json", _do(lambda o: setattr(o.request, "method", "POST")), "method"),
    ("body changed", "post-json-body.json", _do(lambda o: setattr(o.request, "raw_body", b"{}")), "raw_body"),
    ("body string changed", "post-json-body.json", _do(lambda o: setattr(o.request, "body", "{}")), "body"),
    ("request header edited", "pre.json", _do(lambda o: o.request.headers.update({"Accept": "*/*"})), "Accept changed"),
    ("request param edited", "pre.json", _do(lambda o: o.request.params.pop("limit")), "limit removed"),
    ("return override", "pre.json", _do(lambda o: setattr(o.request.return_overrides, "response_code", 418)), "status"),
    (
        "return override",
        "pre.json",
        _do(lambda o: setattr(o.request.return_overrides, "response_body", "no")),
        "response_body",
    ),
    (
        "return override header",
        "pre.json",
        _do(lambda o: o.request.return_overrides.headers.update({"Retry-After": "5"})),
        "Retry-After added",
    ),
    ("session created", "custom-key-check.json", _do(lambda o: setattr(o.session, "rate", 5)), "session"),
    (
        "session changed",
        "post-key-auth.json",
        _do(lambda o: setattr(o.session, "quota_remaining", 1)),
        "quotaRemaining",
    ),
    ("session removed", "post-key-auth.json", _do(lambda o: o.ClearField("session")), "session"),
    ("metadata", "post-key-auth.json", _do(lambda o: o.metadata.update({"plan": "gold"})), "plan added"),
    ("response status", "response-gzip.json", _do(lambda o: setattr(o.response, "status_code", 503)), "status_code"),
    ("response header", "response-gzip.json", _do(lambda o: o.response.headers.pop("Vary")), "Vary removed"),
    (
        "response body changed",
        "response-gzip.json",
        _do(lambda o: setattr(o.response, "raw_body", b"plain")),
        "raw_body",
    ),
    (
        "response multivalue headers",
        "response-gzip.json",
        _do(lambda o: o.response.multivalue_headers.add(key="X-New", values=["1"])),
        "multivalue_headers",
    ),
]


@pytest.mark.parametrize(("kind", "payload", "edit", "what"), CASES, ids=[f"{c[0]}:{c[3]}" for c in CASES])
def test_each_kind_of_change(kind: str, payload: str, edit: Edit, what: str) -> None:
    sent = load_object(payload)
    reply = pb.Object()
    reply.CopyFrom(sent)
    edit(reply)
    changes = diff_objects(sent, reply)
    assert {"kind": kind, "what": what} in [{"kind": c["kind"], "what": c["what"]} for c in changes]
    assert len(changes) == 1, changes  # nothing else is reported


@pytest.mark.parametrize("payload", ["pre.json", "post-key-auth.json", "response-gzip.json"])
def test_an_echo_changes_nothing(payload: str) -> None:
    assert diff_objects(load_object(payload), load_object(payload)) == []
