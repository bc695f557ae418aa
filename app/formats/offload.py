"""Where heavy conversions run: a worker thread, or a worker process for large or sustained work.

A worker thread keeps Python work off the event loop, but it still shares the interpreter lock
with the loop. One long C call in it (the base64 of a 75 MB body, a copy of that body out of a
protobuf message) holds that lock for hundreds of milliseconds; seconds of steady conversion
(a 250 MB export) make every gRPC call wait its turn for the lock several times. Work on a large
capture, and each full batch of a large download, therefore runs in a separate process: the
loop only hands bytes over.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Protocol, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_PROCESS_ABOVE_BYTES = 8 * 1024 * 1024
"""Captures larger than this are converted in the worker process (about 10 ms of base64 at most in a thread)."""

BATCH_ITEMS = 200
BATCH_BYTES = 4 * 1024 * 1024
"""A batch of a download: bounded by items and bytes, so no step takes long and little is in flight."""

DOWNLOAD_IN_THREADS_ITEMS = 2_000
"""A download's batches convert in threads until it has gone past this many items or the byte
threshold (a fraction of a second of work); the rest of a larger one converts in the workers."""

IDLE_SECONDS = 60.0
"""Worker processes left without work this long are let go (each holds tens of MB); the next job starts them again."""

WORKERS = 2
"""Worker processes: a large detail need not wait for a long export's batches."""


def _worker_started() -> None:
    """In a worker: stopping is the inspector's to do, and a worker outlives no inspector.

    Ctrl+C reaches the whole process group, but the inspector finishes or cancels the work,
    then closes the pool. An inspector killed outright (SIGKILL, out of memory) closes nothing:
    its workers would wait for jobs forever, and the resource tracker for them. The parent's
    sentinel (a pipe the parent holds open) tells a worker when that happened.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="exit-with-parent", daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    wait([parent_sentinel])
    os._exit(0)  # no cleanup to do for an inspector that is gone


class Sized(Protocol):
    @property
    def size(self) -> int: ...


Item = TypeVar("Item", bound=Sized)


class Offloader:
    """Runs a function in a thread, or, for `size` above the threshold, in a worker process.

    The processes are started on first use ("spawn": never a fork of a process running gRPC) and
    each does one job at a time, so they hold at most `WORKERS` jobs' data besides what the store keeps.
    """

    def __init__(
        self, process_above_bytes: int = DEFAULT_PROCESS_ABOVE_BYTES, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.process_above_bytes = process_above_bytes
        self.idle_seconds = idle_seconds
        self._pool: ProcessPoolExecutor | None = None
        self._jobs = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        """Only ever touched on the loop's thread (a TimerHandle is not thread-safe)."""
        self._closed = False

    @property
    def started(self) -> bool:
        """Whether worker processes are running (or starting)."""
        return self._pool is not None

    async def run(self, size: int, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in a thread, or in a worker process when `size` is above the threshold."""
        if size <= self.process_above_bytes:
            return await asyncio.to_thread(function, *args)
        return await self.in_process(function, *args)

    async def in_process(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in a worker process; function and arguments must pickle."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._closed:
            return await asyncio.to_thread(function, *args)  # shutting down: no new workers
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
            )
        pool = self._pool
        loop = asyncio.get_running_loop()
        self._jobs += 1
        try:
            return await loop.run_in_executor(pool, function, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the job still gets done, in a thread,
            # and the next one starts new workers. Only the pool this job ran on is let go:
            # another job may have started a newer one meanwhile, which must not be orphaned.
            log.warning("a worker process for large conversions stopped; doing this one in a thread")
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False)
            return await asyncio.to_thread(function, *args)
        finally:
            self._jobs -= 1
            if not self._jobs and self._pool is not None and self._idle_timer is None and not self._closed:
                self._idle_timer = loop.call_later(self.idle_seconds, self._let_go)

    def _let_go(self) -> None:
        self._idle_timer = None
        if not self._jobs and self._pool is not None:
            self._pool.shutdown(wait=False)  # idle workers exit at once; nothing waits here
            self._pool = None

    async def batches(
        self, items: Iterable[Item], convert: Callable[[list[Item], bool], bytes]
    ) -> AsyncIterator[bytes]:
        """`convert(batch, first)` over batches of `items`, which are taken where the caller runs (the loop).

        A small download converts in threads. Past `DOWNLOAD_IN_THREADS_ITEMS` or the byte
        threshold it is a large one, seconds of steady conversion: its further full batches run in
        the worker processes, so the gRPC handlers never queue for the interpreter lock behind
        them. The last, partial batch runs in a thread. `first` is true until a batch has produced bytes.
        """
        first = True
        batch: list[Item] = []
        size = 0
        done_items = done_bytes = 0
        for item in items:
            batch.append(item)
            size += item.size
            if len(batch) >= BATCH_ITEMS or size >= BATCH_BYTES:
                done_items, done_bytes = done_items + len(batch), done_bytes + size
                if done_items > DOWNLOAD_IN_THREADS_ITEMS or done_bytes > self.process_above_bytes:
                    piece = await self.in_process(convert, batch, first)
                else:
                    piece = await asyncio.to_thread(convert, batch, first)
                first = first and not piece
                yield piece
                batch, size = [], 0
        if batch:
            yield await asyncio.to_thread(convert, batch, first)

    async def aclose(self) -> None:
        """Stop the worker processes (jobs not started are dropped) without blocking the loop.

        The timer is cancelled here, on the loop's thread; only the wait for the workers runs in a thread.
        """
        pool = self._detach()
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker processes, waiting for them; call it on the loop's thread (or with no loop)."""
        pool = self._detach()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _detach(self) -> ProcessPoolExecutor | None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        pool, self._pool = self._pool, None
        return pool
