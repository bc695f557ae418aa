"""Capture -> JSON-ready views: the full detail of one capture, with every body decoded.

Decoding happens here, on demand, never on the Dispatch path (app.formats.document is
the one decoder); DetailCache keeps recent results, bounded by bytes, so a browser
clicking around does not decode twice.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from typing import Any

from app.capture.inflate import gunzip
from app.capture.record import Analysis, Capture
from app.formats.analysis import DEFAULT_GATEWAY, analyze, analyze_in_worker, outcome_view
from app.formats.document import NO_REDACTION, decode, iso_time, json_chunks, metadata_pairs
from app.redaction.redact import Redactor
from app.redaction.secrets import collecting_hidden, scrub
from app.tyk.diff import diff_objects
from app.tyk.outcome import Gateway

DEFAULT_DETAIL_CACHE_BYTES = 64 * 1024 * 1024

# JSON bodies up to this size are parsed for the page's tree view; larger ones are text only.
MAX_PARSED_BODY_BYTES = 4 * 1024 * 1024

IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def body_view(data: bytes) -> dict[str, Any]:
    """What a body is and how to show it: size, media type, text, parsed JSON."""
    view: dict[str, Any] = {"size": len(data), "encoding": None}
    if data[:2] == b"\x1f\x8b":
        inflated = gunzip(data)
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
            # A huge body is shown as text: parsing and re-encoding it is one long step.
            parsed = json.loads(text) if len(data) <= MAX_PARSED_BODY_BYTES else None
            return {"media_type": "application/json", "text": text, "json": parsed}
        except (ValueError, RecursionError):
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
    capture: Capture,
    redactor: Redactor = NO_REDACTION,
    gateway: Gateway = DEFAULT_GATEWAY,
    shared: tuple[dict[str, str], ...] = (),
) -> dict[str, Any]:
    """Everything about one capture: summary, messages in protobuf JSON, decoded bodies, the outcome.

    Reads only the capture it is given (and caches its verdict on it): pass a `snapshot` to
    build it in a worker thread. `shared`: warnings that judge it with other captures
    (app.journeys.tokens), found on the loop and added to its own.
    """
    detail = summary_of(capture, redactor, gateway)
    detail["intercept_edit"] = capture.intercept_edit  # made from the redacted messages (app.web.intercept)
    with collecting_hidden() as hidden:
        decoded = decode(capture, redactor)
    # The lint judges the messages as they arrived, and its messages may quote them.
    detail["warnings"] = [
        {key: scrub(value, hidden) if isinstance(value, str) else value for key, value in warning.items()}
        for warning in (*analyze(capture, gateway).warnings, *shared)
    ]
    detail["outcome"] = None
    detail["changes"] = []
    detail["received_at_iso"] = iso_time(capture.received_us)
    detail["metadata"] = metadata_pairs(capture.metadata, redactor)
    detail["echo"] = capture.reply is capture.request
    detail["request"] = decoded.request
    detail["reply"] = decoded.reply
    detail["bodies"] = {}
    detail["problems"] = decoded.problems
    for name in ("request_base64", "reply_base64"):
        if getattr(decoded, name) is not None:
            detail[name] = getattr(decoded, name)
    if capture.kind == "event":
        if decoded.event_payload is not None:
            detail["event"] = event_view(decoded.event_payload)
        return detail
    sent, reply = decoded.request_object, decoded.reply_object
    if sent is None:
        return detail
    detail["bodies"].update(_object_bodies("", sent))
    # The outcome is computed on the real bytes and shown no more than the redacted messages show.
    # No reply Object: an echo (the request is the reply), a failed call or an undecodable reply.
    detail["outcome"] = outcome_view(capture, sent, sent if detail["echo"] else reply, gateway, redactor)
    if reply is not None:
        detail["bodies"].update(_object_bodies("reply.", reply))
        detail["changes"] = diff_objects(sent, reply, gateway.version)
    return detail


def detail_json(
    capture: Capture,
    redactor: Redactor = NO_REDACTION,
    gateway: Gateway = DEFAULT_GATEWAY,
    shared: tuple[dict[str, str], ...] = (),
) -> list[bytes]:
    """The detail as the API sends it, in chunks of about a megabyte. Thread-safe on a `snapshot`."""
    return json_chunks(capture_detail(capture, redactor, gateway, shared))


def build_detail(
    capture: Capture,
    redactor: Redactor = NO_REDACTION,
    gateway: Gateway = DEFAULT_GATEWAY,
    shared: tuple[dict[str, str], ...] = (),
) -> tuple[list[bytes], Analysis | None]:
    """The detail document of a `snapshot` and the verdict computed on the way, for a worker thread or process."""
    if capture.analysis is None or capture.analysis.version != str(gateway.version):
        capture.analysis = analyze_in_worker(capture, gateway)  # a large one's too: this is off the loop
    return detail_json(capture, redactor, gateway, shared), capture.analysis


def event_view(payload: str) -> dict[str, Any]:
    """An event payload parsed as JSON when it is JSON, else kept as text with the reason."""
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        return {"payload": payload, "payload_error": f"payload is not JSON: {exc}", "originating_request": None}
    except RecursionError:
        return {
            "payload": payload,
            "payload_error": "payload is JSON nested too deeply to read",
            "originating_request": None,
        }
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
    """Recently built detail documents (JSON, in chunks) by capture id, bounded by their total size.

    Ids are never reused, so an entry never goes stale. A document larger than the whole
    bound is not kept at all.
    """

    def __init__(self, max_bytes: int = DEFAULT_DETAIL_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[int, tuple[list[bytes], int, object]] = OrderedDict()

    def get(self, capture_id: int, tag: object = ()) -> list[bytes] | None:
        """The document, if one was built with the same `tag` (what else it depended on)."""
        item = self._items.get(capture_id)
        if item is None or item[2] != tag:
            return None
        self._items.move_to_end(capture_id)
        return item[0]

    def put(self, capture_id: int, document: list[bytes], tag: object = ()) -> None:
        size = sum(len(chunk) for chunk in document)
        if size > self.max_bytes:
            return
        previous = self._items.pop(capture_id, None)
        if previous is not None:
            self.bytes -= previous[1]
        self._items[capture_id] = (document, size, tag)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted, _) = self._items.popitem(last=False)
            self.bytes -= evicted

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
