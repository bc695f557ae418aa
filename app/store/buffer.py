"""The capture store: the interface every backend offers, and the bounded in-memory ring buffer.

Knows nothing about gRPC, asyncio or the web: the servicer fills in a Capture,
the store keeps it, and a separate piece tells the browsers.

Every store is the one source of capture events: once it has given a capture its id it
says "added", and once it is emptied "cleared through id N", to whoever listens
(app.live.wiring connects them to the live views). Nothing else announces captures.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
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
    """Who hears of the store's captures (the live views, through app.live.wiring)."""

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


# Evicting pops from the front of a list by moving a head index; the dead front is
# cut off once it is this long and more than half the list.
_COMPACT_AFTER = 1024


class CaptureRing:
    """The newest captures within an item count and a byte budget, in id order; evicts oldest first.

    The one ring of both stores: the memory store hands out consecutive ids, the Redis store's
    mirror takes the ids Redis gave (they grow, but can skip captures trimmed before this
    process read them). A lookup is an index when ids are consecutive, a binary search otherwise.
    Keeps at least the newest capture, whatever its size (the stores strip the payload of one
    too large for the whole budget first).
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items <= 0 or max_bytes <= 0:
            raise ValueError("a capture store needs a positive item count and byte budget")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._ids: list[int] = []
        self._items: list[Capture] = []
        self._head = 0
        self._bytes = 0
        self._last_id = 0
        self.evicted = 0
        """Captures let go to stay within the bounds, here or in the shared store before they were read."""

    def __len__(self) -> int:
        return len(self._ids) - self._head

    @property
    def first_id(self) -> int:
        return self._ids[self._head] if len(self) else self._last_id + 1

    @property
    def last_id(self) -> int:
        return self._last_id

    @property
    def bytes(self) -> int:
        return self._bytes

    def append(self, capture: Capture) -> None:
        """Keep a capture whose id the shared store gave it; ids must grow."""
        if capture.id <= self._last_id:
            raise ValueError(f"capture id {capture.id} is not after {self._last_id}")
        # Ids skipped were trimmed from the shared store before this process read them.
        self.evicted += capture.id - self._last_id - 1
        self._ids.append(capture.id)
        self._items.append(capture)
        self._last_id = capture.id
        self._bytes += capture.size
        while len(self) > self.max_items or (self._bytes > self.max_bytes and len(self) > 1):
            self._bytes -= self._items[self._head].size
            self._items[self._head] = _GONE
            self._head += 1
            self.evicted += 1
        if self._head >= _COMPACT_AFTER and self._head * 2 > len(self._ids):
            del self._ids[: self._head]
            del self._items[: self._head]
            self._head = 0

    def skip_to(self, last_id: int) -> None:
        """Remember that ids up to `last_id` are taken, though not kept here (e.g. cleared)."""
        self._last_id = max(self._last_id, last_id)

    def get(self, capture_id: int) -> Capture | None:
        if len(self):  # consecutive ids (always, in the memory store): an index
            index = self._head + capture_id - self._ids[self._head]
            if self._head <= index < len(self._ids) and self._ids[index] == capture_id:
                return self._items[index]
        index = bisect_left(self._ids, capture_id, self._head)
        if index < len(self._ids) and self._ids[index] == capture_id:
            return self._items[index]
        return None

    # Both walks look the next id up afresh at each step, so they stay correct when
    # captures are added or evicted between two steps (e.g. while an SSE client awaits).
    def newest_first(self, before: int | None = None) -> Iterator[Capture]:
        bound = self._last_id + 1 if before is None else before
        while True:
            index = bisect_left(self._ids, bound, self._head) - 1
            if index < self._head:
                return
            capture = self._items[index]
            bound = capture.id
            yield capture

    def oldest_first(self, after: int = 0) -> Iterator[Capture]:
        while True:
            index = bisect_right(self._ids, after, self._head)
            if index >= len(self._ids):
                return
            capture = self._items[index]
            after = capture.id
            yield capture

    def clear(self) -> int:
        removed = len(self)
        self._ids.clear()
        self._items.clear()
        self._head = 0
        self._bytes = 0
        return removed

    def stats(self) -> StoreStats:
        return StoreStats(
            count=len(self),
            bytes=self._bytes,
            max_items=self.max_items,
            max_bytes=self.max_bytes,
            total=self._last_id,
            evicted=self.evicted,
            first_id=self.first_id,
            last_id=self._last_id,
        )


class RingBuffer:
    """The memory store: a CaptureRing that hands out the ids itself (consecutive, never reused)."""

    shared = False

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._ring = CaptureRing(max_items, max_bytes)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.events = StoreEvents()

    @property
    def first_id(self) -> int:
        """Id of the oldest capture kept; last_id + 1 when empty."""
        return self._ring.first_id

    @property
    def last_id(self) -> int:
        return self._ring.last_id

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, capture: Capture) -> Capture:
        if capture.size > self.max_bytes:
            strip_payload(capture, self.max_bytes)
        capture.id = self._ring.last_id + 1
        self._ring.append(capture)
        self.events.added(capture)
        return capture

    def add_many(self, captures: Iterable[Capture]) -> list[Capture]:
        return [self.add(c) for c in captures]

    def get(self, capture_id: int) -> Capture | None:
        return self._ring.get(capture_id)

    def newest_first(self, before: int | None = None) -> Iterator[Capture]:
        return self._ring.newest_first(before)

    def oldest_first(self, after: int = 0) -> Iterator[Capture]:
        return self._ring.oldest_first(after)

    def clear(self) -> int:
        removed = self._ring.clear()
        self.events.cleared(self._ring.last_id)
        return removed

    async def append(self, captures: list[Capture]) -> list[Capture]:
        """Keep captures (an import) and return them with their ids."""
        return self.add_many(captures)

    async def clear_all(self) -> int:
        return self.clear()

    async def settle_capture(self, capture: Capture) -> None:
        """A capture given to `add` shows at once here."""

    def stats(self) -> StoreStats:
        return self._ring.stats()


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


# What an evicted slot of a CaptureRing holds until the front is cut off, so the capture itself can be freed.
_GONE = Capture(kind="dispatch", request=b"", reply=None)
