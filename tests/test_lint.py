"""Each reply-lint rule, both ways: a reply that triggers it, and the correct form that keeps it silent."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from app.tyk.lint import RULES, lint_reply, undecodable_reply
from app.tyk.outcome import Gateway
from app.tyk.version import TykVersion
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object

Edit = Callable[[pb.Object], object]
NOW = 1_800_000_000.0
OLD = Gateway(version=TykVersion.parse("5.3.0"), now=NOW)
LATEST = Gateway(now=NOW)


def _do(*edits: Edit) -> Edit:
    def edit(obj: pb.Object) -> None:
        for one in edits:
            one(obj)

    return edit


def _set(path: str, value: object) -> Edit:
    def edit(obj: pb.Object) -> None:
        *parents, name = path.split(".")
        target = obj
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)

    return edit


def _no_change(obj: pb.Object) -> None:
    pass


def _session(token: str = "t") -> Edit:
    def edit(obj: pb.Object) -> None:
        obj.session.rate = 1
        if token:
            obj.metadata["token"] = token

    return edit


def _api_id(obj: pb.Object) -> str:
    return obj.spec["APIID"]


def _multivalue(key: str) -> Edit:
    def edit(obj: pb.Object) -> None:
        kept = [h for h in obj.response.multivalue_headers if h.key != key]
        del obj.response.multivalue_headers[:]
        obj.response.multivalue_headers.extend(kept)

    return edit


def _second_cookie(obj: pb.Object) -> None:
    obj.response.headers["Set-Cookie"] = "sid=new"


def _first_cookie_in_multivalue(obj: pb.Object) -> None:
    for header in obj.response.multivalue_headers:
        if header.key == "Set-Cookie":
            header.values[0] = "sid=new"


def _rewrite_target(obj: pb.Object) -> None:
    obj.request.url = "http://internal.example/v2/orders?x=1"


def _drop_multivalue(key: str) -> Edit:
    def edit(obj: pb.Object) -> None:
        kept = [h for h in obj.response.multivalue_headers if h.key != key]
        del obj.response.multivalue_headers[:]
        obj.response.multivalue_headers.extend(kept)

    return edit


def _add_header(key: str, value: str) -> Edit:
    def edit(obj: pb.Object) -> None:
        obj.response.headers[key] = value
        obj.response.multivalue_headers.add(key=key, values=[value])

    return edit


H = "request.headers"
CASES: list[tuple[str, str, Edit, Edit, Gateway, Edit]] = [
    # code, payload, trigger, harmless (the correct form), gateway, a setup applied to what the gateway sent
    ("request-missing", "pre.json", lambda o: o.ClearField("request"), _no_change, LATEST, _no_change),
    ("return-overrides-missing", "pre.json", lambda o: o.request.ClearField("return_overrides"),
     _set("request.return_overrides.response_code", 0), LATEST, _no_change),
    ("url-invalid", "pre.json", _set("request.url", ""), _set("request.url", "tyk://other-api/x"), LATEST, _no_change),
    ("body-ignored", "post-json-body.json", _set("request.body", "{}"),
     _do(_set("request.body", "{}"), _set("request.raw_body", b"{}")), LATEST, _no_change),
    ("body-emptied", "post-json-body.json", _set("request.raw_body", b""), _no_change, LATEST, _no_change),
    ("headers-edited", "pre.json", lambda o: o.request.headers.update({"X-A": "1"}),
     lambda o: (o.request.headers.update({"X-A": "1"}), o.request.set_headers.update({"X-A": "1"})), LATEST,
     _no_change),
    ("params-edited", "pre.json", lambda o: o.request.params.update({"limit": "9"}),
     lambda o: o.request.add_params.update({"limit": "9"}), LATEST, _no_change),
    ("extended-params", "pre.json", lambda o: o.request.extended_params.update({"x": "1"}),
     lambda o: o.request.add_params.update({"x": "1"}), LATEST, _no_change),
    ("params-lost-in-rewrite", "pre.json", lambda o: o.request.add_params.update({"x": "1"}),
     _set("request.url", "http://internal.example/v2/orders?x=1&y=2"), LATEST, _rewrite_target),
    ("url-query-ignored", "pre.json", _set("request.url", "/orders-api/v1/orders?limit=5"),
     _do(_set("request.url", "/orders-api/v1/orders?limit=5&status=open"), lambda o: o.request.add_params.update(
         {"limit": "5"})), LATEST, _no_change),
    ("host-in-set-headers", "pre.json", lambda o: o.request.set_headers.update({"host": "x"}),
     lambda o: o.request.set_headers.update({"X-Forwarded-Host": "x"}), LATEST, _no_change),
    ("method-empty", "pre.json", _set("request.method", ""), _set("request.method", "POST"), LATEST, _no_change),
    ("status-invalid", "pre.json", _set("request.return_overrides.response_code", 42),
     _set("request.return_overrides.response_code", 0), LATEST, _no_change),
    ("status-invalid", "response-gzip.json", _set("response.status_code", 0), _set("response.status_code", 204),
     LATEST, _no_change),
    ("error-and-body", "pre.json",
     _do(_set("request.return_overrides.response_code", 403), _set("request.return_overrides.response_error", "e"),
         _set("request.return_overrides.response_body", "b")),
     _do(_set("request.return_overrides.response_code", 403), _set("request.return_overrides.response_error", "e")),
     LATEST, _no_change),
    ("error-template", "pre.json",
     _do(_set("request.return_overrides.response_code", 401),
         _set("request.return_overrides.response_body", '{"message": "go away"}')),
     _do(_set("request.return_overrides.response_code", 401),
         _set("request.return_overrides.response_error", "bad key")),
     LATEST, _no_change),
    ("error-template", "pre.json",
     _do(_set("request.return_overrides.response_code", 401), _set("request.return_overrides.response_error", "it's")),
     _do(_set("request.return_overrides.response_code", 401), _set("request.return_overrides.override_error", True),
         _set("request.return_overrides.response_body", "a<b"),
         lambda o: o.request.return_overrides.headers.update({"Content-Type": "text/plain"})),
     LATEST, _no_change),
    ("multivalue-removal-ignored", "response-gzip.json", _do(_drop_multivalue("Vary"), _add_header("X-New", "1")),
     _do(_drop_multivalue("Vary"), _add_header("X-New", "1"), lambda o: o.response.headers.pop("Vary")), LATEST,
     _no_change),
    ("override-not-applied", "pre.json", _set("request.return_overrides.response_body", "denied"),
     _do(_set("request.return_overrides.response_code", 403),
         _set("request.return_overrides.response_error", "denied")),
     LATEST, _no_change),
    ("override-not-applied", "pre.json",
     _do(_set("request.return_overrides.response_code", 0),
         lambda o: o.request.return_overrides.headers.update({"X-Denied": "1"})),
     _set("request.return_overrides.response_code", 0), LATEST, _no_change),
    ("override-no-content-type", "pre.json",
     _do(_set("request.return_overrides.response_code", 200), _set("request.return_overrides.response_body", "{}")),
     _do(_set("request.return_overrides.response_code", 200), _set("request.return_overrides.response_body", "{}"),
         lambda o: o.request.return_overrides.headers.update({"content-type": "application/json"})), LATEST,
     _no_change),
    ("session-ignored", "post-key-auth.json", _set("session.rate", 1), _no_change, LATEST, _no_change),
    ("session-ignored", "response-gzip.json", lambda o: o.metadata.update({"a": "b"}), _no_change, LATEST,
     _no_change),
    ("auth-no-session", "custom-key-check.json", _no_change, _session(), LATEST, _no_change),
    ("auth-no-session", "custom-key-check.json", _no_change,
     _do(_set("request.return_overrides.response_code", 401), _set("request.return_overrides.response_error", "no")),
     LATEST, _no_change),
    ("auth-no-token", "custom-key-check.json", _session(""), _session(), LATEST, _no_change),
    ("auth-token-key", "custom-key-check.json", _do(_session(""), lambda o: o.metadata.update({"Token": "t"})),
     _session(), LATEST, _no_change),
    ("auth-empty-token", "custom-key-check.json",
     _do(_session(""), lambda o: o.session.metadata.update({"token": "t"}), lambda o: o.metadata.update({"token": ""})),
     _do(_session(""), lambda o: o.session.metadata.update({"token": "t"})), LATEST, _no_change),
    ("auth-expired", "custom-key-check.json", _do(_session(), _set("session.expires", int(NOW) - 5)),
     _do(_session(), _set("session.expires", int(NOW) + 3600)), LATEST, _no_change),
    ("auth-access-rights", "custom-key-check.json",
     _do(_session(), lambda o: setattr(o.session.access_rights["other"], "api_id", "other")),
     _do(_session(), lambda o: setattr(o.session.access_rights[_api_id(o)], "api_id", _api_id(o))), LATEST,
     _no_change),
    ("auth-lowercase-methods", "custom-key-check.json",
     _do(_session(), lambda o: o.session.access_rights[_api_id(o)].allowed_urls.add(url="/a", methods=["get"])),
     _do(_session(), lambda o: o.session.access_rights[_api_id(o)].allowed_urls.add(url="/a", methods=["GET"])),
     LATEST, _no_change),
    ("auth-deadline-ms", "custom-key-check.json", _do(_session(), _set("session.id_extractor_deadline",
                                                                       int(NOW * 1000) + 2000)),
     _do(_session(), _set("session.id_extractor_deadline", int(NOW) + 2)), LATEST, _no_change),
    ("auth-lifetime-timestamp", "custom-key-check.json", _do(_session(), _set("session.session_lifetime",
                                                                              int(NOW) + 3600)),
     _do(_session(), _set("session.session_lifetime", 3600)), LATEST, _no_change),
    ("auth-last-updated", "custom-key-check.json", _do(_session(), _set("session.last_updated", str(int(NOW)))),
     _do(_session(), _set("session.last_updated", "1700000000")), LATEST, _no_change),
    ("response-missing", "response-gzip.json", lambda o: o.ClearField("response"), _no_change, LATEST, _no_change),
    ("response-body-ignored", "response-petstore-301.json", _set("response.body", "changed"),
     _do(_set("response.body", "changed"), _set("response.raw_body", b"changed")), LATEST, _no_change),
    ("content-encoding-kept", "response-gzip.json", _set("response.raw_body", b"plain text"),
     _set("response.raw_body", gzip.compress(b"plain text")), LATEST, _no_change),
    ("content-encoding-kept", "response-gzip.json", _set("response.raw_body", b"plain text"),
     _do(_set("response.raw_body", b"plain text"), lambda o: o.response.headers.pop("Content-Encoding")), LATEST,
     _no_change),
    ("multivalue-emptied", "response-gzip.json", _multivalue("Set-Cookie"), _no_change, LATEST, _no_change),
    ("multivalue-emptied", "response-gzip.json", lambda o: o.response.multivalue_headers.pop(),
     lambda o: (o.response.multivalue_headers.pop(), o.response.headers.pop("Content-Length")), LATEST, _no_change),
    ("multivalue-dropped", "response-gzip.json",
     lambda o: (o.response.headers.update({"X-A": "1"}), o.response.multivalue_headers.add(key="X-Only", values=["1"])),
     lambda o: (o.response.headers.update({"X-A": "1"}), o.response.multivalue_headers.add(key="X-A", values=["1"])),
     LATEST, _no_change),
    ("multivalue-collapsed", "response-gzip.json", _second_cookie, _first_cookie_in_multivalue, OLD, _no_change),
    ("response-hook-overrides", "response-gzip.json", _set("request.return_overrides.response_code", 401),
     _set("response.status_code", 401), LATEST, _no_change),
]  # fmt: skip


def _codes(payload: str, edit: Edit, gateway: Gateway, setup: Edit, reply_size: int = 0) -> set[str]:
    sent = load_object(payload)
    setup(sent)
    reply = pb.Object()
    reply.CopyFrom(sent)
    edit(reply)
    return {w["code"] for w in lint_reply(sent, reply, gateway, reply_size=reply_size or reply.ByteSize())}


@pytest.mark.parametrize(("code", "payload", "trigger", "harmless", "gateway", "setup"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_lint_rule(code: str, payload: str, trigger: Edit, harmless: Edit, gateway: Gateway, setup: Edit) -> None:
    assert code in _codes(payload, trigger, gateway, setup)
    assert code not in _codes(payload, harmless, gateway, setup)


def test_the_latest_gateway_keeps_multiple_values() -> None:
    assert "multivalue-collapsed" not in _codes("response-gzip.json", _second_cookie, LATEST, _no_change)


def test_reply_over_the_receive_limit() -> None:
    assert "reply-over-limit" in _codes("post-json-body.json", _no_change, LATEST, _no_change, 5 * 1024 * 1024)
    assert "reply-over-limit" not in _codes("post-json-body.json", _no_change, LATEST, _no_change, 4 * 1024 * 1024)
    raised = Gateway(recv_max_size=100_000_000)
    assert "reply-over-limit" not in _codes("post-json-body.json", _no_change, raised, _no_change, 20_000_000)
    assert "reply-over-limit" in _codes("post-json-body.json", _no_change, raised, _no_change, 150_000_000)


def test_undecodable_reply_names_the_status() -> None:
    assert "500" in undecodable_reply(load_object("pre.json"))["message"]
    assert "403" in undecodable_reply(load_object("custom-key-check.json"))["message"]


@pytest.mark.parametrize("payload", ["pre.json", "post-key-auth.json", "post-json-body.json", "response-gzip.json",
                                     "response-petstore-301.json"])  # fmt: skip
def test_an_echo_is_silent(payload: str) -> None:
    assert _codes(payload, _no_change, LATEST, _no_change) == set()


@pytest.mark.parametrize("url", ["*", "tyk://other-api/path", "mailto:x", "HTTP://EXAMPLE.COM/a", "ftp://h/x"])
def test_no_invalid_url_warning_on_urls_go_accepts(url: str) -> None:
    assert "url-invalid" not in _codes("pre.json", _set("request.url", url), LATEST, _no_change)


def test_a_path_rewrite_without_a_query_keeps_the_query_silently() -> None:
    assert _codes("pre.json", _set("request.url", "/v2/orders"), LATEST, _no_change) == set()


def test_response_hooks_never_get_request_hook_warnings() -> None:
    """request, return_overrides and error templates are ignored in a Response hook: no warning about them."""
    codes = _codes("response-gzip.json", lambda o: o.ClearField("request"), LATEST, _no_change)
    assert codes == set()
    codes = _codes("response-gzip.json", lambda o: o.request.ClearField("return_overrides"), LATEST, _no_change)
    assert codes == set()


def test_headers_only_edit_and_header_added_to_both_maps_are_silent() -> None:
    only_headers = _codes("response-gzip.json", lambda o: o.response.headers.update({"X-New": "1"}), LATEST,
                          _no_change)  # fmt: skip
    both = _codes("response-gzip.json", lambda o: (o.response.headers.update({"X-New": "1"}),
                  o.response.multivalue_headers.add(key="X-New", values=["1"])), LATEST, _no_change)  # fmt: skip
    assert only_headers == set() and both == set()


def test_every_rule_has_a_case_and_an_entry_in_docs() -> None:
    # auth-shared-token judges several captures: tests/test_shared_token.py
    covered = {c[0] for c in CASES} | {"reply-over-limit", "reply-undecodable", "auth-shared-token"}
    assert covered == set(RULES)
    docs = (Path(__file__).parent.parent / "docs" / "lint.md").read_text()
    documented = set(re.findall(r"^### `([a-z-]+)`", docs, re.MULTILINE))
    assert documented == set(RULES)


@pytest.mark.parametrize("message", ["a+b", 'say "no" <now> & x=1', "back\\slash\nnew line", "caf\u00e9 \u00a0"])
def test_a_deny_the_client_reads_as_written_is_silent(message: str) -> None:
    """JSEscapeString's `\\u003C`, `\\"` and `\\u000A` read back as written in JSON: nothing to warn of."""
    sent = load_object("pre.json")
    reply = pb.Object()
    reply.CopyFrom(sent)
    reply.request.return_overrides.response_code = 403
    reply.request.return_overrides.response_error = message
    for version in ("5.8.15", "5.14.0", "5.15.0"):
        assert not lint_reply(sent, reply, Gateway(TykVersion.parse(version))), version
