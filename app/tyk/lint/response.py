"""Lint rules for Response hook replies: the response object, the header sync, the body.

From CustomMiddlewareResponseHook.HandleResponse and syncHeadersAndMultiValueHeaders in
`gateway/coprocess.go` (docs/lint.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from app.tyk.diff import comes_back
from app.tyk.golang import canonical_header_key
from app.tyk.lint.common import DROPPED, Warning_, warning
from app.tyk.outcome import Gateway, Outcome, looks_encoded, response_headers
from protogen import coprocess_object_pb2 as pb


def response_rules(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    if not reply.HasField("response"):
        yield warning(
            "response-missing",
            "Response hook reply without response: the client gets 500 Middleware "
            "error; return the Object you received, response included",
        )
        return
    before, after = sent.response, reply.response
    code = after.status_code
    if code < 100 or code > 999:
        yield warning(
            "status-invalid",
            f"response.status_code {code} makes Go's WriteHeader panic: {DROPPED}; "
            "return the upstream's status or another from 100 to 999",
        )
    if after.body != before.body and after.raw_body == before.raw_body:
        yield warning(
            "response-body-ignored",
            "response.body changed but raw_body did not: the client gets the "
            "upstream's body, the gateway ignores body; set raw_body",
        )
    yield from _headers(sent, reply, gateway)
    final = outcome.client_response.headers if outcome.client_response is not None else ()
    encoding = next((v for k, v in final if k == "Content-Encoding"), "")
    if encoding and after.raw_body != before.raw_body and not looks_encoded(after.raw_body, encoding):
        yield warning(
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
            yield warning(
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
        yield warning(
            "multivalue-dropped",
            f"headers was changed, so the gateway keeps only its keys: "
            f"{', '.join(only_multi)} (only in multivalue_headers) are dropped and the client does not get "
            "them; add them to headers too",
        )
    back = comes_back(sent, reply, version)
    if back:
        yield warning(
            "multivalue-removal-ignored",
            f"{', '.join(back)} removed from multivalue_headers only: headers was changed, so the gateway keeps "
            "every key of headers and they come back with the value from headers; remove them from headers too",
        )
    if not version.keeps_multiple_values:
        multi = sorted({h.key for h in after.multivalue_headers if len(h.values) > 1 and h.key in after.headers})
        if multi:
            yield warning(
                "multivalue-collapsed",
                f"Tyk {version} rebuilds every header from headers when it changed: "
                f"{', '.join(multi)} keep only one value (fixed in 5.8.0 and 5.3.11); upgrade, or leave "
                "headers unchanged and edit multivalue_headers",
            )


def response_ignored(sent: pb.Object, reply: pb.Object, gateway: Gateway, outcome: Outcome) -> Iterator[Warning_]:
    overrides = reply.request.return_overrides
    if overrides != sent.request.return_overrides and overrides.response_code > 0:
        yield warning(
            "response-hook-overrides",
            "return_overrides are ignored in a Response hook: the client gets "
            "the upstream response as the hook left it; change response.status_code, headers and raw_body",
        )
