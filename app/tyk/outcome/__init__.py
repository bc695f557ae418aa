"""The outcome of a reply: what Tyk Gateway does with a plugin's answer, as the client or upstream sees it.

Pure: it takes the Object the gateway sent and the reply (or None when the call failed) and
states, in the gateway's terms, either the request the gateway sends on, or the response the
client receives, or that the connection is dropped. Follows `gateway/coprocess.go`
(ObjectPostProcess, ProcessRequest, CustomMiddlewareResponseHook.HandleResponse,
syncHeadersAndMultiValueHeaders) and `gateway/handler_error.go`; docs/outcome.md has the rules.
"""

from __future__ import annotations

from app.tyk.outcome.auth import merged_metadata
from app.tyk.outcome.model import (
    GRPC_DEFAULT_RECV_LIMIT,
    HOOK_NAMES,
    KEY_NOT_AUTHORISED,
    LATEST_GATEWAY,
    MIDDLEWARE_ERROR,
    MILLISECONDS_THRESHOLD,
    Auth,
    ClientResponse,
    Gateway,
    Outcome,
    Status,
    UpstreamRequest,
    error_response,
)
from app.tyk.outcome.request import request_outcome
from app.tyk.outcome.response import looks_encoded, response_headers, response_outcome
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

__all__ = [
    "GRPC_DEFAULT_RECV_LIMIT", "KEY_NOT_AUTHORISED", "LATEST_GATEWAY", "MIDDLEWARE_ERROR", "MILLISECONDS_THRESHOLD",
    "Auth", "ClientResponse", "Gateway", "Outcome", "Status", "UpstreamRequest", "error_response", "looks_encoded",
    "merged_metadata", "outcome_of", "response_headers",
]  # fmt: skip


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
    too_large = _too_large(gateway, sent_size, reply_size)
    if reply is None or too_large:
        why = too_large or "the plugin call failed"
        return _call_failed(sent, name, why, gateway)
    if hook == common.Response:
        return response_outcome(sent, reply, gateway, name, reply_from)
    return request_outcome(sent, reply, gateway, name, reply_from)


def _too_large(gateway: Gateway, sent_size: int, reply_size: int) -> str | None:
    if gateway.send_max_size is not None and sent_size > gateway.send_max_size:
        return f"the Object ({sent_size} bytes) is over the gateway's grpc_send_max_size ({gateway.send_max_size})"
    if gateway.recv_max_size is not None and reply_size > gateway.recv_max_size:
        return f"the reply ({reply_size} bytes) is over the gateway's receive limit ({gateway.recv_max_size})"
    return None


def _call_failed(sent: pb.Object, name: str, why: str, gateway: Gateway) -> Outcome:
    if sent.hook_type == common.CustomKeyCheck:
        response = error_response(sent, 403, KEY_NOT_AUTHORISED, "auth refused", gateway)
        summary = f"{why}: the client gets 403 Forbidden ({KEY_NOT_AUTHORISED})"
    else:
        response = error_response(sent, 500, MIDDLEWARE_ERROR, "middleware error", gateway)
        summary = f"{why}: the client gets 500 {MIDDLEWARE_ERROR}"
    return Outcome(name, "respond", summary, client_response=response, tyk_version=str(gateway.version))
