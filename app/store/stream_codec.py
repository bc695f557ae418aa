"""A capture as the fields of one Redis Stream entry, and back.

The wire bytes travel as they are (`q`, and `r` only when the reply differs from the
request, so an echo is stored once); everything else is one small JSON list (`m`)
of every plain field of Capture, so a field added to Capture is kept too. The list
starts with the id of its schema (the field names, kept once in Redis), so replicas
of different versions sharing a store still read each other's captures: a field one
of them does not know is left out, a field it misses keeps its default.

Another process writes these entries, so nothing in one is trusted: a value of the wrong
type makes the entry unreadable (ValueError), never a capture that fails later in the page.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import zlib
from collections.abc import Callable
from typing import Any

from app.capture.record import Capture

# Not stored: the bytes (their own fields), the id (the entry's id), and what is
# derived again on first use (the analysis, the encoded summary).
_NOT_META = frozenset({"request", "reply", "id", "analysis", "summary_json"})
META_FIELDS = (*(f.name for f in dataclasses.fields(Capture) if f.name not in _NOT_META), "reply_kind")
SCHEMA = json.dumps(META_FIELDS)
SCHEMA_ID = f"{zlib.crc32(SCHEMA.encode()):08x}"
_CAPTURE_FIELDS = frozenset(f.name for f in dataclasses.fields(Capture))

# What a value read from JSON must be for each type a plain Capture field is declared with.
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "None": lambda v: v is None,
    "Kind": lambda v: v in ("dispatch", "event"),
}


def _field_check(annotation: str) -> Callable[[Any], bool]:
    checks = [_TYPE_CHECKS[part] for part in annotation.split(" | ")]  # KeyError: a new type needs a check here
    return lambda value: any(check(value) for check in checks)


_FIELD_CHECKS = {
    f.name: _field_check(str(f.type))
    for f in dataclasses.fields(Capture)
    if f.name in META_FIELDS and f.name != "metadata"
}

ECHO, NO_REPLY, OWN_REPLY = "e", "n", "r"
# A capture's meta is its summary fields (a few hundred bytes; gRPC metadata is bounded by the
# transport): one far larger was not written by an inspector, and decoding it would hold the loop.
MAX_META_BYTES = 1024 * 1024

_encoder = json.JSONEncoder(separators=(",", ":"), default=lambda v: base64.b64encode(v).decode("ascii"))


def reply_kind(capture: Capture) -> str:
    if capture.reply is None:
        return NO_REPLY
    return ECHO if capture.reply is capture.request else OWN_REPLY


def encode_meta(capture: Capture) -> bytes:
    """Binary metadata values (keys ending in -bin) go as base64, as gRPC itself would print them."""
    values: list[Any] = [SCHEMA_ID]
    values += [getattr(capture, name) for name in META_FIELDS[:-1]]
    values.append(reply_kind(capture))
    return _encoder.encode(values).encode()


def schema_of(meta: bytes) -> str:
    """The schema id a meta list starts with."""
    return meta[2:10].decode("ascii", "replace")


def decode(capture_id: int, fields: dict[bytes, bytes], schemas: dict[str, tuple[str, ...]]) -> Capture:
    """The capture of a stream entry; raises ValueError on an entry this build cannot read."""
    try:
        if len(fields[b"m"]) > MAX_META_BYTES:
            raise ValueError(f"its meta is larger than {MAX_META_BYTES} bytes")
        values = json.loads(fields[b"m"])
        request = fields[b"q"]
        names = schemas[values[0]]
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"stream entry {capture_id} is not a capture this build can read: {exc!r}") from None
    try:
        if not isinstance(values, list) or not isinstance(request, bytes):
            raise ValueError("its meta is not a list")
        meta = dict(zip(names, values[1:], strict=False))
        kind = meta.pop("reply_kind", NO_REPLY)
        reply: bytes | None = None
        if kind == ECHO:
            reply = request
        elif kind == OWN_REPLY:
            reply = fields.get(b"r", b"")
        elif kind != NO_REPLY:
            raise ValueError(f"reply kind {kind!r} is none of {ECHO!r}, {NO_REPLY!r}, {OWN_REPLY!r}")
        meta["metadata"] = _metadata(meta.get("metadata"))
        known = {name: value for name, value in meta.items() if name in _CAPTURE_FIELDS}
        for name, value in known.items():
            check = _FIELD_CHECKS.get(name)
            if check is not None and not check(value):
                raise ValueError(f"field {name!r} has a value of type {type(value).__name__}")
        capture = Capture(request=request, reply=reply, **known)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stream entry {capture_id} is not a capture this build can read: {exc}") from None
    capture.id = capture_id
    return capture


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    """gRPC metadata as stored: a list of [name, value] string pairs, binary values (-bin) in base64."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("field 'metadata' is not a list")
    pairs: list[Any] = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
            raise ValueError("field 'metadata' holds something else than [name, value] string pairs")
        name, text = pair
        try:
            pairs.append((name, base64.b64decode(text, validate=True) if name.endswith("-bin") else text))
        except binascii.Error:
            raise ValueError(f"metadata {name!r} is not base64") from None
    return tuple(pairs)  # -bin values are bytes, as gRPC gives them
