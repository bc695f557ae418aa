"""Fan-out of new captures to live subscribers (browsers, the console log), one bounded queue each.

`publish` never waits: it is called from the Dispatch handler, and a slow or
stalled browser must not slow the gateway. It only appends the capture to the
batch being gathered; one timer a batching window hands the whole batch to every
subscriber, so a subscriber wakes once per batch, not once per capture, and what
it makes of a batch (an SSE event) is made once for all of them. In a flood the
window lengthens (a page draws new rows ten times a second, and nobody reads rows
arriving faster): what each batch costs every browser is paid ten times a second
instead of fifty, and the captures wait at most that long. A subscriber
whose queue is full stops receiving and is marked lagging; its reader then
catches up from the capture store, which still holds everything not evicted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from app.capture.record import Capture


@dataclass(frozen=True, slots=True)
class Cleared:
    """The buffer was emptied: live views should drop what they show."""

    last_id: int


@dataclass(eq=False, slots=True)
class Batch:
    """Captures published within one batching window, oldest first, ids consecutive.

    The same object goes to every subscriber.
    """

    captures: tuple[Capture, ...]
    encoded: dict[str, bytes] = field(default_factory=dict)
    """What a kind of consumer made of this batch (e.g. its SSE event), made by the first one to need it."""

    @property
    def first_id(self) -> int:
        return self.captures[0].id

    @property
    def last_id(self) -> int:
        return self.captures[-1].id

    def __len__(self) -> int:
        return len(self.captures)


@dataclass(frozen=True, slots=True)
class Notice:
    """A named event for live pages that is not a capture (e.g. `held`, `released`: app.proxy.intercept).

    Dropped for a lagging subscriber like its captures; what it announces can be read again through the API.
    """

    name: str
    data: dict[str, Any]


class _Closed:
    """Marks the end of every stream, on shutdown."""


CLOSED: Final = _Closed()

RATE_SECONDS = 1.0
"""How far back the publishing rate that lengthens the batching window is measured."""

Message = Batch | Cleared | Notice


class Subscription:
    """One subscriber's queue. Read it with `get()`; it returns CLOSED at shutdown."""

    def __init__(self, limit: int, browser: bool = True) -> None:
        self.browser = browser
        """A live view (SSE stream); the console log is the other kind, not counted as one."""
        # The asyncio queue itself is unbounded so CLOSED can always be put;
        # `limit` (in captures, so the memory a slow subscriber pins is bounded) is enforced in offer().
        self._queue: asyncio.Queue[Message | _Closed] = asyncio.Queue()
        self._queued = 0
        self.limit = limit
        self.lagging = False
        """Set when messages were dropped for this subscriber; it must resync from the store."""
        self.dropped = 0
        """Captures not queued since the subscriber started lagging."""
        self._missed_clear: int | None = None
        """The newest Clear not delivered (dropped while lagging, or forgotten by `resync`)."""

    def offer(self, message: Message) -> bool:
        """Queue a message; False when the subscriber just started lagging."""
        size = len(message) if isinstance(message, Batch) else 0
        if self.lagging:
            self.dropped += size
            if isinstance(message, Cleared):
                self._missed_clear = message.last_id
            return True
        if self._queued and self._queued + size > self.limit:
            self.lagging = True
            self.dropped += size
            return False
        self._queued += size
        self._queue.put_nowait(message)
        return True

    def _took(self, message: Message | _Closed) -> Message | _Closed:
        if isinstance(message, Batch):
            self._queued -= len(message)
        return message

    async def get(self) -> Message | _Closed:
        return self._took(await self._queue.get())

    def get_nowait(self) -> Message | _Closed | None:
        """The next queued message, or None when the queue is empty."""
        return None if self._queue.empty() else self._took(self._queue.get_nowait())

    def resync(self) -> int | None:
        """Forget what is queued; the caller re-reads the store from its last id.

        Returns the last id of the newest Clear this subscriber was not given (its reader must
        drop what it shows up to there before reading on), or None.
        """
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is CLOSED:
                self._queue.put_nowait(item)
                break
            if isinstance(item, Cleared):
                self._missed_clear = max(item.last_id, self._missed_clear or 0)
        self._queued = 0
        self.lagging = False
        missed, self._missed_clear = self._missed_clear, None
        return missed

    def close(self) -> None:
        self._queue.put_nowait(CLOSED)


class Broadcaster:
    """Hands every published capture, in batches, and every clear to each current subscriber."""

    def __init__(
        self,
        queue_limit: int,
        batch_seconds: float = 0.0,
        max_batch: int = 1000,
        flood_rate: float = float("inf"),
        flood_batch_seconds: float = 0.1,
    ) -> None:
        self._queue_limit = queue_limit
        self._batch_seconds = batch_seconds
        self._flood_rate = flood_rate
        self._flood_batch_seconds = max(batch_seconds, flood_batch_seconds)
        self.window = batch_seconds
        """The current batching window: `batch_seconds`, or `flood_batch_seconds` while more than
        `flood_rate` captures a second were published over the last RATE_SECONDS."""
        self._recent: deque[tuple[float, int]] = deque()
        """(when, how many) of the batches handed out within the last RATE_SECONDS."""
        self._recent_count = 0
        # A batch never holds more than one subscriber may queue, so a flood (an import)
        # goes out in several batches instead of lagging everybody at once.
        self._max_batch = max(1, min(max_batch, queue_limit))
        self._subscribers: set[Subscription] = set()
        self._pending: list[Capture] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_flush = float("-inf")
        self.closed = False
        self.lag_count = 0
        """How often a live view fell behind and had to catch up from the store (the console log says so itself)."""
        self.batches = 0
        """Batches handed out so far."""

    def subscribe(self, browser: bool = True) -> Subscription:
        """A new subscriber's queue; `browser` False for a reader in the process (the console log)."""
        subscription = Subscription(self._queue_limit, browser)
        if self.closed:
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        """Live views (browsers) subscribed: what /api/stats and /metrics report."""
        return sum(1 for subscription in self._subscribers if subscription.browser)

    def publish(self, capture: Capture) -> None:
        """Add a capture to the next batch. Called on the Dispatch path: an append, at most a timer."""
        if not self._subscribers:
            return
        self._pending.append(capture)
        if len(self._pending) >= self._max_batch:
            self.flush()
        elif self._timer is None:
            # After a quiet spell the first capture goes out at once (on the next loop turn);
            # under load, captures gather until a window after the previous batch.
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self.window - loop.time()
            self._timer = loop.call_later(delay, self.flush) if delay > 0 else loop.call_soon(self.flush)

    def publish_cleared(self, last_id: int) -> None:
        """Tell every subscriber the buffer was emptied, after the captures published before."""
        self.flush()
        self._deliver(Cleared(last_id))

    def publish_notice(self, name: str, data: dict[str, Any]) -> None:
        """Tell every subscriber of something besides captures, after the captures published before."""
        if not self._subscribers:
            return
        self.flush()
        self._deliver(Notice(name, data))

    def flush(self) -> None:
        """Hand the gathered batch to every subscriber now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch = Batch(tuple(self._pending))
        self._pending = []
        now = asyncio.get_running_loop().time()
        self._last_flush = now
        self.window = (
            self._flood_batch_seconds if self._rate(now, len(batch)) > self._flood_rate else self._batch_seconds
        )
        self.batches += 1
        self._deliver(batch)

    def _rate(self, now: float, count: int) -> float:
        """Captures a second over the last RATE_SECONDS, this batch included: a burst in a steady
        stream does not make a flood, a flood that lasts makes one within a second."""
        self._recent.append((now, count))
        self._recent_count += count
        while self._recent[0][0] < now - RATE_SECONDS:
            self._recent_count -= self._recent.popleft()[1]
        return self._recent_count / RATE_SECONDS

    def _deliver(self, message: Message) -> None:
        for subscription in self._subscribers:
            if not subscription.offer(message) and subscription.browser:
                self.lag_count += 1

    def end_streams(self) -> None:
        """End every current stream; browsers reconnect by themselves and resume from their last id."""
        self.flush()
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()

    def close(self) -> None:
        """End every stream for good (shutdown): each subscriber's next `get()` returns CLOSED."""
        self.closed = True
        self.end_streams()
