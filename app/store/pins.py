"""Pinned captures: kept while pinned, whatever the buffer evicts, with a note and a mark.

Bounded by construction: at most MAX_PINNED_ITEMS captures and MAX_PINNED_BYTES bytes (what the
captures hold), notes of at most MAX_NOTE_CHARS. A pin holds the capture itself, so the store
can evict it and the detail, copies and exports still find it. Per process: with a shared
(Redis) store, each replica has its own pins.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from app.capture.record import Capture
from app.formats.export import export_chunks
from app.redaction.redact import Redactor

MAX_PINNED_ITEMS = 100
MAX_PINNED_BYTES = 64 * 1024 * 1024
MAX_NOTE_CHARS = 2000
MARKS = ("", "red", "orange", "green", "blue", "purple")


class PinError(ValueError):
    """A pin the board cannot take: past its bounds, or a bad note or mark (the message says which)."""


@dataclass(slots=True)
class Pin:
    capture: Capture
    note: str = ""
    mark: str = ""
    pinned_at: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {"id": self.capture.id, "note": self.note, "mark": self.mark, "pinned_at": self.pinned_at,
                "size": self.capture.size}  # fmt: skip


class PinBoard:
    def __init__(self, max_items: int = MAX_PINNED_ITEMS, max_bytes: int = MAX_PINNED_BYTES) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._pins: dict[int, Pin] = {}
        self.bytes = 0

    def pin(self, capture: Capture, note: str = "", mark: str = "") -> Pin:
        """Pin (or update the note and mark of) a capture; PinError past the bounds."""
        _check(note, mark)
        pin = self._pins.get(capture.id)
        if pin is not None:
            pin.note, pin.mark = note, mark
            return pin
        if len(self._pins) >= self.max_items:
            raise PinError(f"at most {self.max_items} captures can be pinned: unpin one first")
        if self.bytes + capture.size > self.max_bytes:
            raise PinError(
                f"pinned captures may hold at most {self.max_bytes} bytes; this one ({capture.size}) does not fit"
            )
        pin = self._pins[capture.id] = Pin(capture, note, mark, time.time())
        self.bytes += capture.size
        return pin

    def unpin(self, capture_id: int) -> bool:
        pin = self._pins.pop(capture_id, None)
        if pin is None:
            return False
        self.bytes -= pin.capture.size
        return True

    def get(self, capture_id: int) -> Capture | None:
        pin = self._pins.get(capture_id)
        return None if pin is None else pin.capture

    def pin_of(self, capture_id: int) -> Pin | None:
        return self._pins.get(capture_id)

    def all(self) -> list[Pin]:
        return sorted(self._pins.values(), key=lambda p: p.capture.id)

    def clear(self) -> None:
        self._pins.clear()
        self.bytes = 0

    def limits(self) -> dict[str, int]:
        return {"items": len(self._pins), "max_items": self.max_items, "bytes": self.bytes, "max_bytes": self.max_bytes}


def _check(note: str, mark: str) -> None:
    if len(note) > MAX_NOTE_CHARS:
        raise PinError(f"a note has at most {MAX_NOTE_CHARS} characters")
    if mark not in MARKS:
        raise PinError(f"mark {mark[:20]!r} is not one of {', '.join(m for m in MARKS if m)} (or empty)")


def pinned_document(
    captures: list[Capture], notes: dict[int, tuple[str, str]], exported_at_us: int, redactor: Redactor
) -> bytes:
    """An export document of pinned captures, each record with its `note` and `mark` (for a worker)."""
    doc = json.loads("".join(export_chunks(captures, exported_at_us, redactor)))
    for record in doc.get("captures", []):
        note, mark = notes.get(record.get("id"), ("", ""))
        record["note"], record["mark"] = note, mark
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")
