"""The outcome's vocabulary: what the gateway model says a reply leads to, and Tyk's error handler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.tyk.golang import (
    canonical_header_key,
    html_escape_string,
    js_escape_string,
    json_escape_string,
    status_line,
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
XML_CONTENT_TYPES = frozenset({"application/xml", "text/xml", "application/soap+xml"})
"""Request Content-Types (before any `;`) that make Tyk render its XML error template, under that type."""
CHUNKING_SIZE = 2048
"""Go's net/http writes Content-Length itself for a handler's body up to this size, else chunks it."""
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
    hide_generator_header: bool = False
    """tyk.conf `hide_generator_header`: no `X-Generator: tyk.io` on error responses."""


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


def error_response(
    sent: pb.Object,
    status: int,
    message: str,
    source: str,
    gateway: Gateway,
    headers: Mapping[str, str] | None = None,
    events: tuple[str, ...] = (),
) -> ClientResponse:
    """Tyk's error handler (writeTemplateErrorResponse): the default error template for the request's type.

    JSON: `{"error": "<message>"}` with the message JavaScript-escaped up to 5.14 (a `'` becomes
    `\\'`, which is not JSON) and JSON-escaped from 5.15; XML (application/xml, text/xml,
    application/soap+xml): `<error>` with the message raw up to 5.14, HTML-escaped from 5.15.
    The Content-Type is forced to the template's, `X-Generator: tyk.io` added.
    """
    content_type = error_content_type(sent)
    json_escape = gateway.version.at_least("5.15.0")
    if content_type in XML_CONTENT_TYPES:
        shown = html_escape_string(message) if json_escape else message
        body = f'<?xml version = "1.0" encoding = "UTF-8"?>\n<error>{shown}</error>\n'
    else:
        shown = json_escape_string(message) if json_escape else js_escape_string(message)
        body = '{\n    "error": "' + shown + '"\n}'
    out = {canonical_header_key(k): [v] for k, v in (headers or {}).items()}
    out["Content-Type"] = [content_type]
    if not gateway.hide_generator_header:
        out.setdefault("X-Generator", []).append("tyk.io")
    out.update(written_length(body.encode()))
    return ClientResponse(
        status=status,
        headers=tuple((k, v) for k, values in sorted(out.items()) for v in values),
        body=body,
        body_size=len(body.encode()),
        source=source,
        events=events,
    )


def written_length(body: bytes) -> dict[str, list[str]]:
    """The length header Go's net/http adds to a body a handler wrote without one."""
    if len(body) <= CHUNKING_SIZE:
        return {"Content-Length": [str(len(body))]}
    return {"Transfer-Encoding": ["chunked"]}


def error_content_type(sent: pb.Object) -> str:
    """The error template's Content-Type: the request's own when it is an XML type, else application/json."""
    content_type = sent.request.headers.get("Content-Type", "").split(";")[0]
    return content_type if content_type in XML_CONTENT_TYPES else ERROR_CONTENT_TYPE


def wants_xml(sent: pb.Object) -> bool:
    return error_content_type(sent) in XML_CONTENT_TYPES


def dropped(name: str, why: str, version: str, notes: tuple[str, ...] = ()) -> Outcome:
    return Outcome(
        name, "dropped", f"{why}: the connection is dropped with no response", notes=notes, tyk_version=version
    )


def continue_summary(upstream: UpstreamRequest) -> str:
    return (
        f"the request goes on: {upstream.method} {upstream.url} with {len(upstream.headers)} headers and a "
        f"{upstream.body_size}-byte body"
    )
