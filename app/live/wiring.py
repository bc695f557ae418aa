"""Where the store's events go: the one place that connects a store to the live views.

A store (memory or Redis) says "added" once it has given a capture its id and "cleared
through id N" once it is emptied (app.store.buffer). Here those reach the broadcaster, and
through it every browser stream and the console log; the store's counts reach /metrics when
it is scraped (app.metrics reads its stats). Nothing else announces captures, so the live
views see the same captures, in the same order, whichever store keeps them.
"""

from __future__ import annotations

from app.capture.record import Capture
from app.live.broadcast import Broadcaster
from app.store.buffer import CaptureStore, StoreListener


class _LiveViews:
    """The store's events, handed to the broadcaster (which never waits: the Dispatch path may be calling)."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster

    def added(self, capture: Capture) -> None:
        self._broadcaster.publish(capture)

    def cleared(self, last_id: int) -> None:
        self._broadcaster.publish_cleared(last_id)


def wire(store: CaptureStore, broadcaster: Broadcaster, *others: StoreListener) -> None:
    """Connect the store's events to the live views, then to `others` (e.g. caches to drop on a Clear)."""
    store.events.listen(_LiveViews(broadcaster))
    for listener in others:
        store.events.listen(listener)
