"""The share of the event loop that user-driven work may take, one budget for every request.

The gateway's calls and the dashboard's requests run on one event loop. Work a request asks for
(walking the buffer for a query, indexing journeys, building details, exporting) runs in short
slices; a slice giving the loop a turn is not enough on its own: 32 requests each taking a 5 ms
slice in turn leave a gateway call waiting 160 ms. So every slice is paid from one token bucket
that refills at `share` seconds per second: whatever the number of requests, user work takes at
most about that fraction of the loop, and the gateway's calls (which never pay) have the rest.
A request that cannot get a turn within `max_wait` is refused (`LoopBusy`, a 503 with
Retry-After). Work moved off the loop (RE2 searches in a thread) takes one of `workers` slots,
so requests cannot fill the machine's CPUs either.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")

SLICE_SECONDS = 0.002
"""The longest user work runs on the loop before it pays and waits for its next turn: a gateway
call arriving meanwhile waits at most this long (5 ms put the hostile suite's p99 at 6-10x idle)."""
DEFAULT_SHARE = 0.25
DEFAULT_BURST_SECONDS = 0.025
DEFAULT_MAX_WAIT_SECONDS = 10.0


class LoopBusy(Exception):
    """No turn within the wait bound: the request is refused, to be tried again after `retry_after` s."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the inspector is busy with other requests; try again in {math.ceil(retry_after)} s")
        self.retry_after = max(1, math.ceil(retry_after))


class LoopShare:
    """A token bucket of event loop seconds shared by all user-driven work (FIFO turns)."""

    def __init__(
        self,
        share: float = DEFAULT_SHARE,
        burst: float = DEFAULT_BURST_SECONDS,
        max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
        workers: int = 1,
    ) -> None:
        self.share = share
        self.burst = burst
        self.max_wait = max_wait
        self._tokens = burst
        self._refilled = time.perf_counter()
        self._turns = asyncio.Lock()  # FIFO: the request waiting longest goes first
        self._workers = asyncio.Semaphore(workers)
        self.waiting = 0
        self.refused = 0

    def _refill(self) -> float:
        now = time.perf_counter()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.share)
        self._refilled = now
        return self._tokens

    def spend(self, seconds: float) -> None:
        """Pay for loop time used (the balance may go below zero: the next turns wait longer)."""
        self._refill()
        self._tokens -= seconds

    async def turn(self) -> None:
        """Wait for a turn on the loop: always yields once, and waits while the bucket is empty."""
        deadline = time.perf_counter() + self.max_wait
        self.waiting += 1
        try:
            try:
                async with asyncio.timeout(self.max_wait):
                    await self._turns.acquire()
            except TimeoutError:
                raise self._busy() from None
            try:
                while (tokens := self._refill()) <= 0:
                    wait = -tokens / self.share + 0.001
                    if time.perf_counter() + wait > deadline:
                        raise self._busy()
                    await asyncio.sleep(wait)
            finally:
                self._turns.release()
        finally:
            self.waiting -= 1
        await asyncio.sleep(0)  # the gateway's calls that are ready run before this slice

    def _busy(self) -> LoopBusy:
        self.refused += 1
        backlog = max(0.0, -self._tokens) / self.share + self.waiting * SLICE_SECONDS / self.share
        return LoopBusy(backlog)

    def slices(self) -> Slices:
        """A walk's slices: `await slices.tick()` after each item."""
        return Slices(self)

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[None]:
        """A slot for work run off the loop (a thread or process) on a request's behalf."""
        try:
            async with asyncio.timeout(self.max_wait):
                await self._workers.acquire()
        except TimeoutError:
            raise self._busy() from None
        try:
            yield
        finally:
            self._workers.release()


class Slices:
    """One walk's use of the loop: it runs until SLICE_SECONDS have passed, then pays and waits a turn."""

    def __init__(self, share: LoopShare | None) -> None:
        self.share = share
        self.began = time.perf_counter()

    async def start(self) -> None:
        """Wait for the first turn (a new request queues behind those already waiting)."""
        if self.share is not None:
            await self.share.turn()
        self.began = time.perf_counter()

    @property
    def due(self) -> bool:
        """Whether this slice has run long enough to give the loop a turn."""
        return time.perf_counter() - self.began >= SLICE_SECONDS

    async def tick(self) -> None:
        """Give the loop a turn when this slice has run long enough."""
        now = time.perf_counter()
        if now - self.began >= SLICE_SECONDS:
            await self.pause(now)

    async def pause(self, now: float | None = None) -> None:
        """Pay for the slice so far and wait for the next turn."""
        now = time.perf_counter() if now is None else now
        if self.share is None:
            await asyncio.sleep(0)
        else:
            self.share.spend(now - self.began)
            await self.share.turn()
        self.began = time.perf_counter()

    def pay(self) -> None:
        """Pay for the slice so far before awaiting work off the loop (the wait is not loop time)."""
        self.close()

    async def resume(self) -> None:
        """Back on the loop after off-loop work: wait for a turn, then a fresh slice."""
        await self.start()

    def close(self) -> None:
        """Pay for the last slice (call when the walk ends)."""
        if self.share is not None:
            self.share.spend(time.perf_counter() - self.began)
        self.began = time.perf_counter()
