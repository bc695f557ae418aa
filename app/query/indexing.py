"""Indexes kept beside the store (journeys, shared tokens): brought up to date on demand, in slices.

An index reads the captures added since it last looked, on the event loop, giving the loop a
turn every few milliseconds, and forgets what the store evicted.
"""

from __future__ import annotations

import asyncio

from app.capture.record import Capture
from app.query.loop_share import LoopShare, Slices
from app.store.buffer import CaptureStore


class BufferIndex:
    """What every index over the buffer shares: where it stands, and the sliced catch-up."""

    def __init__(self, store: CaptureStore, share: LoopShare | None = None) -> None:
        self.store = store
        self.share = share
        """The loop time shared with every other request's work (None: a plain turn each slice)."""
        self._indexed = 0
        """The newest capture id indexed."""
        self._lock = asyncio.Lock()

    async def catch_up(self) -> None:
        """Index the captures added since the last call, dropping what the store evicted."""
        async with self._lock:
            if self.store.last_id <= self._indexed:
                self._prune()
                return
            slices = Slices(self.share)
            await slices.start()
            try:
                self._prune()
                for capture in self.store.oldest_first(self._indexed):
                    self.add(capture)
                    if slices.due:
                        await slices.pause()
                        self._prune()
            finally:
                slices.close()

    def add(self, capture: Capture) -> None:
        """Index one capture (in id order)."""
        raise NotImplementedError

    def _prune(self) -> None:
        """Forget the captures the store no longer holds."""
        raise NotImplementedError
