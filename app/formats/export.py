"""The export file format (docs/export-format.md): captures <-> a versioned JSON document.

The Object or Event inside each record is protobuf JSON, so a record's `request`
can be sent again as-is with `tyk-inspector send`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format

from app.capture.record import Capture, Kind, summarize_event, summarize_object
from app.formats.document import NO_REDACTION, RECORD_FIELDS, capture_record, epoch_us, iso_time, json_text
from app.redaction.redact import Redactor
from app.tyk.protocol import Event, EventReply, Object

__all__ = ["ImportFormatError", "capture_record", "export_chunks", "parse_document"]

FORMAT = "tyk-inspector-export"
VERSION = 1


class ImportFormatError(ValueError):
    """The document is not a valid export; the message says where and why."""


def export_header(exported_at_us: int, redactor: Redactor = NO_REDACTION) -> str:
    """The document up to its first record: the header object, left open for the records."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": iso_time(exported_at_us),
        "redacted": redactor.enabled,
    }
    return json.dumps(header)[:-1] + ', "captures": ['


EXPORT_FOOTER = "\n]}\n"


def export_records(captures: Iterable[Capture], redactor: Redactor = NO_REDACTION, first: bool = True) -> str:
    """Records for the middle of the document, each on its own line. Thread-safe on snapshots."""
    parts = []
    for capture in captures:
        parts.append(("\n" if first else ",\n") + json_text(capture_record(capture, redactor)))
        first = False
    return "".join(parts)


def export_chunks(captures: Iterable[Capture], exported_at_us: int, redactor: Redactor = NO_REDACTION) -> Iterator[str]:
    """The export document in pieces, one record at a time, so a large export needs little memory."""
    yield export_header(exported_at_us, redactor)
    first = True
    for capture in captures:
        yield export_records((capture,), redactor, first)
        first = False
    yield EXPORT_FOOTER


def parse_document(data: bytes | bytearray | str) -> list[Capture]:
    """Captures from an export document, all or nothing: any bad record rejects the whole file.

    Runs in a worker thread for large imports: the document is read one record at a time
    (see `_records`), so no single step holds the interpreter for the whole file.
    """
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"not UTF-8 text: {exc}") from None
    captures = []
    index = -1
    try:
        for index, record in enumerate(_records(text)):
            try:
                captures.append(capture_from_record(record))
            except (ValueError, TypeError, OverflowError) as exc:  # ImportFormatError, or a field of the wrong type
                raise ImportFormatError(f"capture #{index}: {exc}") from None
    except RecursionError:
        where = "the header" if index < 0 and not captures else f"capture #{index + 1}"
        raise ImportFormatError(f"{where} is nested too deeply to be an export") from None
    return captures


def _records(text: str) -> Iterator[Any]:
    """The records of the "captures" list, one JSON value at a time, after checking the header.

    Kept instead of ijson: the standard library's C decoder, one record at a time, read a 33 MB export of
    20,000 records in 0.64-0.85 s where ijson's C backend took 1.2-1.5 s, and it keeps the number checks
    below (digits, infinities, NaN) in the one decoder (docs/benchmarks.md, "Import parsing")."""
    doc, position = _open_document(text)
    if doc.get("format") != FORMAT:
        raise ImportFormatError(f'not a Tyk Inspector export: expected "format": "{FORMAT}"')
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise ImportFormatError(f"unsupported export version {version!r}: this build reads {VERSION}")
    if position is None:
        raise ImportFormatError('"captures" must be a list')
    while True:
        position = _skip(text, position)
        if text.startswith("]", position):
            position += 1
            break
        value, position = _value(text, position)
        yield value
        position = _skip(text, position)
        if text.startswith(",", position):
            position += 1
        elif not text.startswith("]", position):
            raise ImportFormatError(f"not a JSON document: expected ',' or ']' at character {position}")
    _close_document(text, position, doc)


def _open_document(text: str) -> tuple[dict[str, Any], int | None]:
    """The fields before "captures" and where its list starts (None if it is not a list)."""
    position = _skip(text, 0)
    if not text.startswith("{", position):
        # Not an object: let the JSON parser say what is wrong, if anything.
        _value(text, position)
        raise ImportFormatError(f'not a Tyk Inspector export: expected an object with "format": "{FORMAT}"')
    position += 1
    doc: dict[str, Any] = {}
    while True:
        position = _skip(text, position)
        if text.startswith("}", position):
            _value(text, position + 1, expect_end=True)
            return doc, None
        key, position = _value(text, position)
        if not isinstance(key, str):
            raise ImportFormatError(f"not a JSON document: expected a key at character {position}")
        position = _skip(text, position)
        if not text.startswith(":", position):
            raise ImportFormatError(f"not a JSON document: expected ':' at character {position}")
        position = _skip(text, position + 1)
        if key == "captures" and text.startswith("[", position):
            return doc, position + 1
        doc[key], position = _value(text, position)
        position = _skip(text, position)
        if text.startswith(",", position):
            position += 1


def _close_document(text: str, position: int, doc: dict[str, Any]) -> None:
    """What follows the list: more header fields, then the end of the object and of the text."""
    while True:
        position = _skip(text, position)
        if text.startswith("}", position):
            _value(text, position + 1, expect_end=True)
            return
        if not text.startswith(",", position):
            raise ImportFormatError(f"not a JSON document: expected ',' or '}}' at character {position}")
        key, position = _value(text, _skip(text, position + 1))
        position = _skip(text, position)
        if not isinstance(key, str) or not text.startswith(":", position):
            raise ImportFormatError(f"not a JSON document: expected a key at character {position}")
        doc[key], position = _value(text, _skip(text, position + 1))


_WHITESPACE = " \t\n\r"


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _finite(number: str) -> float:
    value = float(number)
    if value in (float("inf"), float("-inf")):
        raise ImportFormatError(f"number {number} is out of range")
    return value


MAX_INTEGER_DIGITS = 100
"""No field of an export holds more than a 64-bit number; Python refuses past 4,300 digits anyway."""


def _integer(number: str) -> int:
    digits = len(number) - number.startswith("-")
    if digits > MAX_INTEGER_DIGITS:
        raise ImportFormatError(f"a number with {digits} digits is out of range (at most {MAX_INTEGER_DIGITS})")
    return int(number)


def _constant(name: str) -> Any:
    raise ImportFormatError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=_finite, parse_int=_integer, parse_constant=_constant)


def _value(text: str, position: int, expect_end: bool = False) -> tuple[Any, int]:
    """One JSON value at `position`, or (with expect_end) nothing but whitespace."""
    if expect_end:
        end = _skip(text, position)
        if end != len(text):
            raise ImportFormatError(f"not a JSON document: extra data at character {end}")
        return None, end
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"not a JSON document: {exc}") from None


def capture_from_record(record: Any) -> Capture:
    if not isinstance(record, dict):
        raise ImportFormatError("must be an object")
    kind: Kind = _field(record, "kind", str)
    if kind not in ("dispatch", "event"):
        raise ImportFormatError(f'"kind" must be "dispatch" or "event", not {kind!r}')
    message_type = Object if kind == "dispatch" else Event
    request = _request_bytes(record, message_type)
    echo = record.get("echo", False)
    if not isinstance(echo, bool):
        raise ImportFormatError('"echo" must be true or false')
    reply: bytes | None
    if echo:
        reply = request
    elif record.get("reply") is not None:
        reply_type = Object if kind == "dispatch" else EventReply
        reply = _parse_message(record["reply"], reply_type, "reply")
    elif record.get("reply_base64") is not None:
        reply = _base64(record, "reply_base64")
    else:
        reply = None
    capture = Capture(
        kind=kind,
        request=request,
        reply=reply,
        received_us=_timestamp_us(_field(record, "received_at", str)),
        metadata=_metadata(record.get("metadata") or []),
        duration_ns=round(_number(record, "duration_ms", 0.0) * 1e6),
        imported=True,
        # Its id in the export until the store gives it one: what `replay_of` links refer to.
        id=_exported_id(record),
    )
    for name in RECORD_FIELDS:
        setattr(capture, name, _record_field(record, name))
    if capture.imported_id is not None and capture.imported_id <= 0:
        raise ImportFormatError(f'"imported_id" must be a positive id, not {capture.imported_id}')
    # Where it was first recorded: the id there (an export of an import says it), else its id in the file.
    capture.imported_id = capture.imported_id or capture.id or None
    capture.peer = capture.peer or ""
    capture.answered_by = capture.answered_by or "echo"
    if record.get("request") is not None:
        if kind == "dispatch":
            summarize_object(capture, Object.FromString(request))
        else:
            summarize_event(capture, Event.FromString(request))
    return capture


# What type each restored field has (None always allowed, except where a default stands in).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "peer": (str,),
    "error": (str,),
    "truncated": (bool,),
    "answered_by": (str,),
    "rule": (str,),
    "upstream": (str,),
    "upstream_status": (str,),
    "upstream_ms": (int, float),
    "replay_of": (int,),
    "imported_id": (int,),
    "grpc_status": (str,),
    "fault": (str,),
    "shadow": (str,),
    "shadow_detail": (str,),
    "intercepted": (str,),
    "intercept_edit": (str,),
}
ANSWERED_BY = ("echo", "upstream", "mock", "fallback", "fault", "intercept")


def _record_field(record: dict[str, Any], name: str) -> Any:
    value = record.get(name)
    if name == "truncated":
        value = bool(value) if value is None else value
    if value is None:
        return None
    types = _FIELD_TYPES[name]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ImportFormatError(f'"{name}" must be {" or ".join(t.__name__ for t in types)}, not {value!r}')
    if name == "answered_by" and value not in ANSWERED_BY:
        raise ImportFormatError(f'"answered_by" must be one of {", ".join(ANSWERED_BY)}, not {value!r}')
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if name == "upstream_ms" else value
    return value


def _exported_id(record: dict[str, Any]) -> int:
    value = record.get("id")
    return value if type(value) is int and value > 0 else 0


def _number(record: dict[str, Any], name: str, default: float) -> float:
    value = record.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ImportFormatError(f'"{name}" must be a number, not {value!r}')
    return float(value)


def _request_bytes(record: dict[str, Any], message_type: Any) -> bytes:
    if record.get("request") is not None:
        return _parse_message(record["request"], message_type, "request")
    if not isinstance(record.get("request_base64"), str):
        raise ImportFormatError('needs "request" (protobuf JSON) or "request_base64"')
    return _base64(record, "request_base64")


def _base64(record: dict[str, Any], name: str) -> bytes:
    encoded = record.get(name)
    if not isinstance(encoded, str):
        raise ImportFormatError(f'"{name}" must be a base64 string')
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ImportFormatError(f'"{name}" is not base64: {exc}') from None


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
        return epoch_us(text)
    except ValueError:
        raise ImportFormatError(f'"received_at" is not an ISO 8601 time: {text!r}') from None
    except OverflowError:
        raise ImportFormatError(f'"received_at" is out of range: {text!r}') from None


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in value
    ):
        raise ImportFormatError('"metadata" must be a list of [key, value] string pairs')
    return tuple((key, val) for key, val in value)
