"""The capture store: the interface every backend offers, and the bounded in-memory ring buffer.

Knows nothing about gRPC, asyncio or the web: the servicer fills in a Capture,
the store keeps it, and a separate piece tells the browsers.

Every store is the one source of capture events: once it has given a capture its id it
says "added", and once it is emptied "cleared through id N", to whoever listens
(app.capture.wiring connects them to the live views). Nothing else announces captures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from app.capture.record import Capture


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
    dropped: int = 0
    """Captures not stored because the store could not keep up (a shared store that is slow or away)."""
    queued: int = 0
    """Captures waiting to be written to a shared store."""


class StoreListener(Protocol):
    """Who hears of the store's captures (the live views, through app.capture.wiring)."""

    def added(self, capture: Capture) -> None:
        """A capture has its id and can be read from the store."""

    def cleared(self, last_id: int) -> None:
        """The store was emptied: every capture up to `last_id` is gone."""


class StoreEvents:
    """The listeners of one store; the store calls `added` and `cleared`, never its listeners directly."""

    def __init__(self) -> None:
        self._listeners: list[StoreListener] = []

    def listen(self, listener: StoreListener) -> None:
        self._listeners.append(listener)

    def added(self, capture: Capture) -> None:
        for listener in self._listeners:
            listener.added(capture)

    def cleared(self, last_id: int) -> None:
        for listener in self._listeners:
            listener.cleared(last_id)


class CaptureStore(Protocol):
    """What the servicer and the web layer need from a place that keeps captures.

    `add` is the Dispatch path's: it never waits (a shared store only queues; the capture shows,
    and is announced, once the store has given it its id). What the user waits for (an import,
    a Clear, a replay) goes through the async methods, which return once this process shows the
    result, whichever the store.
    """

    shared: bool
    """Whether other processes write to it as well (Redis)."""
    events: StoreEvents

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
    async def append(self, captures: list[Capture]) -> list[Capture]: ...
    async def clear_all(self) -> int: ...
    async def settle_capture(self, capture: Capture) -> None: ...


class StoreUnavailable(RuntimeError):
    """A shared store did not take a write in time; the caller may try again."""


class RingBuffer:
    """Keeps the newest captures within an item count AND a byte budget; evicts oldest first.

    Ids are consecutive inside the buffer, so a lookup by id is an index, not a search.
    """

    shared = False

    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items <= 0 or max_bytes <= 0:
            raise ValueError("a ring buffer needs a positive item count and byte budget")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[Capture] = deque()
        self._bytes = 0
        self._last_id = 0
        self._evicted = 0
        self.events = StoreEvents()

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
            strip_payload(capture, self.max_bytes)
        self._last_id += 1
        capture.id = self._last_id
        self._items.append(capture)
        self._bytes += capture.size
        while len(self._items) > self.max_items or self._bytes > self.max_bytes:
            self._bytes -= self._items.popleft().size
            self._evicted += 1
        self.events.added(capture)
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
        self.events.cleared(self._last_id)
        return removed

    async def append(self, captures: list[Capture]) -> list[Capture]:
        """Keep captures (an import) and return them with their ids."""
        return self.add_many(captures)

    async def clear_all(self) -> int:
        return self.clear()

    async def settle_capture(self, capture: Capture) -> None:
        """A capture given to `add` shows at once here."""

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


def strip_payload(capture: Capture, max_bytes: int) -> None:
    """Keep the summary of a capture too large for the whole store, without its payload (every backend).

    In place, so whoever holds the capture (a replay waiting for its id) sees what the store
    keeps. The gateway's reply is safe: the servicer takes it before recording.
    """
    note = (
        f"payload of {len(capture.request)} bytes not kept: larger than the buffer's byte bound of "
        f"{max_bytes} (raise --buffer-bytes)"
    )
    capture.error = f"{capture.error}; {note}" if capture.error else note
    capture.request = b""
    capture.reply = None if capture.reply is None else b""
    capture.truncated = True
    capture.analysis = None
    capture.summary_json = None
