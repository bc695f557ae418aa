"""Reply lint: the mistakes in a plugin's reply that Tyk Gateway silently punishes, and nothing else.

Each rule (docs/lint.md) is what the gateway does with the reply (`gateway/coprocess.go`,
`gateway/handler_error.go`, the key checks after auth); each warning says what the client or
the upstream will get and how to fix the reply. A warning on a reply the gateway handles fine
is a bug. Pure: it judges the messages it is given; app.capture.analysis runs it on captures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from app.tyk.golang import URIError, canonical_header_key, html_escape, parse_request_uri, sniff_content_type
from app.tyk.outcome import (
    GRPC_DEFAULT_RECV_LIMIT,
    LATEST_GATEWAY,
    MILLISECONDS_THRESHOLD,
    Gateway,
    Outcome,
    looks_encoded,
    merged_metadata,
    outcome_of,
    response_headers,
)
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

Warning_ = dict[str, str]
RULES = (
    "reply-undecodable", "reply-over-limit", "request-missing", "return-overrides-missing", "url-invalid",
    "body-ignored", "body-emptied", "headers-edited", "params-edited", "extended-params", "params-lost-in-rewrite",
    "url-query-ignored", "host-in-set-headers", "method-empty", "status-invalid", "error-and-body", "error-template",
    "override-no-content-type", "session-ignored", "auth-no-session", "auth-token-key", "auth-empty-token",
    "auth-no-token", "auth-expired", "auth-access-rights", "auth-lowercase-methods", "auth-deadline-ms",
    "auth-lifetime-timestamp", "auth-last-updated", "response-missing", "response-body-ignored",
    "content-encoding-kept", "multivalue-emptied", "multivalue-dropped", "multivalue-collapsed",
    "response-hook-overrides",
)  # fmt: skip
"""Every warning code, each documented in docs/lint.md."""
DROPPED = "the connection is dropped with no response"
# A session_lifetime this large is a unix time, not a TTL (about 31 years of seconds).
TIMESTAMP_SECONDS = 1_000_000_000


def _warning(code: str, message: str) -> Warning_:
    return {"code": code, "message": message}


def _failed_status(sent: pb.Object) -> str:
    return "403 Forbidden" if sent.hook_type == common.CustomKeyCheck else "500 Middleware error"


def undecodable_reply(sent: pb.Object) -> Warning_:
    return _warning(
        "reply-undecodable",
        "the reply is not a valid coprocess.Object: the gateway's call fails and the "
        f"client gets {_failed_status(sent)}; return the Object you received",
    )


def lint_reply(
    sent: pb.Object,
    reply: pb.Object,
    gateway: Gateway = LATEST_GATEWAY,
    *,
    reply_size: int = 0,
    outcome: Outcome | None = None,
) -> list[Warning_]:
    """Warnings for a Dispatch reply, given the Object the gateway sent (docs/lint.md)."""
    outcome = outcome or outcome_of(sent, reply, gateway, reply_size=reply_size)
    found = list(_size(sent, reply_size, gateway))
    if sent.hook_type == common.Response:
        checks: tuple[Callable[..., Iterator[Warning_]], ...] = (_response, _response_ignored, _session_elsewhere)
    else:
        if not reply.HasField("request"):
            return [
                *found,
                _warning(
                    "request-missing",
                    f"the reply has no request: the gateway dereferences it and "
                    f"{DROPPED}; return the Object you received, request included",
                ),
            ]
        checks = (_request, _overrides, _session_elsewhere, _auth)
    for check in checks:
        found += check(sent, reply, gateway, outcome)
    return found


def _size(sent: pb.Object, reply_size: int, gateway: Gateway) -> Iterator[Warning_]:
    limit = gateway.recv_max_size or GRPC_DEFAULT_RECV_LIMIT
    if reply_size > limit:
        setting = "its grpc_recv_max_size" if gateway.recv_max_size else "the default 4 MiB (grpc_recv_max_size unset)"
        yield _warning(
            "reply-over-limit",
            f"the reply is {reply_size} bytes, over the gateway's receive limit "
            f"({setting}): the call fails and the client gets {_failed_status(sent)}; raise "
            "grpc_recv_max_size, and set raw_body_only on the hook so the body is not sent twice",
        )


# --- request hooks ------------------------------------------------------------------------------


def _request(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    before, after = sent.request, reply.request
    goes_on = outcome.upstream_request is not None
    if not after.HasField("return_overrides"):
        yield _warning(
            "return-overrides-missing",
            "request.return_overrides is missing: the gateway dereferences it "
            f"and {DROPPED}; keep it as received (response_code -1 means no override)",
        )
    try:
        parse_request_uri(after.url)
    except URIError as exc:
        yield _warning(
            "url-invalid",
            f"request.url {after.url!r} is refused by the gateway ({exc}): the client gets "
            "500 Middleware error; return an absolute path such as /path?query",
        )
    if after.body != before.body and after.raw_body == before.raw_body:
        yield _warning(
            "body-ignored",
            "request.body changed but raw_body did not: the upstream gets the original "
            "body, the gateway ignores body on return (since 2.8); set raw_body",
        )
    if goes_on and before.raw_body and not after.raw_body:
        yield _warning(
            "body-emptied",
            f"raw_body is empty in the reply: the upstream gets an empty body instead of "
            f"{len(before.raw_body)} bytes; return raw_body as received to keep it",
        )
    lost_headers = _unapplied_map_edits(before.headers, after.headers, after.set_headers, after.delete_headers)
    if lost_headers:
        yield _warning(
            "headers-edited",
            f"request.headers was edited ({', '.join(lost_headers)}): the gateway "
            "ignores that map and the upstream does not see it; use set_headers and delete_headers",
        )
    lost_params = _unapplied_map_edits(before.params, after.params, after.add_params, after.delete_params)
    if lost_params:
        yield _warning(
            "params-edited",
            f"request.params was edited ({', '.join(lost_params)}): the gateway ignores "
            "that map and the upstream does not see it; use add_params and delete_params",
        )
    if dict(after.extended_params) != dict(before.extended_params) and after.extended_params:
        yield _warning(
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
            yield _warning(
                "host-in-set-headers",
                f"set_headers[{name!r}] has no effect: Go writes {key} from the request itself; {fix}",
            )
    if not after.method and before.method:
        yield _warning(
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
            yield _warning(
                "params-lost-in-rewrite",
                "add_params/delete_params are lost: a URL rewrite is active, so "
                "the returned url becomes the rewrite target as it is; put the query in request.url",
            )
        return
    query_before, query_after = before.url.partition("?")[2], after.url.partition("?")[2]
    if query_after != query_before and query_after != upstream.query:
        shown = f"?{upstream.query}" if upstream.query else "no query"
        yield _warning(
            "url-query-ignored",
            f"the query in request.url was edited, but the gateway keeps the "
            f"request's own query: the upstream gets {shown}; use add_params and delete_params",
        )


def _overrides(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    overrides = reply.request.return_overrides
    code = overrides.response_code
    if code <= 0:
        return
    if code < 100 or code > 999:
        yield _warning(
            "status-invalid",
            f"return_overrides.response_code {code} makes Go's WriteHeader panic: "
            f"{DROPPED}; use a status from 100 to 999 (or -1 for no override)",
        )
        return
    if overrides.response_error and overrides.response_body and overrides.response_error != overrides.response_body:
        yield _warning(
            "error-and-body",
            "response_error and response_body are both set: the gateway copies "
            "response_error over response_body, so the client gets the error text; set only one",
        )
    message = overrides.response_error or overrides.response_body
    if code >= 400 and not overrides.override_error:
        yield from _error_template(overrides, message, code)
    elif message and not any(canonical_header_key(k) == "Content-Type" for k in overrides.headers):
        sniffed = sniff_content_type(message.encode())
        yield _warning(
            "override-no-content-type",
            f"the override has no Content-Type header: the client gets "
            f"{code} with a Content-Type Go sniffs from the body ({sniffed}); set "
            "return_overrides.headers['Content-Type']",
        )


def _error_template(overrides: Any, message: str, code: int) -> Iterator[Warning_]:
    """Silent when the template shows the message as written; warns when it changes what the plugin meant."""
    shown = html_escape(message or "Key not authorised")
    reasons = []
    if _is_document(message):
        reasons.append("the body looks like a document of its own, and is wrapped in the template")
    elif shown != (message or "Key not authorised"):
        reasons.append("the message is HTML-escaped")
    content_types = [v for k, v in overrides.headers.items() if canonical_header_key(k) == "Content-Type"]
    if content_types and content_types[0] != "application/json":
        reasons.append(f"Content-Type {content_types[0]!r} is replaced by the template's application/json")
    if reasons:
        yield _warning(
            "error-template",
            f"response_code {code} without override_error goes through Tyk's error "
            f'template: the client gets {code} with {{"error": "{shown[:80]}"}} ({"; ".join(reasons)}) '
            "and an AuthFailure event fires; set override_error to send response_body as is",
        )


def _is_document(text: str) -> bool:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(stripped)
        except ValueError:
            return False
        return True
    return stripped[:1] == "<" and stripped[-1:] == ">"


def _session_elsewhere(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if sent.hook_type == common.CustomKeyCheck:
        return
    changed = sent.HasField("session") != reply.HasField("session") or sent.session != reply.session
    if changed or dict(sent.metadata) != dict(reply.metadata):
        yield _warning(
            "session-ignored",
            "the reply changes the session or metadata, but the gateway only uses them "
            "from a CustomKeyCheck reply: the stored session is unchanged; update keys through CustomKeyCheck "
            "or the Tyk API",
        )


# --- CustomKeyCheck -----------------------------------------------------------------------------


def _auth(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if sent.hook_type != common.CustomKeyCheck or reply.request.return_overrides.response_code > 0:
        return
    if not reply.request.HasField("return_overrides"):
        return
    if not reply.HasField("session"):
        yield _warning(
            "auth-no-session",
            "CustomKeyCheck reply without a session: the client gets 403 Forbidden and "
            "an AuthFailure event fires; return a session and metadata.token, or deny with "
            "return_overrides.response_code 401/403",
        )
        return
    metadata = merged_metadata(reply)
    if not metadata.get("token"):
        yield from _token_problem(reply, metadata)
        return
    yield from _session_checks(sent, reply.session, gateway)


def _token_problem(reply: pb.Object, metadata: dict[str, str]) -> Iterator[Warning_]:
    near = [k for k in metadata if k.lower() == "token" and k != "token"]
    if near:
        yield _warning(
            "auth-token-key",
            f"the token is under metadata[{near[0]!r}]: the gateway reads exactly "
            "'token', so the client gets 403 Forbidden; rename the key to token",
        )
    elif "token" in reply.metadata and reply.session.metadata.get("token"):
        yield _warning(
            "auth-empty-token",
            "the top-level metadata has an empty token, and it overrides the session's: "
            "the client gets 403 Forbidden; set metadata.token or leave it out",
        )
    else:
        yield _warning(
            "auth-no-token",
            "CustomKeyCheck reply without metadata.token: the client gets 403 Forbidden "
            "and an AuthFailure event fires; set metadata.token (the key the session is stored under)",
        )


def _session_checks(sent: pb.Object, session: Any, gateway: Gateway) -> Iterator[Warning_]:
    policies = bool(session.apply_policies or session.apply_policy_id)
    if not policies and gateway.now is not None and 0 < session.expires < gateway.now:
        yield _warning(
            "auth-expired",
            f"session.expires {session.expires} is in the past: the key is accepted, then "
            "the client gets 401 Key has expired, please renew; set expires in the future or 0 (never)",
        )
    api_id = sent.spec.get("APIID", "")
    if not policies and session.access_rights and api_id and api_id not in session.access_rights:
        yield _warning(
            "auth-access-rights",
            f"session.access_rights has no entry for this API ({api_id}): the client "
            "gets 403 Access to this API has been disallowed; add the API or leave access_rights empty",
        )
    lower = sorted(
        {m for a in session.access_rights.values() for u in a.allowed_urls for m in u.methods if m != m.upper()}
    )
    if lower:
        yield _warning(
            "auth-lowercase-methods",
            f"allowed_urls methods {', '.join(lower)} are not upper-case: Tyk "
            "compares them with the request's method as is, so those requests get 403; use GET, POST, ...",
        )
    deadline = session.id_extractor_deadline
    if deadline > MILLISECONDS_THRESHOLD:
        yield _warning(
            "auth-deadline-ms",
            f"id_extractor_deadline {deadline} looks like milliseconds: the gateway reads "
            "unix seconds, so with an id_extractor the session is cached for centuries; divide by 1000",
        )
    if session.session_lifetime >= TIMESTAMP_SECONDS:
        yield _warning(
            "auth-lifetime-timestamp",
            f"session_lifetime {session.session_lifetime} looks like a unix "
            "time: it is a TTL in seconds, so the key lives for decades; give the number of seconds",
        )
    if gateway.now is not None and _is_now(session.last_updated, gateway.now):
        yield _warning(
            "auth-last-updated",
            "last_updated is the time of this call: it is part of the rate limiter's "
            "bucket key, so a value that changes every call resets the rate limit each time; set it only "
            "when the key's limits change",
        )


def _is_now(last_updated: str, now: float) -> bool:
    try:
        value = float(last_updated)
    except ValueError:
        return False
    if value > MILLISECONDS_THRESHOLD:
        value /= 1000
    return abs(value - now) < 60


# --- Response hooks -----------------------------------------------------------------------------


def _response(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if not reply.HasField("response"):
        yield _warning(
            "response-missing",
            "Response hook reply without response: the client gets 500 Middleware "
            "error; return the Object you received, response included",
        )
        return
    before, after = sent.response, reply.response
    code = after.status_code
    if code < 100 or code > 999:
        yield _warning(
            "status-invalid",
            f"response.status_code {code} makes Go's WriteHeader panic: {DROPPED}; "
            "return the upstream's status or another from 100 to 999",
        )
    if after.body != before.body and after.raw_body == before.raw_body:
        yield _warning(
            "response-body-ignored",
            "response.body changed but raw_body did not: the client gets the "
            "upstream's body, the gateway ignores body; set raw_body",
        )
    yield from _headers(sent, reply, gateway)
    final = outcome.client_response.headers if outcome.client_response is not None else ()
    encoding = next((v for k, v in final if k == "Content-Encoding"), "")
    if encoding and after.raw_body != before.raw_body and not looks_encoded(after.raw_body, encoding):
        yield _warning(
            "content-encoding-kept",
            f"raw_body was rewritten but Content-Encoding: {encoding} is kept: "
            "the client tries to decode the new body and fails; compress the new body or remove "
            "Content-Encoding from headers",
        )


def _headers(sent: pb.Object, reply: pb.Object, gateway: Gateway) -> Iterator[Warning_]:
    version = gateway.version
    if not version.has_multivalue_headers:
        return
    before, after = sent.response, reply.response
    final = {canonical_header_key(k) for k, values in response_headers(sent, reply, version) if values}
    if dict(after.headers) == dict(before.headers):
        sent_keys = {canonical_header_key(h.key) for h in before.multivalue_headers if h.values}
        lost = sorted(sent_keys - final)
        if lost:
            yield _warning(
                "multivalue-emptied",
                f"headers is unchanged, so the gateway rebuilds the response from "
                f"multivalue_headers, where {', '.join(lost)} are missing or empty: the client does not get "
                "them; return multivalue_headers as received, or edit headers instead",
            )
        return
    # Keys the upstream sent and the plugin removed from headers are meant to go; new ones only in
    # multivalue_headers are the mistake.
    only_multi = sorted(
        {h.key for h in after.multivalue_headers if h.values} - set(after.headers) - set(before.headers)
    )
    if only_multi:
        yield _warning(
            "multivalue-dropped",
            f"headers was changed, so the gateway keeps only its keys: "
            f"{', '.join(only_multi)} (only in multivalue_headers) are dropped and the client does not get "
            "them; add them to headers too",
        )
    if not version.keeps_multiple_values:
        multi = sorted({h.key for h in after.multivalue_headers if len(h.values) > 1 and h.key in after.headers})
        if multi:
            yield _warning(
                "multivalue-collapsed",
                f"Tyk {version} rebuilds every header from headers when it changed: "
                f"{', '.join(multi)} keep only one value (fixed in 5.8.0 and 5.3.11); upgrade, or leave "
                "headers unchanged and edit multivalue_headers",
            )


def _response_ignored(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    overrides = reply.request.return_overrides
    if overrides != sent.request.return_overrides and overrides.response_code > 0:
        yield _warning(
            "response-hook-overrides",
            "return_overrides are ignored in a Response hook: the client gets "
            "the upstream response as the hook left it; change response.status_code, headers and raw_body",
        )
