"""The one way a capture becomes JSON: decode, redact and convert its messages, with one error handling.

The detail view, the export and the console log all start here, so they show the same
fields and treat undecodable or odd messages the same way. Pure functions of a capture
snapshot: safe to run in a worker thread (the bytes are immutable, nothing is cached here).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from app.capture.record import Capture
from app.redaction.redact import Redactor
from app.tyk.protocol import Event, EventReply, Object

NO_REDACTION = Redactor(enabled=False)

# JSON is written in pieces of at most this many characters of a string, and handed on in
# chunks of about OUTPUT_CHUNK bytes: no single step holds the interpreter for long, so the
# event loop (and the gateway's calls) keep their turns while a worker thread serializes.
STRING_PIECE = 256 * 1024
OUTPUT_CHUNK = 1024 * 1024
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# The capture's own fields an export record carries as they are (besides id, kind, time,
# metadata, duration and the messages), and an import restores.
RECORD_FIELDS: tuple[str, ...] = (
    "peer",
    "error",
    "truncated",
    "answered_by",
    "rule",
    "upstream",
    "upstream_status",
    "upstream_ms",
    "replay_of",
    "imported_id",
    "grpc_status",
    "fault",
    "shadow",
    "shadow_detail",
    "intercepted",
    "intercept_edit",
)


def iso_time(epoch_us: int) -> str:
    """'2026-11-23T18:10:48.123456Z' from microseconds since the epoch."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=epoch_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch_us(text: str) -> int:
    """Microseconds since the epoch from an ISO 8601 time (UTC when it names no zone), one `iso_time` can
    print again; OverflowError when it cannot, ValueError when it is no ISO 8601 time."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    moment = (parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    iso_time(moment)  # what every export and detail will do with it
    return moment


def message_to_json(message: Message) -> dict[str, Any]:
    """Protobuf JSON, camelCase, as MessageToJson prints it and json_format.Parse reads it."""
    return json_format.MessageToDict(message)


def metadata_pairs(metadata: tuple[tuple[str, str | bytes], ...], redactor: Redactor = NO_REDACTION) -> list[list[str]]:
    """gRPC metadata as [key, value] pairs, credentials hidden; binary (-bin) values as base64."""
    return [
        [key, value if isinstance(value, str) else base64.b64encode(value).decode("ascii")]
        for key, value in redactor.metadata(metadata)
    ]


def snapshot(capture: Capture) -> Capture:
    """A copy that later changes to the stored capture (lint cache, stripping) cannot reach.

    The message bytes are shared, not copied: bytes never change. An echo stays an echo
    (`reply is request`).
    """
    # gRPC hands metadata as its own tuple type; plain pairs can go to a worker process.
    return replace(capture, metadata=tuple((key, value) for key, value in capture.metadata))


@dataclass(slots=True)
class Decoded:
    """A capture's messages, redacted, as protobuf JSON; raw base64 where they do not decode."""

    request: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    request_base64: str | None = None
    reply_base64: str | None = None
    request_object: Any = None
    """The redacted Object (Dispatch) or Event, for body views and the diff."""
    reply_object: Any = None
    """The redacted reply Object of a Dispatch that was not echoed."""
    event_payload: str | None = None
    """The redacted payload of an Event."""
    problems: list[str] = field(default_factory=list)
    """What could not be shown, and why."""


def decode(capture: Capture, redactor: Redactor = NO_REDACTION) -> Decoded:
    """Decode and redact a capture's request and reply. Never raises for what a call may carry."""
    decoded = Decoded()
    echo = capture.reply is capture.request
    if capture.kind == "event":
        _decode_event(capture, redactor, decoded)
    else:
        _decode_object(capture, redactor, decoded, echo)
    return decoded


def _decode_event(capture: Capture, redactor: Redactor, decoded: Decoded) -> None:
    try:
        event = Event.FromString(capture.request)
    except DecodeError:
        decoded.request_base64 = base64.b64encode(capture.request).decode("ascii")
        return
    try:
        event.payload = redactor.event_payload(event.payload)
    except Exception as exc:  # fail closed: show nothing rather than a secret
        decoded.problems.append(f"event payload hidden: it could not be redacted ({type(exc).__name__})")
        event.payload = ""
    decoded.request = message_to_json(event)
    decoded.request_object = event
    decoded.event_payload = event.payload
    if capture.reply is not None:
        try:
            decoded.reply = message_to_json(EventReply.FromString(capture.reply))
        except DecodeError:
            decoded.reply_base64 = base64.b64encode(capture.reply).decode("ascii")


def _decode_object(capture: Capture, redactor: Redactor, decoded: Decoded, echo: bool) -> None:
    request = _redacted_object(capture.request, redactor, decoded, "request")
    if request is None:
        decoded.request_base64 = base64.b64encode(capture.request).decode("ascii")
    else:
        decoded.request = message_to_json(request)
        decoded.request_object = request
    if capture.reply is None or echo:
        return
    reply = _redacted_object(capture.reply, redactor, decoded, "reply")
    if reply is None:
        decoded.reply_base64 = base64.b64encode(capture.reply).decode("ascii")
    else:
        decoded.reply = message_to_json(reply)
        decoded.reply_object = reply


def _redacted_object(data: bytes, redactor: Redactor, decoded: Decoded, which: str) -> Any:
    try:
        obj = Object.FromString(data)
    except DecodeError:
        decoded.problems.append(f"the {which} is not a valid coprocess.Object; shown as raw bytes")
        return None
    try:
        redactor.object(obj)
    except Exception as exc:  # fail closed
        decoded.problems.append(f"the {which} could not be redacted ({type(exc).__name__}); shown as nothing")
        return Object()
    return obj


def capture_record(capture: Capture, redactor: Redactor = NO_REDACTION) -> dict[str, Any]:
    """One capture as an export record (docs/export-format.md)."""
    decoded = decode(capture, redactor)
    record: dict[str, Any] = {
        "id": capture.id,
        "kind": capture.kind,
        "received_at": iso_time(capture.received_us),
        "metadata": metadata_pairs(capture.metadata, redactor),
        "duration_ms": capture.duration_ns / 1e6,
        "imported": capture.imported,
        "echo": capture.reply is capture.request,
    }
    record.update({name: getattr(capture, name) for name in RECORD_FIELDS})
    record["request"] = decoded.request
    record["reply"] = decoded.reply
    if decoded.request_base64 is not None:
        record["request_base64"] = decoded.request_base64
    if decoded.reply_base64 is not None:
        record["reply_base64"] = decoded.reply_base64
    return record


def json_chunks(value: Any, piece: int = STRING_PIECE) -> list[bytes]:
    """`value` as compact UTF-8 JSON, in chunks of about a megabyte, built in bounded steps
    (strings escaped `piece` characters at a time)."""
    chunks: list[bytes] = []
    parts: list[str] = []
    size = 0
    for text in _pieces(value, piece):
        parts.append(text)
        size += len(text)
        if size >= OUTPUT_CHUNK:
            chunks.append("".join(parts).encode("utf-8"))
            parts, size = [], 0
    if parts or not chunks:
        chunks.append("".join(parts).encode("utf-8"))
    return chunks


def json_text(value: Any) -> str:
    """`value` as compact JSON text, built in bounded steps (see json_chunks)."""
    return "".join(_pieces(value))


def _pieces(value: Any, piece: int = STRING_PIECE) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) <= piece:
            yield _dumps(value)
            return
        # Escaping is character by character, so a string escaped in slices is the same.
        yield '"'
        for start in range(0, len(value), piece):
            yield _dumps(value[start : start + piece])[1:-1]
        yield '"'
    elif isinstance(value, dict):
        separator = "{"
        for key, item in value.items():
            yield separator + _dumps(key if isinstance(key, str) else str(key)) + ":"
            yield from _pieces(item, piece)
            separator = ","
        yield "}" if separator == "," else "{}"
    elif isinstance(value, list | tuple):
        separator = "["
        for item in value:
            yield separator
            yield from _pieces(item, piece)
            separator = ","
        yield "]" if separator == "," else "[]"
    else:
        yield _dumps(value)
