"""Response hooks: the client response after the header sync, status, body and Content-Length.

Follows CustomMiddlewareResponseHook.HandleResponse and syncHeadersAndMultiValueHeaders in
`gateway/coprocess.go`.
"""

from __future__ import annotations

from app.tyk.golang import canonical_header_key, status_line, status_panics
from app.tyk.outcome.model import MIDDLEWARE_ERROR, ClientResponse, Gateway, Outcome, dropped, error_response
from app.tyk.version import TykVersion
from protogen import coprocess_object_pb2 as pb


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


def response_outcome(sent: pb.Object, reply: pb.Object, gateway: Gateway, name: str, reply_from: str) -> Outcome:
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
        return dropped(name, f"response.status_code {code} makes Go's WriteHeader panic", version)
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
