"""Each reply-lint rule: a reply that triggers it and one that does not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.tyk.lint import lint_reply
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object

Edit = Callable[[pb.Object], None]


def _set(path: str, value: object) -> Edit:
    def edit(obj: pb.Object) -> None:
        *parents, name = path.split(".")
        target = obj
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)

    return edit


def _body_only(obj: pb.Object) -> None:
    obj.request.body = '{"changed": true}'


def _body_and_raw(obj: pb.Object) -> None:
    obj.request.body = '{"changed": true}'
    obj.request.raw_body = b'{"changed": true}'


def _edit_header(obj: pb.Object) -> None:
    obj.request.headers["X-Added"] = "1"


def _set_header(obj: pb.Object) -> None:
    obj.request.set_headers["X-Added"] = "1"


def _edit_param(obj: pb.Object) -> None:
    obj.request.params["limit"] = "99"


def _add_param(obj: pb.Object) -> None:
    obj.request.add_params["limit"] = "99"


def _extended(obj: pb.Object) -> None:
    obj.request.extended_params["x"] = "1"


def _drop_request(obj: pb.Object) -> None:
    obj.ClearField("request")


def _drop_overrides(obj: pb.Object) -> None:
    obj.request.ClearField("return_overrides")


def _deny_401(obj: pb.Object) -> None:
    obj.request.return_overrides.response_code = 401


def _deny_401_raw(obj: pb.Object) -> None:
    obj.request.return_overrides.response_code = 401
    obj.request.return_overrides.override_error = True


def _session_with_token(obj: pb.Object) -> None:
    obj.session.rate = 1
    obj.session.metadata["token"] = "t"


def _session_without_token(obj: pb.Object) -> None:
    obj.session.rate = 1


def _status_zero(obj: pb.Object) -> None:
    obj.response.status_code = 0


def _headers_only(obj: pb.Object) -> None:
    obj.response.headers["X-New"] = "1"


def _both_headers(obj: pb.Object) -> None:
    obj.response.headers["X-New"] = "1"
    obj.response.multivalue_headers.add(key="X-New", values=["1"])


def _response_body_only(obj: pb.Object) -> None:
    obj.response.body = "changed"


def _response_body_raw(obj: pb.Object) -> None:
    obj.response.body = "changed"
    obj.response.raw_body = b"changed"


def _drop_response(obj: pb.Object) -> None:
    obj.ClearField("response")


def _empty_body(obj: pb.Object) -> None:
    obj.request.raw_body = b""


def _no_change(obj: pb.Object) -> None:
    pass


def _huge(obj: pb.Object) -> None:
    obj.request.raw_body = b"x" * (4 * 1024 * 1024)


CASES = [
    # code, payload, an edit that triggers it, an edit that does not
    ("body-ignored", "post-json-body.json", _body_only, _body_and_raw),
    ("body-emptied", "post-json-body.json", _empty_body, _no_change),
    ("headers-edited", "pre.json", _edit_header, _set_header),
    ("params-edited", "pre.json", _edit_param, _add_param),
    ("extended-params", "pre.json", _extended, _add_param),
    ("request-missing", "pre.json", _drop_request, _no_change),
    ("return-overrides-missing", "pre.json", _drop_overrides, _no_change),
    ("url-invalid", "pre.json", _set("request.url", ""), _set("request.url", "/new/path")),
    ("error-template", "pre.json", _deny_401, _deny_401_raw),
    ("auth-no-session", "custom-key-check.json", _no_change, _session_with_token),
    ("auth-no-token", "custom-key-check.json", _session_without_token, _session_with_token),
    ("status-zero", "response-gzip.json", _status_zero, _no_change),
    ("headers-out-of-step", "response-gzip.json", _headers_only, _both_headers),
    ("response-body-ignored", "response-petstore-301.json", _response_body_only, _response_body_raw),
    ("response-missing", "response-gzip.json", _drop_response, _no_change),
    ("near-size-limit", "post-json-body.json", _huge, _no_change),
]


@pytest.mark.parametrize(("code", "payload", "trigger", "harmless"), CASES, ids=[c[0] for c in CASES])
def test_lint_rule(code: str, payload: str, trigger: Edit, harmless: Edit) -> None:
    def codes(edit: Edit) -> set[str]:
        sent = load_object(payload)
        reply = pb.Object()
        reply.CopyFrom(sent)
        edit(reply)
        size = reply.ByteSize()
        return {w["code"] for w in lint_reply(sent, reply, size, sent.ByteSize())}

    assert code in codes(trigger)
    assert code not in codes(harmless)


def test_every_rule_has_a_case() -> None:
    import inspect

    import app.tyk.lint

    source = inspect.getsource(app.tyk.lint)
    import re

    codes = set(re.findall(r'_warning\(\s*"([a-z-]+)"', source)) - {"reply-undecodable"}
    assert codes == {c[0] for c in CASES}
