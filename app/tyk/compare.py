"""Two replies to one Object, compared by what the gateway does with them (the outcome), not by their bytes.

The gateway model (app.tyk.outcome) says what each reply leads to: the request sent
upstream, the response the client gets, or a dropped connection. Two replies are the same
when those are the same: a re-serialized echo, headers in another order, or a change the
gateway ignores (the body string, the request's headers map) make no difference; another
upstream URL, header value, body, status or session does. Pure and I/O-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from app.tyk.diff import diff_objects
from app.tyk.outcome import Gateway, Outcome, Status, outcome_of
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether two replies lead to the same outcome, and if not, the first difference in one line."""

    same: bool
    before: Status
    after: Status
    difference: str = ""
    """Empty when the same; else e.g. "upstream header X-Plan: 'gold' -> 'silver'"."""
    differences: int = 0
    """How many differences in all (the line names the first)."""


def parse_reply(data: bytes | None) -> pb.Object | None:
    """A reply as the gateway reads it: None when the call failed or the bytes are not an Object."""
    if data is None:
        return None
    try:
        return pb.Object.FromString(data)
    except DecodeError:
        return None


def outcome(sent: pb.Object, sent_size: int, reply: bytes | None, gateway: Gateway) -> Outcome:
    """The gateway model's outcome of one reply (bytes, or None for a failed call)."""
    message = parse_reply(reply)
    return outcome_of(
        sent, message, gateway, sent_size=sent_size, reply_size=0 if reply is None else len(reply), reply_from=""
    )


def compare(
    sent: bytes, before: bytes | None, after: bytes | None, gateway: Gateway, against: Gateway | None = None
) -> Verdict:
    """Compare the outcome of reply `before` with that of `after`, both to the Object `sent`.

    With `against`, `after` is judged by that gateway instead (the same reply under two Tyk
    versions: the upgrade impact).
    """
    message = pb.Object.FromString(sent)
    old = outcome(message, len(sent), before, gateway)
    new = outcome(message, len(sent), after, against or gateway)
    differences = list(_differences(message, old, parse_reply(before), new, parse_reply(after)))
    if not differences:
        return Verdict(True, old.status, new.status)
    first = differences[0]
    return Verdict(False, old.status, new.status, first, len(differences))


def _differences(
    sent: pb.Object, old: Outcome, old_reply: pb.Object | None, new: Outcome, new_reply: pb.Object | None
) -> Iterator[str]:
    if old.status != new.status or old.result != new.result:
        yield f"{_status(old)} -> {_status(new)}: {new.summary}"
        return
    before, after = old.upstream_request, new.upstream_request
    if before is not None and after is not None:
        yield from _field("upstream method", before.method, after.method)
        yield from _field("upstream URL", before.url, after.url)
        # The gateway's own User-Agent (Tyk/<version>) is not the reply's doing: an upgrade changes it for all.
        yield from _headers("upstream header", _own_agent(before.headers), _own_agent(after.headers))
        yield from _body("upstream body", _request_body(old_reply), _request_body(new_reply))
    response_before, response_after = old.client_response, new.client_response
    if response_before is not None and response_after is not None:
        yield from _field("response source", response_before.source, response_after.source)
        yield from _headers("response header", response_before.headers, response_after.headers)
        yield from _body(
            "response body",
            _response_body(response_before.body, old_reply),
            _response_body(response_after.body, new_reply),
        )
        yield from _field("events", response_before.events, response_after.events)
    if old.auth is not None and new.auth is not None:
        yield from _field("auth", old.auth.allowed, new.auth.allowed)
        yield from _field("session key", old.auth.session_key, new.auth.session_key)
        yield from _field("auth metadata", dict(old.auth.metadata), dict(new.auth.metadata))
        yield from _field("session caching", old.auth.caching, new.auth.caching)
        if old_reply is not None and new_reply is not None and sent.hook_type == common.CustomKeyCheck:
            yield from _session(old_reply, new_reply)


def _status(outcome: Outcome) -> str:
    status = outcome.status
    return f"HTTP {status}" if isinstance(status, int) else str(status)


def _field(what: str, before: Any, after: Any) -> Iterator[str]:
    if before != after:
        yield f"{what}: {before!r} -> {after!r}"


def _headers(what: str, before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...]) -> Iterator[str]:
    # Order between names does not reach the client as a difference; the order of one name's values does.
    old: dict[str, list[str]] = {}
    new: dict[str, list[str]] = {}
    for name, value in before:
        old.setdefault(name, []).append(value)
    for name, value in after:
        new.setdefault(name, []).append(value)
    for name in sorted(set(old) | set(new)):
        if name not in old:
            yield f"{what} {name} added: {_one(new[name])!r}"
        elif name not in new:
            yield f"{what} {name} removed (was {_one(old[name])!r})"
        elif old[name] != new[name]:
            yield f"{what} {name}: {_one(old[name])!r} -> {_one(new[name])!r}"


_TYK_AGENT = re.compile(r"Tyk/\d+\.\d+\.\d+")


def _own_agent(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, "Tyk/<version>" if name == "User-Agent" and _TYK_AGENT.fullmatch(value) else value)
        for name, value in headers
    )


def _one(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _body(what: str, before: bytes, after: bytes) -> Iterator[str]:
    if before != after:
        yield f"{what} changed ({len(before)} -> {len(after)} bytes)"


def _request_body(reply: pb.Object | None) -> bytes:
    return b"" if reply is None else reply.request.raw_body


def _response_body(written: str | None, reply: pb.Object | None) -> bytes:
    """The body the client gets: the one the model writes (overrides, errors), else the reply's raw_body."""
    if written is not None:
        return written.encode()
    return b"" if reply is None else reply.response.raw_body


def _session(before: pb.Object, after: pb.Object) -> Iterator[str]:
    """The session a CustomKeyCheck reply stores (rate limits, quotas, access rights...), field by field."""
    for change in diff_objects(before, after):
        if change["kind"].startswith("session") and not change["ignored"]:
            yield f"{change['kind']} {change['what']}: {change['before']!r} -> {change['after']!r}"
