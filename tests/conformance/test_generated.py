"""Generated replies: hypothesis mutates Pre, Post and Response replies within the schema; for every example the
outcome the inspector shows must equal what the real client and upstream got (docs/conformance.md)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protogen import coprocess_object_pb2 as pb
from tests.conformance.environment import Case, Environment
from tests.conformance.harness import Answer

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "500"))
HEADER_NAMES = ["X-A", "x-b", "X-Custom-Header", "Accept", "User-Agent", "X-Forwarded-Host", "Www-Authenticate"]
PARAM_NAMES = ["x", "y", "q", "a b", "é"]
TEXT = st.text(st.sampled_from(list("abcXYZ019 -_.:/\"'<>&=+\\é日")), min_size=0, max_size=12)
VALUE = st.text(st.sampled_from(list("abcXYZ019-_.:/=+;,")), min_size=1, max_size=12)
CODES = [-1, 0, 200, 201, 204, 302, 400, 401, 403, 418, 429, 500, 99, 1000]
REQUESTS = [
    ("GET", "/anything?x=1&y=2", {}, b""),
    ("POST", "/anything", {"Content-Type": "application/json"}, b'{"a": 1}'),
    ("POST", "/anything/xml", {"Content-Type": "application/xml"}, b"<a/>"),
    ("DELETE", "/anything/deep/path?q=a+b", {"X-A": "client"}, b""),
]


@st.composite
def request_edits(draw: Any) -> dict[str, Any]:
    return {
        "set_headers": draw(st.dictionaries(st.sampled_from(HEADER_NAMES), VALUE, max_size=3)),
        "delete_headers": draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=2)),
        "add_params": draw(st.dictionaries(st.sampled_from(PARAM_NAMES), VALUE, max_size=2)),
        "delete_params": draw(st.lists(st.sampled_from(PARAM_NAMES), max_size=2)),
        "path": draw(st.sampled_from([None, None, "/keyless/other", "/keyless/a%20b", "/keyless/x?ignored=1"])),
        "method": draw(st.sampled_from([None, None, "GET", "POST", "PUT"])),
        "raw_body": draw(st.one_of(st.none(), st.binary(max_size=40))),
        # Half the replies let the request go on, so the upstream side is checked as often as the client side.
        "code": draw(st.one_of(st.just(-1), st.sampled_from(CODES))),
        "override_error": draw(st.booleans()),
        "error": draw(TEXT),
        "override_headers": draw(st.dictionaries(st.sampled_from([*HEADER_NAMES, "Content-Type"]), VALUE, max_size=2)),
    }


def request_reply(edits: dict[str, Any]) -> Any:
    def behaviour(obj: pb.Object) -> pb.Object:
        request = obj.request
        request.set_headers.update(edits["set_headers"])
        request.delete_headers.extend(edits["delete_headers"])
        request.add_params.update(edits["add_params"])
        request.delete_params.extend(edits["delete_params"])
        if edits["path"] is not None:
            request.url = edits["path"]
        if edits["method"] is not None:
            request.method = edits["method"]
        if edits["raw_body"] is not None:
            request.raw_body = edits["raw_body"]
        if edits["code"] != -1:
            overrides = request.return_overrides
            overrides.response_code = edits["code"]
            overrides.override_error = edits["override_error"]
            overrides.response_error = edits["error"]
            overrides.headers.update(edits["override_headers"])
        return obj

    return behaviour


@st.composite
def response_edits(draw: Any) -> dict[str, Any]:
    return {
        "status": draw(st.sampled_from([None, None, 200, 201, 404, 500, 0])),
        "headers": draw(st.dictionaries(st.sampled_from([*HEADER_NAMES, "Set-Cookie", "Vary"]), VALUE, max_size=3)),
        "drop": draw(st.lists(st.sampled_from(["Set-Cookie", "Vary", "X-Upstream", "Content-Type"]), max_size=2)),
        "drop_from": draw(st.sampled_from(["both", "headers", "multivalue"])),
        "body": draw(st.one_of(st.none(), st.binary(max_size=40))),
    }


def response_reply(edits: dict[str, Any]) -> Any:
    def behaviour(obj: pb.Object) -> pb.Object:
        response = obj.response
        if edits["status"] is not None:
            response.status_code = edits["status"]
        response.headers.update(edits["headers"])
        for name in edits["drop"]:
            if edits["drop_from"] in ("both", "headers"):
                response.headers.pop(name, None)
            if edits["drop_from"] in ("both", "multivalue"):
                kept = [h for h in response.multivalue_headers if h.key != name]
                del response.multivalue_headers[:]
                response.multivalue_headers.extend(kept)
        if edits["body"] is not None:
            response.raw_body = edits["body"]
        return obj

    return behaviour


ANSWER = Answer(
    200,
    [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Upstream", "yes"),
     ("Vary", "Accept")],
    b'{"upstream": true}',
)  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    request=st.sampled_from(REQUESTS),
    hook=st.sampled_from(["pre", "post"]),
    edits=request_edits(),
    response=response_edits(),
)
def test_generated_replies(
    env: Environment, request: Any, hook: str, edits: dict[str, Any], response: dict[str, Any]
) -> None:
    method, path, headers, body = request
    case = Case(
        "generated", method=method, path=path, headers=headers, body=body, answer=ANSWER,
        hooks={hook: request_reply(edits), "response": response_reply(response)},
    )  # fmt: skip
    result = env.run(case)
    assert not result.mismatches, "\n".join(result.mismatches)
