"""Lint rules for request hooks (Pre, CustomKeyCheck, PostKeyAuth, Post), and session edits outside auth.

From ObjectPostProcess and ProcessRequest in `gateway/coprocess.go` and HandleError in
`gateway/handler_error.go` (docs/lint.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from app.tyk.golang import URIError, canonical_header_key, parse_request_uri, sniff_content_type
from app.tyk.lint.common import DROPPED, Warning_, warning
from app.tyk.outcome import Gateway, Outcome
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb


def request_rules(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    before, after = sent.request, reply.request
    goes_on = outcome.upstream_request is not None
    if not after.HasField("return_overrides"):
        yield warning(
            "return-overrides-missing",
            "request.return_overrides is missing: the gateway dereferences it "
            f"and {DROPPED}; keep it as received (response_code -1 means no override)",
        )
    try:
        parse_request_uri(after.url)
    except URIError as exc:
        yield warning(
            "url-invalid",
            f"request.url {after.url!r} is refused by the gateway ({exc}): the client gets "
            "500 Middleware error; return an absolute path such as /path?query",
        )
    if after.body != before.body and after.raw_body == before.raw_body:
        yield warning(
            "body-ignored",
            "request.body changed but raw_body did not: the upstream gets the original "
            "body, the gateway ignores body on return (since 2.8); set raw_body",
        )
    if goes_on and before.raw_body and not after.raw_body:
        yield warning(
            "body-emptied",
            f"raw_body is empty in the reply: the upstream gets an empty body instead of "
            f"{len(before.raw_body)} bytes; return raw_body as received to keep it",
        )
    lost_headers = _unapplied_map_edits(before.headers, after.headers, after.set_headers, after.delete_headers)
    if lost_headers:
        yield warning(
            "headers-edited",
            f"request.headers was edited ({', '.join(lost_headers)}): the gateway "
            "ignores that map and the upstream does not see it; use set_headers and delete_headers",
        )
    lost_params = _unapplied_map_edits(before.params, after.params, after.add_params, after.delete_params)
    if lost_params:
        yield warning(
            "params-edited",
            f"request.params was edited ({', '.join(lost_params)}): the gateway ignores "
            "that map and the upstream does not see it; use add_params and delete_params",
        )
    if dict(after.extended_params) != dict(before.extended_params) and after.extended_params:
        yield warning(
            "extended-params",
            "extended_params are never read by the gateway: the upstream does not get them; use add_params",
        )
    yield from _url_query(sent, reply, outcome)
    for name in after.set_headers:
        key = canonical_header_key(name)
        if key in ("Host", "Content-Length") and name not in before.set_headers:
            fix = (
                "the Host comes from the API's target (or preserve_host_header)"
                if key == "Host"
                else ("Content-Length follows raw_body")
            )
            yield warning(
                "host-in-set-headers",
                f"set_headers[{name!r}] has no effect: Go writes {key} from the request itself; {fix}",
            )
    if not after.method and before.method:
        yield warning(
            "method-empty",
            f"request.method is empty: the upstream gets GET instead of {before.method}; return the method as received",
        )


def _unapplied_map_edits(before: Any, after: Any, applied: Any, deleted: Any) -> list[str]:
    """Keys edited in a map the gateway ignores whose edit the applied map or delete list does not repeat."""
    removed = {canonical_header_key(d) for d in deleted} | set(deleted)
    lost = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if key not in after and (key in removed or canonical_header_key(key) in removed):
            continue
        if key in after and applied.get(key) == after[key]:
            continue
        lost.append(key)
    return lost


def _url_query(sent: pb.Object, reply: pb.Object, outcome: Outcome) -> Iterator[Warning_]:
    before, after = sent.request, reply.request
    upstream = outcome.upstream_request
    if upstream is None:
        return
    if upstream.url_rewrite:
        if after.add_params or after.delete_params:
            yield warning(
                "params-lost-in-rewrite",
                "add_params/delete_params are lost: a URL rewrite is active, so "
                "the returned url becomes the rewrite target as it is; put the query in request.url",
            )
        return
    query_before, query_after = before.url.partition("?")[2], after.url.partition("?")[2]
    # A url without a query is a path rewrite that keeps the query; only a query written there is lost.
    if query_after and query_after != query_before and query_after != upstream.query:
        shown = f"?{upstream.query}" if upstream.query else "no query"
        yield warning(
            "url-query-ignored",
            f"the query in request.url was edited, but the gateway keeps the "
            f"request's own query: the upstream gets {shown}; use add_params and delete_params",
        )


def override_rules(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    overrides = reply.request.return_overrides
    code = overrides.response_code
    if code <= 0:
        yield from _override_not_applied(overrides, code)
        return
    if code < 100 or code > 999:
        yield warning(
            "status-invalid",
            f"return_overrides.response_code {code} makes Go's WriteHeader panic: "
            f"{DROPPED}; use a status from 100 to 999 (or -1 for no override)",
        )
        return
    if overrides.response_error and overrides.response_body and overrides.response_error != overrides.response_body:
        yield warning(
            "error-and-body",
            "response_error and response_body are both set: the gateway copies "
            "response_error over response_body, so the client gets the error text; set only one",
        )
    message = overrides.response_error or overrides.response_body
    if code >= 400 and not overrides.override_error:
        yield from _error_template(overrides, message, code, outcome)
    elif message and not any(canonical_header_key(k) == "Content-Type" for k in overrides.headers):
        sniffed = sniff_content_type(message.encode())
        yield warning(
            "override-no-content-type",
            f"the override has no Content-Type header: the client gets "
            f"{code} with a Content-Type Go sniffs from the body ({sniffed}); set "
            "return_overrides.headers['Content-Type']",
        )


def _override_not_applied(overrides: Any, code: int) -> Iterator[Warning_]:
    """response_code 0 or -1 means no override: a body or headers set beside it are never sent."""
    parts = [name for name, value in (("response_body", overrides.response_body),
             ("response_error", overrides.response_error), ("headers", dict(overrides.headers))) if value]  # fmt: skip
    if parts:
        yield warning(
            "override-not-applied",
            f"return_overrides has {' and '.join(parts)} but response_code {code}: nothing is blocked, the "
            "request goes on and the client never sees them; set response_code (e.g. 403) to answer the client",
        )


def _error_template(overrides: Any, message: str, code: int, outcome: Outcome) -> Iterator[Warning_]:
    """Silent when the client reads the message as written; warns when the template changes what the plugin meant."""
    response = outcome.client_response
    body = response.body if response is not None and response.body is not None else ""
    written = message or "Key not authorised"
    content_type = dict(response.headers).get("Content-Type", "application/json") if response else "application/json"
    reasons = []
    if _is_document(message):
        reasons.append("the body looks like a document of its own, and is wrapped in the template")
    elif content_type == "application/json":
        try:
            read = json.loads(body).get("error")
        except (ValueError, AttributeError):
            version = outcome.tyk_version
            reasons.append(f"the gateway {version} escapes it for JavaScript, so the body is not valid JSON")
        else:
            if read != written:
                reasons.append("the escaping changes the message")
    content_types = [v for k, v in overrides.headers.items() if canonical_header_key(k) == "Content-Type"]
    if content_types and content_types[0] != content_type:
        reasons.append(f"Content-Type {content_types[0]!r} is replaced by the template's {content_type}")
    if reasons:
        yield warning(
            "error-template",
            f"response_code {code} without override_error goes through Tyk's error "
            f"template: the client gets {code} with {body[:120]!r} ({'; '.join(reasons)}) "
            "and an AuthFailure event fires; set override_error to send response_body as is",
        )


def _is_document(text: str) -> bool:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
        except (ValueError, RecursionError):
            return False
        return True
    return stripped[:1] == "<" and stripped[-1:] == ">"


def session_elsewhere(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if sent.hook_type == common.CustomKeyCheck:
        return
    changed = sent.HasField("session") != reply.HasField("session") or sent.session != reply.session
    if changed or dict(sent.metadata) != dict(reply.metadata):
        yield warning(
            "session-ignored",
            "the reply changes the session or metadata, but the gateway only uses them "
            "from a CustomKeyCheck reply: the stored session is unchanged; update keys through CustomKeyCheck "
            "or the Tyk API",
        )
