"""The local copy of a shared store: bounded like the ring buffer, but the ids come from the shared store.

Ids still only grow, but they can skip (captures trimmed in the shared store before
this process read them), so a lookup is a binary search instead of an index.
Knows nothing about Redis, asyncio or the web.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from app.capture.record import Capture
from app.capture.store import StoreStats

# Evicting pops from the front of a list by moving a head index; the dead front is
# cut off once it is this long and more than half the list.
_COMPACT_AFTER = 1024


class Mirror:
    """The newest captures within an item count and a byte budget, in id order; evicts oldest first."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items <= 0 or max_bytes <= 0:
            raise ValueError("a mirror needs a positive item count and byte budget")
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


# What an evicted slot holds until the front is cut off, so the capture itself can be freed.
_GONE = Capture(kind="dispatch", request=b"", reply=None)
