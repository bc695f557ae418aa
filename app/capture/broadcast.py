"""Fan-out of new captures to live subscribers (browsers, the console log), one bounded queue each.

`publish` never waits: it is called from the Dispatch handler, and a slow or
stalled browser must not slow the gateway. A subscriber whose queue is full
stops receiving and is marked lagging; its reader then catches up from the
capture store, which still holds everything that was not evicted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from app.capture.record import Capture


@dataclass(frozen=True, slots=True)
class Cleared:
    """The buffer was emptied: live views should drop what they show."""

    last_id: int


class _Closed:
    """Marks the end of every stream, on shutdown."""


CLOSED: Final = _Closed()

Message = Capture | Cleared


class Subscription:
    """One subscriber's queue. Read it with `get()`; it returns CLOSED at shutdown."""

    def __init__(self, limit: int) -> None:
        # The asyncio queue itself is unbounded so CLOSED can always be put;
        # `limit` is enforced in Broadcaster.publish.
        self._queue: asyncio.Queue[Message | _Closed] = asyncio.Queue()
        self.limit = limit
        self.lagging = False
        """Set when messages were dropped for this subscriber; it must resync from the store."""
        self.dropped = 0

    def offer(self, message: Message) -> bool:
        """Queue a message; False when the subscriber just started lagging."""
        if self.lagging:
            self.dropped += 1
            return True
        if self._queue.qsize() >= self.limit:
            self.lagging = True
            self.dropped += 1
            return False
        self._queue.put_nowait(message)
        return True

    async def get(self) -> Message | _Closed:
        return await self._queue.get()

    def get_nowait(self) -> Message | _Closed | None:
        """The next queued message, or None when the queue is empty."""
        return None if self._queue.empty() else self._queue.get_nowait()

    def resync(self) -> None:
        """Forget what is queued; the caller re-reads the store from its last id."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is CLOSED:
                self._queue.put_nowait(item)
                break
        self.lagging = False

    def close(self) -> None:
        self._queue.put_nowait(CLOSED)


class Broadcaster:
    """Hands every published message to each current subscriber."""

    def __init__(self, queue_limit: int) -> None:
        self._queue_limit = queue_limit
        self._subscribers: set[Subscription] = set()
        self.closed = False
        self.lag_count = 0
        """How often a subscriber fell behind and had to catch up from the store."""

    def subscribe(self) -> Subscription:
        subscription = Subscription(self._queue_limit)
        if self.closed:
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, message: Message) -> None:
        for subscription in self._subscribers:
            if not subscription.offer(message):
                self.lag_count += 1

    def end_streams(self) -> None:
        """End every current stream; browsers reconnect by themselves and resume from their last id."""
        for subscription in self._subscribers:
            subscription.close()
        self._subscribers.clear()

    def close(self) -> None:
        """End every stream for good (shutdown): each subscriber's next `get()` returns CLOSED."""
        self.closed = True
        self.end_streams()
