"""The outcome of a reply: what Tyk Gateway does with a plugin's answer, as the client or upstream sees it.

Pure: it takes the Object the gateway sent and the reply (or None when the call failed) and
states, in the gateway's terms, either the request the gateway sends on, or the response the
client receives, or that the connection is dropped. Follows `gateway/coprocess.go`
(ObjectPostProcess, ProcessRequest, CustomMiddlewareResponseHook.HandleResponse,
syncHeadersAndMultiValueHeaders) and `gateway/handler_error.go`; docs/outcome.md has the rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.tyk.golang import (
    URIError,
    canonical_header_key,
    encode_query,
    html_escape,
    parse_query,
    parse_request_uri,
    sniff_content_type,
    status_line,
    status_panics,
)
from app.tyk.version import LATEST_VERSION, TykVersion
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

Result = Literal["continue", "respond", "dropped"]
Status = int | Literal["continue", "dropped"]

GRPC_DEFAULT_RECV_LIMIT = 4 * 1024 * 1024
"""grpc-go's receive limit, which the gateway keeps unless `grpc_recv_max_size` is set."""
MIDDLEWARE_ERROR = "Middleware error"
KEY_NOT_AUTHORISED = "Key not authorised"
ERROR_CONTENT_TYPE = "application/json"
XML_ERROR_CONTENT_TYPE = "application/xml"
MILLISECONDS_THRESHOLD = 100_000_000_000
"""A unix time above this (year 5138 in seconds) is a time in milliseconds."""


@dataclass(frozen=True, slots=True)
class Gateway:
    """What the model knows of the gateway the reply goes to."""

    version: TykVersion = LATEST_VERSION
    recv_max_size: int | None = None
    """`grpc_recv_max_size` when known; None: unknown (no reply is judged too large by the outcome)."""
    send_max_size: int | None = None
    """`grpc_send_max_size` when known."""
    id_extractor: bool | None = None
    """Whether the API's auth_check has an id_extractor; None: unknown."""
    now: float | None = None
    """Unix seconds of the call, for expiry and caching; None: not judged."""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """The request as the gateway sends it on, after a request hook's reply is applied."""

    method: str
    url: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body_size: int
    body_from: str
    """Where the body bytes are: `reply.request.rawBody`, or `request.rawBody` for an echo."""
    url_rewrite: bool = False


@dataclass(frozen=True, slots=True)
class ClientResponse:
    """What the client receives when the chain stops at this hook (or after a Response hook)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: str | None
    """The body text when the model writes it (overrides, error templates); None: see `body_from`."""
    body_size: int
    source: str
    """override, error template, middleware error, auth refused, key check, upstream response."""
    body_from: str | None = None
    events: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Auth:
    """What a CustomKeyCheck reply does to the request's identity."""

    allowed: bool
    reason: str
    token: str
    session_key: str | None
    metadata: Mapping[str, str]
    caching: str
    cache_until: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    hook_type: str
    result: Result
    summary: str
    """One sentence: what the client or the upstream gets."""
    upstream_request: UpstreamRequest | None = None
    client_response: ClientResponse | None = None
    auth: Auth | None = None
    notes: tuple[str, ...] = ()
    tyk_version: str = str(LATEST_VERSION)

    @property
    def status(self) -> Status:
        """The compact form for lists and filters: the client's status, 'continue' or 'dropped'."""
        if self.result == "respond" and self.client_response is not None:
            return self.client_response.status
        return "dropped" if self.result == "dropped" else "continue"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, header lists as [name, value] pairs."""
        return {
            "hook_type": self.hook_type,
            "result": self.result,
            "status": self.status,
            "summary": self.summary,
            "upstream_request": _request_dict(self.upstream_request),
            "client_response": _response_dict(self.client_response),
            "auth": _auth_dict(self.auth),
            "notes": list(self.notes),
            "tyk_version": self.tyk_version,
        }


def _request_dict(request: UpstreamRequest | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return {
        "method": request.method,
        "url": request.url,
        "query": request.query,
        "headers": [list(h) for h in request.headers],
        "body_size": request.body_size,
        "body_from": request.body_from,
        "url_rewrite": request.url_rewrite,
    }


def _response_dict(response: ClientResponse | None) -> dict[str, Any] | None:
    if response is None:
        return None
    return {
        "status": response.status,
        "status_line": status_line(response.status),
        "headers": [list(h) for h in response.headers],
        "body": response.body,
        "body_size": response.body_size,
        "body_from": response.body_from,
        "source": response.source,
        "events": list(response.events),
    }


def _auth_dict(auth: Auth | None) -> dict[str, Any] | None:
    if auth is None:
        return None
    return {
        "allowed": auth.allowed,
        "reason": auth.reason,
        "token": auth.token,
        "session_key": auth.session_key,
        "metadata": dict(auth.metadata),
        "caching": auth.caching,
        "cache_until": auth.cache_until,
    }


LATEST_GATEWAY = Gateway()
HOOK_NAMES = {v.number: v.name for v in common.HookType.DESCRIPTOR.values}


def outcome_of(
    sent: pb.Object,
    reply: pb.Object | None,
    gateway: Gateway = LATEST_GATEWAY,
    *,
    sent_size: int = 0,
    reply_size: int = 0,
    reply_from: str = "reply.",
) -> Outcome:
    """What the gateway does with `reply` to `sent`; `reply` None: the call failed (a gRPC error).

    `reply_from` is the prefix of the reply's bodies in the detail view ("" for an echo).
    """
    hook = sent.hook_type
    name = HOOK_NAMES.get(hook, str(hook))
    version = str(gateway.version)
    too_large = _too_large(gateway, sent_size, reply_size)
    if reply is None or too_large:
        why = too_large or "the plugin call failed"
        return _call_failed(sent, name, why, version)
    if hook == common.Response:
        return _response_outcome(sent, reply, gateway, name, reply_from)
    return _request_outcome(sent, reply, gateway, name, reply_from)


def _too_large(gateway: Gateway, sent_size: int, reply_size: int) -> str | None:
    if gateway.send_max_size is not None and sent_size > gateway.send_max_size:
        return f"the Object ({sent_size} bytes) is over the gateway's grpc_send_max_size ({gateway.send_max_size})"
    if gateway.recv_max_size is not None and reply_size > gateway.recv_max_size:
        return f"the reply ({reply_size} bytes) is over the gateway's receive limit ({gateway.recv_max_size})"
    return None


def error_response(
    sent: pb.Object,
    status: int,
    message: str,
    source: str,
    headers: Mapping[str, str] | None = None,
    events: tuple[str, ...] = (),
) -> ClientResponse:
    """Tyk's error handler: `{"error": "<message>"}` with the message HTML-escaped, its Content-Type forced."""
    xml = _wants_xml(sent)
    out = {canonical_header_key(k): v for k, v in (headers or {}).items()}
    out["Content-Type"] = XML_ERROR_CONTENT_TYPE if xml else ERROR_CONTENT_TYPE
    body = None if xml else '{\n    "error": "' + html_escape(message) + '"\n}'
    return ClientResponse(
        status=status,
        headers=tuple(sorted(out.items())),
        body=body,
        body_size=len(body.encode()) if body is not None else 0,
        source=source,
        events=events,
    )


def _wants_xml(sent: pb.Object) -> bool:
    content_type = sent.request.headers.get("Content-Type", "")
    return content_type in ("application/xml", "text/xml")


def _call_failed(sent: pb.Object, name: str, why: str, version: str) -> Outcome:
    if sent.hook_type == common.CustomKeyCheck:
        response = error_response(sent, 403, KEY_NOT_AUTHORISED, "auth refused")
        summary = f"{why}: the client gets 403 Forbidden ({KEY_NOT_AUTHORISED})"
    else:
        response = error_response(sent, 500, MIDDLEWARE_ERROR, "middleware error")
        summary = f"{why}: the client gets 500 {MIDDLEWARE_ERROR}"
    return Outcome(name, "respond", summary, client_response=response, tyk_version=version)


def _dropped(name: str, why: str, version: str, notes: tuple[str, ...] = ()) -> Outcome:
    return Outcome(
        name, "dropped", f"{why}: the connection is dropped with no response", notes=notes, tyk_version=version
    )


# --- request hooks ------------------------------------------------------------------------------


def _request_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, reply_from: str) -> Outcome:
    version = str(gateway.version)
    if not reply.HasField("request"):
        return _dropped(name, "the reply has no request (the gateway dereferences it and panics)", version)
    after = reply.request
    try:
        target = parse_request_uri(after.url)
    except URIError as exc:
        response = error_response(sent, 500, MIDDLEWARE_ERROR, "middleware error")
        return Outcome(
            name,
            "respond",
            f"request.url {after.url!r} is refused by the gateway ({exc}): the client gets 500 {MIDDLEWARE_ERROR}",
            client_response=response,
            tyk_version=version,
        )
    if not after.HasField("return_overrides"):
        return _dropped(
            name, "the reply has no request.return_overrides (the gateway dereferences it and panics)", version
        )
    overrides = after.return_overrides
    body = overrides.response_error or overrides.response_body
    code = overrides.response_code
    if code >= 400 and not overrides.override_error:
        message = body or KEY_NOT_AUTHORISED
        response = error_response(sent, code, message, "error template", overrides.headers, ("AuthFailure",))
        return Outcome(
            name,
            "respond",
            f"the client gets {status_line(code)} with Tyk's error template "
            f'{{"error": {html_escape(message)!r}}} and an AuthFailure event fires',
            client_response=response,
            notes=_template_notes(sent),
            tyk_version=version,
        )
    if code > 0:
        return _override(name, code, overrides, body, version)
    upstream = _upstream_request(sent, reply, target, reply_from)
    if sent.hook_type == common.CustomKeyCheck:
        return _auth_outcome(sent, reply, gateway, name, upstream)
    notes = _session_notes(sent, reply)
    return Outcome(
        name, "continue", _continue_summary(upstream), upstream_request=upstream, notes=notes, tyk_version=version
    )


def _template_notes(sent: pb.Object) -> tuple[str, ...]:
    notes = ["the API's error_overrides, or a custom error template, may rewrite this body"]
    if _wants_xml(sent):
        notes.insert(0, "the request is XML, so Tyk renders its XML error template")
    return tuple(notes)


def _override(name: str, code: int, overrides: Any, body: str, version: str) -> Outcome:
    if status_panics(code):
        return _dropped(name, f"return_overrides.response_code {code} makes Go's WriteHeader panic", version)
    headers = {canonical_header_key(k): v for k, v in overrides.headers.items()}
    raw = body.encode()
    notes = []
    status = 200 if code < 200 else code
    if code < 200:
        notes.append(f"{code} is informational: Go sends it, then an implicit 200 with the body")
    if "Content-Type" not in headers and raw:
        sniffed = sniff_content_type(raw)
        headers["Content-Type"] = sniffed
        notes.append(f"no Content-Type in return_overrides.headers: Go sniffs {sniffed!r} from the body")
    response = ClientResponse(
        status=status, headers=tuple(sorted(headers.items())), body=body, body_size=len(raw), source="override"
    )
    summary = f"the chain stops: the client gets {status_line(status)} with the override body ({len(raw)} bytes)"
    return Outcome(name, "respond", summary, client_response=response, notes=tuple(notes), tyk_version=version)


def _upstream_request(sent: pb.Object, reply: pb.Object, target: Any, reply_from: str) -> UpstreamRequest:
    before, after = sent.request, reply.request
    rewrite = _url_rewrite_active(sent)
    if rewrite:
        # The returned url becomes the rewrite target as it is; add/delete_params are lost.
        url = after.url
        query = target.raw_query
    else:
        values = parse_query(_query_of(before.url))
        for key in after.delete_params:
            values = [(k, v) for k, v in values if k != key]
        for key, value in after.add_params.items():
            values = [(k, [value] if k == key else v) for k, v in values]
            if all(k != key for k, _ in values):
                values.append((key, [value]))
        # Go re-encodes (keys sorted) only when the result differs from the returned url's query.
        unchanged = sorted(values) == sorted(parse_query(target.raw_query))
        query = target.raw_query if unchanged else encode_query(values)
        url = target.without_query() + (f"?{query}" if query or target.force_query else "")
    return UpstreamRequest(
        method=after.method or "GET",
        url=url,
        query=query,
        headers=_upstream_headers(before, after),
        body_size=len(after.raw_body),
        body_from=f"{reply_from}request.rawBody",
        url_rewrite=rewrite,
    )


def _query_of(url: str) -> str:
    return url.partition("?")[2]


def _url_rewrite_active(sent: pb.Object) -> bool:
    """A URL rewrite target is in play: Tyk sends it (an absolute URL) as the url of later hooks."""
    return "://" in sent.request.url.split("?", 1)[0] and not sent.request.url.startswith("/")


def _upstream_headers(before: Any, after: Any) -> tuple[tuple[str, str], ...]:
    headers = {canonical_header_key(k): v for k, v in before.headers.items()}
    host = headers.pop("Host", None)
    headers.pop("Content-Length", None)
    for name in after.delete_headers:
        headers.pop(canonical_header_key(name), None)
    for name, value in after.set_headers.items():
        key = canonical_header_key(name)
        if key not in ("Host", "Content-Length"):  # Go writes these from the request's own fields
            headers[key] = value
    if host is not None:
        headers["Host"] = host
    if after.raw_body:
        headers["Content-Length"] = str(len(after.raw_body))
    return tuple(sorted(headers.items()))


def _continue_summary(upstream: UpstreamRequest) -> str:
    return (
        f"the request goes on: {upstream.method} {upstream.url} with {len(upstream.headers)} headers and a "
        f"{upstream.body_size}-byte body"
    )


def _session_notes(sent: pb.Object, reply: pb.Object) -> tuple[str, ...]:
    if _session_changed(sent, reply):
        return ("session and metadata in the reply are ignored outside CustomKeyCheck",)
    return ()


def _session_changed(sent: pb.Object, reply: pb.Object) -> bool:
    return (
        sent.HasField("session") != reply.HasField("session")
        or sent.session != reply.session
        or dict(sent.metadata) != dict(reply.metadata)
    )


# --- CustomKeyCheck -----------------------------------------------------------------------------


def merged_metadata(reply: pb.Object) -> dict[str, str]:
    """session.metadata with the top-level metadata copied over it (the top level wins)."""
    merged = dict(reply.session.metadata)
    merged.update(reply.metadata)
    return merged


def _auth_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, upstream: UpstreamRequest) -> Outcome:
    version = str(gateway.version)
    metadata = merged_metadata(reply) if reply.HasField("session") else dict(reply.metadata)
    token = metadata.get("token", "")
    if not reply.HasField("session") or not token:
        if not reply.HasField("session"):
            reason = "the reply has no session"
        elif reply.metadata.get("token") == "" and "token" in reply.metadata and reply.session.metadata.get("token"):
            reason = "the top-level metadata token is empty and overrides the session's"
        elif any(k.lower() == "token" and k != "token" for k in metadata):
            reason = "the token is under a key other than exactly 'token'"
        else:
            reason = "the reply has no metadata token"
        response = error_response(sent, 403, "Forbidden", "auth refused", events=("AuthFailure",))
        auth = Auth(False, reason, token, None, metadata, "none: the request is refused")
        return Outcome(
            name,
            "respond",
            f"{reason}: the client gets 403 Forbidden and an AuthFailure event fires",
            client_response=response,
            auth=auth,
            tyk_version=version,
        )
    session = reply.session
    caching, until = _caching(session.id_extractor_deadline, gateway)
    if gateway.id_extractor is True:
        key = None
        key_note = "the session is stored under the id-extractor key (from the API's OrgID and the credential's MD5)"
    else:
        key = token
        key_note = f"the session is stored under the token {token!r}" + (
            "" if gateway.id_extractor is False else " (with an id_extractor, under the extractor's key instead)"
        )
    notes = [key_note, "the gateway overwrites the session's org_id with the API's OrgID"]
    auth = Auth(True, "session and token present", token, key, metadata, caching, until)
    refusal = _later_refusal(sent, session, gateway)
    if refusal is not None:
        status, message, events = refusal
        response = error_response(sent, status, message, "key check", events=events)
        auth = Auth(True, f"allowed by the plugin, then refused: {message}", token, key, metadata, caching, until)
        return Outcome(
            name,
            "respond",
            f"the plugin allows it, then Tyk answers {status_line(status)} ({message})",
            client_response=response,
            auth=auth,
            notes=tuple(notes),
            tyk_version=version,
        )
    return Outcome(
        name,
        "continue",
        "the key is accepted; " + _continue_summary(upstream),
        upstream_request=upstream,
        auth=auth,
        notes=tuple(notes),
        tyk_version=version,
    )


def _caching(deadline: int, gateway: Gateway) -> tuple[str, int | None]:
    if deadline <= 0:
        return "none: the plugin is called on every request", None
    if deadline > MILLISECONDS_THRESHOLD:
        return (
            f"id_extractor_deadline {deadline} is in milliseconds: with an id_extractor the session is cached "
            "for centuries (it is read as unix seconds)"
        ), deadline
    when = dt.datetime.fromtimestamp(deadline, dt.UTC).isoformat().replace("+00:00", "Z")
    if gateway.now is not None and deadline <= gateway.now:
        return f"none: id_extractor_deadline {when} has already passed", deadline
    ahead = f" ({deadline - gateway.now:.0f} s after the call)" if gateway.now is not None else ""
    if gateway.id_extractor is False:
        return f"none: id_extractor_deadline {when} only counts with an id_extractor", deadline
    return (
        f"until {when}{ahead} with an id_extractor: requests with the same credential skip the plugin until "
        "then (no caching without an id_extractor)"
    ), deadline


def _later_refusal(sent: pb.Object, session: Any, gateway: Gateway) -> tuple[int, str, tuple[str, ...]] | None:
    """The key-expiry and access-rights middleware that run after the auth hook."""
    if session.apply_policies or session.apply_policy_id:
        return None  # policies can change both; the model does not know them
    if session.is_inactive:
        return 403, "Key is inactive, please renew", ()
    if gateway.now is not None and 0 < session.expires < gateway.now:
        return 401, "Key has expired, please renew", ("KeyExpired",)
    api_id = sent.spec.get("APIID", "")
    if session.access_rights and api_id and api_id not in session.access_rights:
        return 403, "Access to this API has been disallowed", ()
    return None


# --- Response hooks -----------------------------------------------------------------------------


def response_headers(sent: pb.Object, reply: pb.Object, version: TykVersion) -> list[tuple[str, list[str]]]:
    """The header list the client receives after a Response hook (before Content-Length is set)."""
    before, after = sent.response, reply.response
    if not version.has_multivalue_headers:
        return [(k, [v]) for k, v in after.headers.items()]
    entries = [(h.key, list(h.values)) for h in after.multivalue_headers]
    headers = dict(after.headers)
    if headers != dict(before.headers):
        if version.keeps_multiple_values:
            synced = []
            present = set()
            for key, values in entries:
                if key in headers:
                    synced.append((key, [headers[key], *values[1:]]))
                    present.add(key)
            synced += [(k, [v]) for k, v in headers.items() if k not in present]
            entries = synced
        else:
            entries = [(k, [v]) for k, v in headers.items()]
    return entries


def _response_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, reply_from: str) -> Outcome:
    version = str(gateway.version)
    if not reply.HasField("response"):
        response = error_response(sent, 500, MIDDLEWARE_ERROR, "middleware error")
        return Outcome(
            name,
            "respond",
            f"the reply has no response: the client gets 500 {MIDDLEWARE_ERROR}",
            client_response=response,
            tyk_version=version,
        )
    after = reply.response
    code = after.status_code
    if status_panics(code):
        return _dropped(name, f"response.status_code {code} makes Go's WriteHeader panic", version)
    final: dict[str, list[str]] = {}
    for key, values in response_headers(sent, reply, gateway.version):
        final.setdefault(canonical_header_key(key), []).extend(values)
    final["Content-Length"] = [str(len(after.raw_body))]
    notes = []
    if code < 200:
        notes.append(f"{code} is informational: Go sends it, then an implicit 200")
    encoding = final.get("Content-Encoding", [""])[0]
    if encoding and after.raw_body != sent.response.raw_body and not looks_encoded(after.raw_body, encoding):
        notes.append(f"the body was rewritten but Content-Encoding: {encoding} is kept: the client cannot decode it")
    status = 200 if code < 200 else code
    headers = tuple((k, v) for k, values in sorted(final.items()) for v in values)
    response = ClientResponse(
        status=status,
        headers=headers,
        body=None,
        body_size=len(after.raw_body),
        source="upstream response",
        body_from=f"{reply_from}response.rawBody",
    )
    summary = (
        f"the client gets {status_line(status)} with {len(headers)} header lines and a {len(after.raw_body)}-byte body"
    )
    return Outcome(name, "respond", summary, client_response=response, notes=tuple(notes), tyk_version=version)


def looks_encoded(body: bytes, encoding: str) -> bool:
    """Whether a body could be in `encoding` (only gzip is checked; for others, no claim)."""
    if encoding.lower() in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b"
    return True  # other encodings: no cheap check, so no claim
