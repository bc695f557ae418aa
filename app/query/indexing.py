"""Indexes kept beside the store (journeys, shared tokens): brought up to date on demand, in slices.

An index reads the captures added since it last looked, on the event loop, giving the loop a
turn every few milliseconds, and forgets what the store evicted.
"""

from __future__ import annotations

import asyncio
import time

from app.capture.record import Capture
from app.query.matcher import SLICE_SECONDS
from app.store.buffer import CaptureStore


class BufferIndex:
    """What every index over the buffer shares: where it stands, and the sliced catch-up."""

    def __init__(self, store: CaptureStore) -> None:
        self.store = store
        self._indexed = 0
        """The newest capture id indexed."""
        self._lock = asyncio.Lock()

    async def catch_up(self) -> None:
        """Index the captures added since the last call, dropping what the store evicted."""
        async with self._lock:
            self._prune()
            slice_end = time.perf_counter() + SLICE_SECONDS
            for capture in self.store.oldest_first(self._indexed):
                self.add(capture)
                if time.perf_counter() > slice_end:
                    await asyncio.sleep(0)
                    slice_end = time.perf_counter() + SLICE_SECONDS
                    self._prune()

    def add(self, capture: Capture) -> None:
        """Index one capture (in id order)."""
        raise NotImplementedError

    def _prune(self) -> None:
        """Forget the captures the store no longer holds."""
        raise NotImplementedError
