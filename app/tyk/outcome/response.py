"""Response hooks: the client response after the header sync, status, body and Content-Length.

Follows CustomMiddlewareResponseHook.HandleResponse and syncHeadersAndMultiValueHeaders in
`gateway/coprocess.go`.
"""

from __future__ import annotations

from app.tyk.golang import canonical_header_key, sniff_content_type, status_line, status_panics
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
        response = error_response(sent, 500, MIDDLEWARE_ERROR, "middleware error", gateway)
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
    notes = list(_after_the_hooks(sent, final))
    if "Content-Type" not in final and "Content-Encoding" not in final and after.raw_body and code not in (204, 304):
        sniffed = sniff_content_type(after.raw_body)
        final["Content-Type"] = [sniffed]
        notes.append(f"no Content-Type left: Go sniffs {sniffed!r} from the body")
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


HOP_BY_HOP = (
    "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
    "Transfer-Encoding", "Upgrade",
)  # fmt: skip
"""Headers the gateway's reverse proxy deletes from the response after the Response hooks (hopHeaders)."""
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _after_the_hooks(sent: pb.Object, final: dict[str, list[str]]) -> list[str]:
    """ReverseProxy.HandleResponse, after the Response hooks: hop-by-hop headers go, the quota headers are set.

    The quota headers come from the request's session (keyless: an empty one, so all 0), with
    tyk.conf's default `rate_limit_response_headers` (quotas).
    """
    notes = []
    listed = final.get("Connection", [""])[0]
    for name in [*(n.strip() for n in listed.split(",") if n.strip()), *HOP_BY_HOP]:
        final.pop(canonical_header_key(name), None)
    session = sent.session
    values = (session.quota_max, session.quota_remaining, session.quota_renews)
    for name, value in zip(RATE_LIMIT_HEADERS, values, strict=True):
        final[canonical_header_key(name)] = [str(value)]
    api_id = sent.spec.get("APIID", "")
    if api_id and api_id in session.access_rights:
        notes.append(
            "X-RateLimit-* come from the session's quota, or from its access rights' per-API limit for this API, "
            "which the Object does not carry"
        )
    return notes


def looks_encoded(body: bytes, encoding: str) -> bool:
    """Whether a body could be in `encoding` (only gzip is checked; for others, no claim)."""
    if encoding.lower() in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b"
    return True  # other encodings: no cheap check, so no claim
