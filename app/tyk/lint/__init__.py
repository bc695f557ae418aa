"""Reply lint: the mistakes in a plugin's reply that Tyk Gateway silently punishes, and nothing else.

Each rule (docs/lint.md) is what the gateway does with the reply (`gateway/coprocess.go`,
`gateway/handler_error.go`, the key checks after auth); each warning says what the client or
the upstream will get and how to fix the reply. A warning on a reply the gateway handles fine
is a bug. Pure: it judges the messages it is given; app.capture.analysis runs it on captures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from app.tyk.lint.auth import auth_rules
from app.tyk.lint.common import DROPPED, Warning_, failed_status, warning
from app.tyk.lint.request import override_rules, request_rules, session_elsewhere
from app.tyk.lint.response import response_ignored, response_rules
from app.tyk.outcome import GRPC_DEFAULT_RECV_LIMIT, LATEST_GATEWAY, Gateway, Outcome, outcome_of
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

RULES = (
    "reply-undecodable", "reply-over-limit", "request-missing", "return-overrides-missing", "url-invalid",
    "body-ignored", "body-emptied", "headers-edited", "params-edited", "extended-params", "params-lost-in-rewrite",
    "url-query-ignored", "host-in-set-headers", "method-empty", "status-invalid", "error-and-body", "error-template",
    "override-no-content-type", "session-ignored", "auth-no-session", "auth-token-key", "auth-empty-token",
    "auth-no-token", "auth-expired", "auth-access-rights", "auth-lowercase-methods", "auth-deadline-ms",
    "auth-lifetime-timestamp", "auth-last-updated", "response-missing", "response-body-ignored",
    "content-encoding-kept", "multivalue-emptied", "multivalue-dropped", "multivalue-collapsed",
    "response-hook-overrides", "auth-shared-token",
)  # fmt: skip
"""Every warning code, each documented in docs/lint.md. `auth-shared-token` judges several captures
together (app.journeys.tokens), not one reply."""


def undecodable_reply(sent: pb.Object) -> Warning_:
    return warning(
        "reply-undecodable",
        "the reply is not a valid coprocess.Object: the gateway's call fails and the "
        f"client gets {failed_status(sent)}; return the Object you received",
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
        checks: tuple[Callable[..., Iterator[Warning_]], ...] = (response_rules, response_ignored, session_elsewhere)
    else:
        if not reply.HasField("request"):
            return [
                *found,
                warning(
                    "request-missing",
                    f"the reply has no request: the gateway dereferences it and "
                    f"{DROPPED}; return the Object you received, request included",
                ),
            ]
        checks = (request_rules, override_rules, session_elsewhere, auth_rules)
    for check in checks:
        found += check(sent, reply, gateway, outcome)
    return found


def _size(sent: pb.Object, reply_size: int, gateway: Gateway) -> Iterator[Warning_]:
    limit = gateway.recv_max_size or GRPC_DEFAULT_RECV_LIMIT
    if reply_size > limit:
        setting = "its grpc_recv_max_size" if gateway.recv_max_size else "the default 4 MiB (grpc_recv_max_size unset)"
        yield warning(
            "reply-over-limit",
            f"the reply is {reply_size} bytes, over the gateway's receive limit "
            f"({setting}): the call fails and the client gets {failed_status(sent)}; raise "
            "grpc_recv_max_size, and set raw_body_only on the hook so the body is not sent twice",
        )
