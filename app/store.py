"""Capture records and the bounded in-memory ring buffer that keeps them.

Knows nothing about gRPC, asyncio or the web: the servicer fills in a Capture,
the store keeps it, and a separate piece tells the browsers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["dispatch", "event"]

# What a capture costs beyond its payload bytes: the record, its summary strings,
# the cached summary JSON. An estimate, so the byte bound stays meaningful for
# floods of tiny messages too.
RECORD_OVERHEAD_BYTES = 1024


@dataclass(eq=False, slots=True)
class Capture:
    """One gRPC call the inspector answered: the wire bytes both ways plus cheap summary fields."""

    kind: Kind
    request: bytes
    """The message exactly as received (serialized Object or Event)."""
    reply: bytes | None
    """The message returned; the very same object as `request` for an echo; None when the call failed."""
    received_us: int = field(default_factory=lambda: time.time_ns() // 1000)
    """When the call arrived, in microseconds since the epoch (UTC): exact through export and import."""
    peer: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    hook_type: str = ""
    hook_name: str = ""
    api_id: str = ""
    org_id: str = ""
    method: str = ""
    path: str = ""
    status: int | None = None
    """Upstream status code seen by a Response hook."""
    duration_ns: int = 0
    error: str | None = None
    imported: bool = False
    truncated: bool = False
    answered_by: str = "echo"
    """echo, upstream, mock, or fallback (echo after an upstream failure)."""
    rule: str | None = None
    upstream: str | None = None
    upstream_ms: float | None = None
    upstream_status: str | None = None
    replay_of: int | None = None
    warnings: tuple[dict[str, str], ...] | None = None
    """Reply lint, filled on first use (app.lint)."""
    id: int = 0
    """Assigned by the store: increasing, never reused, also after a clear."""
    sse_event: bytes | None = None
    """The encoded SSE event, filled on first use by the web layer so N browsers encode it once."""

    @property
    def size(self) -> int:
        """Bytes this capture holds; an echoed reply shares the request's bytes."""
        reply = 0 if self.reply is None or self.reply is self.request else len(self.reply)
        return len(self.request) + reply + RECORD_OVERHEAD_BYTES

    @property
    def modified(self) -> bool:
        """Whether a Dispatch reply differs from what was received (never, in echo mode)."""
        return (
            self.kind == "dispatch"
            and self.reply is not None
            and self.reply is not self.request
            and self.reply != self.request
        )

    def summary(self) -> dict[str, Any]:
        """The fields a list row shows, as plain data."""
        return {
            "id": self.id,
            "kind": self.kind,
            "received_at": self.received_us / 1e6,
            "hook_type": self.hook_type,
            "hook_name": self.hook_name,
            "api_id": self.api_id,
            "org_id": self.org_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "size": len(self.request),
            "reply_size": None if self.reply is None else len(self.reply),
            "duration_ms": round(self.duration_ns / 1e6, 3),
            "peer": self.peer,
            "error": self.error,
            "modified": self.modified,
            "imported": self.imported,
            "truncated": self.truncated,
            "answered_by": self.answered_by,
            "rule": self.rule,
            "upstream": self.upstream,
            "upstream_ms": self.upstream_ms,
            "upstream_status": self.upstream_status,
            "replay_of": self.replay_of,
            "warnings": None if self.warnings is None else [w["code"] for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class StoreStats:
    count: int
    bytes: int
    max_items: int
    max_bytes: int
    total: int
    """Captures ever added, including evicted and cleared ones."""
    evicted: int
    first_id: int
    last_id: int


class CaptureStore(Protocol):
    """What the servicer and the web layer need from a place that keeps captures."""

    def add(self, capture: Capture) -> Capture: ...
    def add_many(self, captures: Iterable[Capture]) -> list[Capture]: ...
    def get(self, capture_id: int) -> Capture | None: ...
    def newest_first(self, before: int | None = None) -> Iterator[Capture]: ...
    def oldest_first(self, after: int = 0) -> Iterator[Capture]: ...
    def clear(self) -> int: ...
    def stats(self) -> StoreStats: ...
    @property
    def first_id(self) -> int: ...
    @property
    def last_id(self) -> int: ...


class RingBuffer:
    """Keeps the newest captures within an item count AND a byte budget; evicts oldest first.

    Ids are consecutive inside the buffer, so a lookup by id is an index, not a search.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items <= 0 or max_bytes <= 0:
            raise ValueError("a ring buffer needs a positive item count and byte budget")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[Capture] = deque()
        self._bytes = 0
        self._last_id = 0
        self._evicted = 0

    @property
    def first_id(self) -> int:
        """Id of the oldest capture kept; last_id + 1 when empty."""
        return self._items[0].id if self._items else self._last_id + 1

    @property
    def last_id(self) -> int:
        return self._last_id

    def __len__(self) -> int:
        return len(self._items)

    def add(self, capture: Capture) -> Capture:
        if capture.size > self.max_bytes:
            _strip_payload(capture, self.max_bytes)
        self._last_id += 1
        capture.id = self._last_id
        self._items.append(capture)
        self._bytes += capture.size
        while len(self._items) > self.max_items or self._bytes > self.max_bytes:
            self._bytes -= self._items.popleft().size
            self._evicted += 1
        return capture

    def add_many(self, captures: Iterable[Capture]) -> list[Capture]:
        return [self.add(c) for c in captures]

    def get(self, capture_id: int) -> Capture | None:
        index = capture_id - self.first_id
        return self._items[index] if 0 <= index < len(self._items) else None

    # Both walks go by id, not by position, so they stay correct when captures
    # are added or evicted between two steps (e.g. while an SSE client awaits).
    def newest_first(self, before: int | None = None) -> Iterator[Capture]:
        capture_id = self._last_id if before is None else min(before - 1, self._last_id)
        while capture_id >= self.first_id:
            capture = self.get(capture_id)
            if capture is not None:
                yield capture
            capture_id -= 1

    def oldest_first(self, after: int = 0) -> Iterator[Capture]:
        capture_id = max(after + 1, self.first_id)
        while capture_id <= self._last_id:
            capture = self.get(capture_id)
            if capture is not None:
                yield capture
            capture_id = max(capture_id + 1, self.first_id)

    def clear(self) -> int:
        removed = len(self._items)
        self._items.clear()
        self._bytes = 0
        return removed

    def stats(self) -> StoreStats:
        return StoreStats(
            count=len(self._items),
            bytes=self._bytes,
            max_items=self.max_items,
            max_bytes=self.max_bytes,
            total=self._last_id,
            evicted=self._evicted,
            first_id=self.first_id,
            last_id=self._last_id,
        )


def _strip_payload(capture: Capture, max_bytes: int) -> None:
    """Keep the summary of a capture too large for the whole buffer, without its payload."""
    note = (
        f"payload of {len(capture.request)} bytes not kept: larger than the buffer's byte bound of "
        f"{max_bytes} (raise --buffer-bytes)"
    )
    capture.error = f"{capture.error}; {note}" if capture.error else note
    capture.request = b""
    capture.reply = None if capture.reply is None else b""
    capture.truncated = True
