"""Two captures side by side, in Tyk's terms: what the gateway sent each, what each reply changed, and
what the gateway did with each (the outcome). Pure: from snapshots, in a worker thread.

Bounded by construction: at most MAX_DIFFERENCES differences, each value cut to MAX_VALUE_CHARS, and
bodies compared as parsed JSON (by path) or as text only up to MAX_BODY_BYTES.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from app.capture.analysis import outcome_view
from app.capture.inflate import gunzip
from app.capture.record import Capture
from app.formats.document import decode
from app.redaction.redact import Redactor
from app.tyk.diff import diff_objects
from app.tyk.outcome import Gateway

MAX_DIFFERENCES = 500
MAX_VALUE_CHARS = 2000
MAX_BODY_BYTES = 256 * 1024
# Fields that differ between any two calls and say nothing about them.
_SKIPPED = frozenset({"id"})


def compare(a: Capture, b: Capture, redactor: Redactor, gateway: Gateway) -> dict[str, Any]:
    """The comparison document (GET /api/compare)."""
    da, db = decode(a, redactor), decode(b, redactor)
    differences: list[dict[str, Any]] = []
    _diff(_readable(a, da.request), _readable(b, db.request), "", differences)
    return {
        "a": a.id,
        "b": b.id,
        "kind": a.kind,
        "sent": differences[:MAX_DIFFERENCES],
        "sent_cut": len(differences) > MAX_DIFFERENCES,
        "changes": _changes(a, da, gateway) if a.kind == "dispatch" else None,
        "changes_b": _changes(b, db, gateway) if b.kind == "dispatch" else None,
        "outcome": [_outcome(a, da, gateway), _outcome(b, db, gateway)],
        "facts": [_facts(a), _facts(b)],
    }


def _facts(c: Capture) -> dict[str, Any]:
    return {"id": c.id, "hook_type": c.hook_type, "hook_name": c.hook_name, "api_id": c.api_id, "method": c.method,
            "path": c.path, "duration_ms": c.duration_ns / 1e6, "answered_by": c.answered_by, "error": c.error,
            "imported": c.imported}  # fmt: skip


def _readable(capture: Capture, message: dict[str, Any] | None) -> Any:
    """The message as protobuf JSON with bodies decoded (JSON parsed), so they compare by field."""
    if message is None:
        return None
    if capture.kind == "event":
        payload = message.get("payload")
        try:
            return {"payload": json.loads(payload)} if isinstance(payload, str) else message
        except (ValueError, RecursionError):
            return message
    for part in ("request", "response"):
        section = message.get(part)
        if isinstance(section, dict) and isinstance(section.get("rawBody"), str):
            section["rawBody"] = _body(section["rawBody"])
    return message


def _body(encoded: str) -> Any:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return encoded
    if data[:2] == b"\x1f\x8b":
        data = gunzip(data) or data
    if len(data) > MAX_BODY_BYTES:
        return f"<{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…>"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes of binary, sha256 {hashlib.sha256(data).hexdigest()[:16]}…>"
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _diff(a: Any, b: Any, path: str, out: list[dict[str, Any]]) -> None:
    if len(out) > MAX_DIFFERENCES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key in _SKIPPED and not path:
                continue
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), out)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{index}]", out)
        return
    if a != b:
        out.append({"path": path, "a": _shown(a), "b": _shown(b)})


def _shown(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _pair(capture: Capture, decoded: Any) -> tuple[Any, Any]:
    sent = decoded.request_object
    reply = decoded.reply_object
    if reply is None and capture.reply is capture.request:
        reply = sent  # an echo
    return sent, reply


def _changes(capture: Capture, decoded: Any, gateway: Gateway) -> list[dict[str, Any]] | None:
    """What the capture's reply changed (the diff the Reply tab shows), or None without a reply."""
    sent, reply = _pair(capture, decoded)
    if sent is None or reply is None:
        return None
    return [{k: _shown(v) if k in ("before", "after") else v for k, v in change.items()}
            for change in diff_objects(sent, reply, gateway.version)]  # fmt: skip


def _outcome(capture: Capture, decoded: Any, gateway: Gateway) -> dict[str, Any] | None:
    if capture.kind != "dispatch":
        return None
    sent, reply = _pair(capture, decoded)
    if sent is None:
        return None
    view = outcome_view(capture, sent, reply, gateway)
    return {key: view.get(key) for key in ("status", "result", "summary")}
