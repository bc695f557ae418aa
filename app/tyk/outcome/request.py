"""Request hooks (Pre, CustomKeyCheck, PostKeyAuth, Post): the request sent on, or the response that stops it.

Follows ObjectPostProcess and ProcessRequest in `gateway/coprocess.go`.
"""

from __future__ import annotations

from typing import Any

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
from app.tyk.outcome.auth import auth_outcome
from app.tyk.outcome.model import (
    KEY_NOT_AUTHORISED,
    MIDDLEWARE_ERROR,
    ClientResponse,
    Gateway,
    Outcome,
    UpstreamRequest,
    continue_summary,
    dropped,
    error_response,
    wants_xml,
)
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb


def request_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, reply_from: str) -> Outcome:
    version = str(gateway.version)
    if not reply.HasField("request"):
        return dropped(name, "the reply has no request (the gateway dereferences it and panics)", version)
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
        return dropped(
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
            f'{{"error": "{html_escape(message)}"}} and an AuthFailure event fires',
            client_response=response,
            notes=_template_notes(sent),
            tyk_version=version,
        )
    if code > 0:
        return _override(name, code, overrides, body, version)
    upstream = _upstream_request(sent, reply, target, reply_from)
    if sent.hook_type == common.CustomKeyCheck:
        return auth_outcome(sent, reply, gateway, name, upstream)
    notes = _session_notes(sent, reply)
    return Outcome(
        name, "continue", continue_summary(upstream), upstream_request=upstream, notes=notes, tyk_version=version
    )


def _template_notes(sent: pb.Object) -> tuple[str, ...]:
    notes = ["the API's error_overrides, or a custom error template, may rewrite this body"]
    if wants_xml(sent):
        notes.insert(0, "the request is XML, so Tyk renders its XML error template")
    return tuple(notes)


def _override(name: str, code: int, overrides: Any, body: str, version: str) -> Outcome:
    if status_panics(code):
        return dropped(name, f"return_overrides.response_code {code} makes Go's WriteHeader panic", version)
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
