"""A capture as the fields of one Redis Stream entry, and back.

The wire bytes travel as they are (`q`, and `r` only when the reply differs from the
request, so an echo is stored once); everything else is one small JSON list (`m`)
of every plain field of Capture, so a field added to Capture is kept too. The list
starts with the id of its schema (the field names, kept once in Redis), so replicas
of different versions sharing a store still read each other's captures: a field one
of them does not know is left out, a field it misses keeps its default.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from typing import Any

from app.capture.record import Capture

# Not stored: the bytes (their own fields), the id (the entry's id), and what is
# derived again on first use (the analysis, the encoded summary).
_NOT_META = frozenset({"request", "reply", "id", "analysis", "summary_json"})
META_FIELDS = (*(f.name for f in dataclasses.fields(Capture) if f.name not in _NOT_META), "reply_kind")
SCHEMA = json.dumps(META_FIELDS)
SCHEMA_ID = f"{zlib.crc32(SCHEMA.encode()):08x}"
_CAPTURE_FIELDS = frozenset(f.name for f in dataclasses.fields(Capture))

ECHO, NO_REPLY, OWN_REPLY = "e", "n", "r"

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
        values = json.loads(fields[b"m"])
        request = fields[b"q"]
        names = schemas[values[0]]
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"stream entry {capture_id} is not a capture this build can read: {exc!r}") from None
    meta = dict(zip(names, values[1:], strict=False))
    kind = meta.pop("reply_kind", NO_REPLY)
    reply: bytes | None = None
    if kind == ECHO:
        reply = request
    elif kind == OWN_REPLY:
        reply = fields.get(b"r", b"")
    meta["metadata"] = tuple(
        (k, base64.b64decode(v) if k.endswith("-bin") else v) for k, v in meta.get("metadata") or ()
    )
    known = {name: value for name, value in meta.items() if name in _CAPTURE_FIELDS}
    try:
        capture = Capture(request=request, reply=reply, **known)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stream entry {capture_id} is not a capture this build can read: {exc}") from None
    capture.id = capture_id
    return capture


def without_payload(capture: Capture, max_bytes: int) -> Capture:
    """A copy of a capture too large for the whole store, keeping its summary but not its bytes.

    A copy: the capture's own bytes may be what the gateway is being answered with.
    """
    note = (
        f"payload of {len(capture.request)} bytes not kept: larger than the buffer's byte bound of "
        f"{max_bytes} (raise --buffer-bytes)"
    )
    return dataclasses.replace(
        capture,
        request=b"",
        reply=None if capture.reply is None else b"",
        error=f"{capture.error}; {note}" if capture.error else note,
        truncated=True,
        analysis=None,
        summary_json=None,
    )
