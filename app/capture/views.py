"""Capture -> JSON-ready views: the full detail of one capture, with every body decoded.

Decoding happens here, on demand, never on the Dispatch path; DetailCache keeps
the last few results so a browser clicking around does not decode twice.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import zlib
from collections import OrderedDict
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from app.capture.analysis import DEFAULT_GATEWAY, analyze, outcome_view
from app.capture.record import Capture
from app.capture.redact import Redactor
from app.tyk.diff import diff_objects
from app.tyk.outcome import Gateway
from app.tyk.protocol import Event, Object

NO_REDACTION = Redactor(enabled=False)

# Decompressing a gzip body to show it is bounded: a small bomb must not eat the memory.
MAX_INFLATED_BYTES = 32 * 1024 * 1024

IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def iso_time(epoch_us: int) -> str:
    """'2026-11-23T18:10:48.123456Z' from microseconds since the epoch."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=epoch_us)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def message_to_json(message: Message) -> dict[str, Any]:
    """Protobuf JSON, camelCase, as MessageToJson prints it and json_format.Parse reads it."""
    return json_format.MessageToDict(message)


def metadata_pairs(metadata: tuple[tuple[str, str | bytes], ...], redactor: Redactor = NO_REDACTION) -> list[list[str]]:
    """gRPC metadata as [key, value] pairs, credentials hidden; binary (-bin) values as base64."""
    return [
        [key, value if isinstance(value, str) else base64.b64encode(value).decode("ascii")]
        for key, value in redactor.metadata(metadata)
    ]


def body_view(data: bytes) -> dict[str, Any]:
    """What a body is and how to show it: size, media type, text, parsed JSON."""
    view: dict[str, Any] = {"size": len(data), "encoding": None}
    if data[:2] == b"\x1f\x8b":
        inflated = _gunzip(data)
        if inflated is not None:
            view["encoding"] = "gzip"
            view["inflated_size"] = len(inflated)
            view["inflated_base64"] = base64.b64encode(inflated).decode("ascii")
            data = inflated
    view.update(_content_view(data))
    return view


def _content_view(data: bytes) -> dict[str, Any]:
    for signature, media_type in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return {"media_type": media_type, "text": None, "json": None}
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return {"media_type": "image/webp", "text": None, "json": None}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"media_type": "application/octet-stream", "text": None, "json": None}
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return {"media_type": "application/json", "text": text, "json": json.loads(text)}
        except ValueError:
            pass
    lowered = stripped[:256].lower()
    if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
        media_type = "image/svg+xml"
    elif lowered.startswith(("<!doctype html", "<html")):
        media_type = "text/html"
    elif lowered.startswith("<"):
        media_type = "application/xml"
    else:
        media_type = "text/plain"
    return {"media_type": media_type, "text": text, "json": None}


def _gunzip(data: bytes) -> bytes | None:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error:
        return None
    if decompressor.unconsumed_tail:
        return None  # larger than we are willing to inflate for display
    return inflated


def _object_bodies(prefix: str, obj: Any) -> dict[str, dict[str, Any]]:
    bodies: dict[str, dict[str, Any]] = {}
    if obj.HasField("request") and obj.request.raw_body:
        bodies[f"{prefix}request.rawBody"] = body_view(obj.request.raw_body)
    if obj.HasField("response") and obj.response.raw_body:
        bodies[f"{prefix}response.rawBody"] = body_view(obj.response.raw_body)
    return bodies


def summary_of(capture: Capture, redactor: Redactor, gateway: Gateway | None = None) -> dict[str, Any]:
    """A capture's list fields, with the gateway model's verdict (warnings, modified, outcome_status),
    ready to leave the process (path redacted)."""
    analyze(capture, gateway)
    return redactor.summary(capture.summary())


def summary_json(capture: Capture, redactor: Redactor, gateway: Gateway | None = None) -> bytes:
    """The summary as compact JSON, encoded once per capture: the list API and the stream join these.

    One redactor and one gateway model serve a process, so the cached summary is the redacted one.
    """
    if capture.summary_json is None:
        capture.summary_json = json.dumps(summary_of(capture, redactor, gateway), separators=(",", ":")).encode()
    return capture.summary_json


def capture_detail(
    capture: Capture, redactor: Redactor = NO_REDACTION, gateway: Gateway = DEFAULT_GATEWAY
) -> dict[str, Any]:
    """Everything about one capture: summary, messages in protobuf JSON, decoded bodies, the outcome."""
    detail = summary_of(capture, redactor, gateway)
    detail["warnings"] = list(analyze(capture, gateway).warnings)
    detail["outcome"] = None
    detail["changes"] = []
    detail["received_at_iso"] = iso_time(capture.received_us)
    detail["metadata"] = metadata_pairs(capture.metadata, redactor)
    detail["echo"] = capture.reply is capture.request
    detail["request"] = None
    detail["reply"] = None
    detail["bodies"] = {}
    try:
        if capture.kind == "event":
            event = Event.FromString(capture.request)
            event.payload = redactor.event_payload(event.payload)
            detail["request"] = message_to_json(event)
            detail["event"] = event_view(event.payload)
            return detail
        obj = Object.FromString(capture.request)
        redactor.object(obj)
    except DecodeError:
        detail["request_base64"] = base64.b64encode(capture.request).decode("ascii")
        return detail
    detail["request"] = message_to_json(obj)
    detail["bodies"].update(_object_bodies("", obj))
    # The outcome is computed from the redacted messages, so it shows no more than they do.
    detail["outcome"] = outcome_view(capture, obj, obj if detail["echo"] else None, gateway)
    if capture.reply is not None and not detail["echo"]:
        try:
            reply = Object.FromString(capture.reply)
        except DecodeError:
            detail["reply_base64"] = base64.b64encode(capture.reply).decode("ascii")
            return detail
        redactor.object(reply)
        detail["outcome"] = outcome_view(capture, obj, reply, gateway)
        detail["reply"] = message_to_json(reply)
        detail["bodies"].update(_object_bodies("reply.", reply))
        detail["changes"] = diff_objects(obj, reply, gateway.version)
    return detail


def event_view(payload: str) -> dict[str, Any]:
    """An event payload parsed as JSON when it is JSON, else kept as text with the reason."""
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        return {"payload": payload, "payload_error": f"payload is not JSON: {exc}", "originating_request": None}
    return {"payload": doc, "payload_error": None, "originating_request": _originating_request(doc)}


def _originating_request(doc: Any) -> str | None:
    """Tyk puts the HTTP request behind a key event in Meta.OriginatingRequest, base64-encoded."""
    message = doc.get("message") if isinstance(doc, dict) else None
    meta = message.get("Meta") if isinstance(message, dict) else None
    encoded = meta.get("OriginatingRequest") if isinstance(meta, dict) else None
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


class DetailCache:
    """The last few decoded details, by capture id (ids are never reused)."""

    def __init__(self, redactor: Redactor = NO_REDACTION, size: int = 128, gateway: Gateway = DEFAULT_GATEWAY) -> None:
        self.redactor = redactor
        self.gateway = gateway
        self._size = size
        self._items: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def get(self, capture: Capture) -> dict[str, Any]:
        detail = self._items.get(capture.id)
        if detail is None:
            detail = capture_detail(capture, self.redactor, self.gateway)
            self._items[capture.id] = detail
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(capture.id)
        return detail

    def clear(self) -> None:
        self._items.clear()
