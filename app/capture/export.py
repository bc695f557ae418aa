"""The export file format (docs/export-format.md): captures <-> a versioned JSON document.

The Object or Event inside each record is protobuf JSON, so a record's `request`
can be sent again as-is with `tyk-inspector send`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from app.capture.record import Capture, Kind, summarize_event, summarize_object
from app.capture.redact import Redactor
from app.capture.views import NO_REDACTION, iso_time, message_to_json, metadata_pairs
from app.tyk.protocol import Event, EventReply, Object

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FORMAT = "tyk-inspector-export"
VERSION = 1


class ImportFormatError(ValueError):
    """The document is not a valid export; the message says where and why."""


def capture_record(capture: Capture, redactor: Redactor = NO_REDACTION) -> dict[str, Any]:
    """One capture as an export record."""
    record: dict[str, Any] = {
        "id": capture.id,
        "kind": capture.kind,
        "received_at": iso_time(capture.received_us),
        "peer": capture.peer,
        "metadata": metadata_pairs(capture.metadata, redactor),
        "duration_ms": capture.duration_ns / 1e6,
        "error": capture.error,
        "imported": capture.imported,
        "truncated": capture.truncated,
        "echo": capture.reply is capture.request,
        "request": None,
        "reply": None,
    }
    try:
        if capture.kind == "dispatch":
            obj = Object.FromString(capture.request)
            redactor.object(obj)
            record["request"] = message_to_json(obj)
        else:
            event = Event.FromString(capture.request)
            event.payload = redactor.event_payload(event.payload)
            record["request"] = message_to_json(event)
    except DecodeError:  # undecodable bytes are kept as they arrived
        record["request_base64"] = base64.b64encode(capture.request).decode("ascii")
    if capture.reply is not None and not record["echo"]:
        if capture.kind == "dispatch":
            reply = Object.FromString(capture.reply)
            redactor.object(reply)
            record["reply"] = message_to_json(reply)
        else:
            record["reply"] = message_to_json(EventReply.FromString(capture.reply))
    return record


def export_chunks(captures: Iterable[Capture], exported_at_us: int, redactor: Redactor = NO_REDACTION) -> Iterator[str]:
    """The export document in pieces, one record at a time, so a large export needs little memory."""
    exported_at = iso_time(exported_at_us)
    header = {"format": FORMAT, "version": VERSION, "exported_at": exported_at, "redacted": redactor.enabled}
    yield json.dumps(header)[:-1] + ', "captures": ['  # the header object, left open for the records
    separator = "\n"
    for capture in captures:
        yield separator + json.dumps(capture_record(capture, redactor), ensure_ascii=False)
        separator = ",\n"
    yield "\n]}\n"


def parse_document(data: bytes | str) -> list[Capture]:
    """Captures from an export document, all or nothing: any bad record rejects the whole file."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImportFormatError(f"not a JSON document: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ImportFormatError(f'not a Tyk Inspector export: expected "format": "{FORMAT}"')
    if doc.get("version") != VERSION:
        raise ImportFormatError(f"unsupported export version {doc.get('version')!r}: this build reads {VERSION}")
    records = doc.get("captures")
    if not isinstance(records, list):
        raise ImportFormatError('"captures" must be a list')
    captures = []
    for index, record in enumerate(records):
        try:
            captures.append(capture_from_record(record))
        except (ValueError, TypeError) as exc:  # ImportFormatError, or a field of the wrong type
            raise ImportFormatError(f"capture #{index}: {exc}") from None
    return captures


def capture_from_record(record: Any) -> Capture:
    if not isinstance(record, dict):
        raise ImportFormatError("must be an object")
    kind: Kind = _field(record, "kind", str)
    if kind not in ("dispatch", "event"):
        raise ImportFormatError(f'"kind" must be "dispatch" or "event", not {kind!r}')
    message_type = Object if kind == "dispatch" else Event
    request = _request_bytes(record, message_type)
    echo = bool(record.get("echo", False))
    reply: bytes | None
    if echo:
        reply = request
    elif record.get("reply") is None:
        reply = None
    else:
        reply_type = Object if kind == "dispatch" else EventReply
        reply = _parse_message(record["reply"], reply_type, "reply")
    capture = Capture(
        kind=kind,
        request=request,
        reply=reply,
        received_us=_timestamp_us(_field(record, "received_at", str)),
        peer=str(record.get("peer") or ""),
        metadata=_metadata(record.get("metadata") or []),
        duration_ns=round(float(record.get("duration_ms") or 0) * 1e6),
        error=record.get("error") if isinstance(record.get("error"), str) else None,
        imported=True,
        truncated=bool(record.get("truncated", False)),
    )
    if record.get("request") is not None:
        if kind == "dispatch":
            summarize_object(capture, Object.FromString(request))
        else:
            summarize_event(capture, Event.FromString(request))
    return capture


def _request_bytes(record: dict[str, Any], message_type: Any) -> bytes:
    if record.get("request") is not None:
        return _parse_message(record["request"], message_type, "request")
    encoded = record.get("request_base64")
    if not isinstance(encoded, str):
        raise ImportFormatError('needs "request" (protobuf JSON) or "request_base64"')
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ImportFormatError(f'"request_base64" is not base64: {exc}') from None


def _parse_message(value: Any, message_type: Any, name: str) -> bytes:
    if not isinstance(value, dict):
        raise ImportFormatError(f'"{name}" must be a protobuf JSON object')
    try:
        message = json_format.ParseDict(value, message_type())
    except json_format.ParseError as exc:
        raise ImportFormatError(f'"{name}" is not a valid {message_type.DESCRIPTOR.full_name}: {exc}') from None
    return bytes(message.SerializeToString())


def _field(record: dict[str, Any], name: str, expected: type) -> Any:
    value = record.get(name)
    if not isinstance(value, expected):
        raise ImportFormatError(f'"{name}" is missing or not a {expected.__name__}')
    return value


def _timestamp_us(text: str) -> int:
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ImportFormatError(f'"received_at" is not an ISO 8601 time: {text!r}') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return (parsed - EPOCH) // dt.timedelta(microseconds=1)


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in value
    ):
        raise ImportFormatError('"metadata" must be a list of [key, value] string pairs')
    return tuple((key, val) for key, val in value)
