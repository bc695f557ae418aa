"""What the gateway model says of a capture (lint, effect, outcome), computed on first use and cached on it.

Never on the Dispatch path: the list, the stream and the detail ask for it. The one
verdict per capture (Analysis) holds only small values; the full outcome is built for the
detail view, which has its own cache.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Analysis, Capture
from app.redaction.redact import Redactor
from app.redaction.secrets import hide
from app.tyk.diff import diff_objects, has_effect
from app.tyk.golang import URIError, parse_request_uri
from app.tyk.lint import lint_reply, undecodable_reply
from app.tyk.outcome import GRPC_DEFAULT_RECV_LIMIT, LATEST_GATEWAY, Gateway, Outcome, outcome_of
from protogen import coprocess_object_pb2 as pb

DEFAULT_GATEWAY = LATEST_GATEWAY
# Request hooks whose echo is, by construction, what the gateway sent: the chain goes on.
_PLAIN_REQUEST_HOOKS = frozenset({"Pre", "PostKeyAuth", "Post"})


def analyze(capture: Capture, gateway: Gateway | None = None) -> Analysis:
    """The capture's verdict, computed once.

    With a `gateway` (the web layer passes the one --tyk-version names), the verdict is for that
    Tyk version, recomputed if an earlier one was for another; without, whatever is cached
    (the latest Tyk if nothing is).
    """
    analysis = capture.analysis
    if analysis is None or (gateway is not None and analysis.version != str(gateway.version)):
        if needs_worker(capture):
            # Never parsed on the loop: the verdict is computed in a worker (`analyze_in_worker`, by
            # the list and the detail); until then only what the bytes say, and nothing is cached.
            return analysis or _provisional(capture, gateway or DEFAULT_GATEWAY)
        analysis = capture.analysis = _analyze(capture, gateway or DEFAULT_GATEWAY)
    return analysis


def needs_worker(capture: Capture) -> bool:
    """Whether a capture's verdict means parsing a message too large to parse on the loop
    (an event's or a failed call's verdict parses nothing)."""
    return capture.large and capture.kind == "dispatch" and capture.reply is not None


def analyze_in_worker(capture: Capture, gateway: Gateway) -> Analysis:
    """The verdict of a capture (a `snapshot`), computed in a worker thread or process."""
    return _analyze(capture, gateway)


def _provisional(capture: Capture, gateway: Gateway) -> Analysis:
    """A large capture's verdict before its messages are parsed: whether the reply's bytes changed."""
    reply = capture.reply
    changed = reply is not None and reply is not capture.request and reply != capture.request
    changed = changed and capture.kind == "dispatch"
    return Analysis(str(gateway.version), effect=changed)


def warnings_of(capture: Capture, gateway: Gateway | None = None) -> tuple[dict[str, str], ...]:
    """The lint of a Dispatch capture's reply."""
    return analyze(capture, gateway).warnings


def has_effect_of(capture: Capture, gateway: Gateway | None = None) -> bool:
    """Whether the gateway acts on anything the reply changed (the "modified" mark and filter)."""
    return analyze(capture, gateway).effect


def outcome_status_of(capture: Capture, gateway: Gateway | None = None) -> int | str | None:
    """An HTTP status the client gets from this hook, "continue", "dropped", or None (events)."""
    return analyze(capture, gateway).outcome_status


def _gateway_at(capture: Capture, gateway: Gateway) -> Gateway:
    if capture.fault and "oversize" in capture.fault and gateway.recv_max_size is None:
        # An oversize fault is made for the gateway's default receive limit: judge the reply by it.
        return dataclasses.replace(gateway, now=capture.received_us / 1e6, recv_max_size=GRPC_DEFAULT_RECV_LIMIT)
    return dataclasses.replace(gateway, now=capture.received_us / 1e6)


def _analyze(capture: Capture, gateway: Gateway) -> Analysis:
    version = str(gateway.version)
    if capture.kind != "dispatch":
        return Analysis(version)
    if capture.reply is None:
        # The gateway saw a gRPC error (the plugin failed, or the Object was refused).
        if not capture.hook_type:
            return Analysis(version)
        return Analysis(version, outcome_status=403 if capture.hook_type == "CustomKeyCheck" else 500)
    messages = _messages(capture)
    if messages is None:
        return Analysis(version)
    sent, reply = messages
    if capture.reply is capture.request and _plain_echo(capture, sent):
        # An echoed request hook is what the gateway sent: nothing in it the gateway would punish,
        # and the chain goes on. Skipping the lint and diff keeps the live stream cheap in echo mode.
        return Analysis(version, outcome_status="continue")
    if reply is None:  # the gateway cannot read the reply: to it, the call failed
        outcome = outcome_of(sent, None, gateway)
        return Analysis(version, (undecodable_reply(sent),), True, outcome.status)
    at = _gateway_at(capture, gateway)
    outcome = _outcome(capture, sent, reply, at)
    warnings = tuple(lint_reply(sent, reply, at, reply_size=len(capture.reply), outcome=outcome))
    effect = capture.reply is not capture.request and has_effect(diff_objects(sent, reply, gateway.version))
    return Analysis(version, warnings, effect, outcome.status)


def _plain_echo(capture: Capture, sent: pb.Object) -> bool:
    """An echo the gateway goes on with: a Pre/PostKeyAuth/Post Object as the gateway sends it, no override.

    An Object sent by hand (`send`, an import, a replay) may carry overrides; echoed, they answer the client.
    """
    if capture.hook_type not in _PLAIN_REQUEST_HOOKS or len(capture.request) > GRPC_DEFAULT_RECV_LIMIT:
        return False
    request = sent.request
    if not sent.HasField("request") or not request.HasField("return_overrides"):
        return False
    if request.return_overrides.response_code > 0:
        return False
    try:
        parse_request_uri(capture.path)
    except URIError:
        return False
    return True


def _messages(capture: Capture) -> tuple[pb.Object, pb.Object | None] | None:
    """The Object sent and the reply, parsed; the reply None when it is not an Object; None if neither is."""
    try:
        sent = pb.Object.FromString(capture.request)
    except DecodeError:
        return None
    if capture.reply is capture.request:
        return sent, sent
    if capture.reply is None:
        return sent, None
    try:
        return sent, pb.Object.FromString(capture.reply)
    except DecodeError:
        return sent, None


def _outcome(capture: Capture, sent: pb.Object, reply: pb.Object, gateway: Gateway) -> Outcome:
    assert capture.reply is not None
    return outcome_of(
        sent,
        reply,
        gateway,
        sent_size=len(capture.request),
        reply_size=len(capture.reply),
        reply_from="" if capture.reply is capture.request else "reply.",
    )


def outcome_view(
    capture: Capture,
    sent: pb.Object,
    reply: pb.Object | None,
    gateway: Gateway = DEFAULT_GATEWAY,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """The full outcome of a Dispatch capture, JSON-ready (docs/outcome.md).

    `sent` and `reply` are the capture's messages as the view shows them (redacted copies);
    `reply` None: the call failed, or the reply is not an Object. The outcome is computed on the
    capture's real bytes (a redacted body has another length), then shown with the `redactor`'s
    hiding: credential header values, query values, and the texts (bodies, auth) of the redacted copies.
    """
    real = _messages(capture)
    if real is None or redactor is None or not redactor.enabled:
        return _outcome_dict(capture, sent, reply, gateway)
    real_sent, real_reply = real
    if reply is None:
        real_reply = None
    truth = _outcome_dict(capture, real_sent, real_reply, gateway)
    return _shown(truth, _outcome_dict(capture, sent, reply, gateway), redactor)


def _shown(truth: dict[str, Any], shown: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The real outcome with what the redacted one hides hidden."""

    def headers(pairs: list[list[str]]) -> list[list[str]]:
        return [[name, hide(value) if value and redactor.hides_header(name) else value] for name, value in pairs]

    # The auth part and the notes quote the token and metadata: the redacted outcome's.
    out = dict(truth, auth=shown["auth"], notes=shown["notes"])
    upstream = truth["upstream_request"]
    if upstream is not None:
        query = redactor.url("/?" + upstream["query"])[2:] if upstream["query"] else ""
        url = redactor.url(upstream["url"])
        out["upstream_request"] = dict(upstream, url=url, query=query, headers=headers(upstream["headers"]))
        out["summary"] = truth["summary"].replace(upstream["url"], url)
    response, shown_response = truth["client_response"], shown["client_response"]
    if response is not None:
        body = shown_response["body"] if shown_response is not None else None
        out["client_response"] = dict(response, headers=headers(response["headers"]), body=body)
        if body != response["body"]:
            out["summary"] = shown["summary"]  # the error template's summary quotes its body
    return out


def _outcome_dict(capture: Capture, sent: pb.Object, reply: pb.Object | None, gateway: Gateway) -> dict[str, Any]:
    at = _gateway_at(capture, gateway)
    if reply is None:
        outcome = outcome_of(sent, None, at)
        if capture.reply is not None:
            summary = outcome.summary.replace("the plugin call failed", "the reply is not a coprocess.Object")
            outcome = dataclasses.replace(outcome, summary=summary)
        elif capture.error:
            outcome = dataclasses.replace(
                outcome, summary=outcome.summary.replace("the plugin call failed", f"the call failed ({capture.error})")
            )
        return outcome.as_dict()
    return _outcome(capture, sent, reply, at).as_dict()
