"""Where heavy conversions run: a worker thread, or a worker process for large captures.

A worker thread keeps Python work off the event loop, but one long C call in it (the base64
of a 75 MB body, a copy of that body out of a protobuf message) holds the interpreter lock
the loop needs for hundreds of milliseconds, and the gateway's calls wait that long. Work on
a large capture therefore runs in a separate process: the loop only hands its bytes over.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_PROCESS_ABOVE_BYTES = 8 * 1024 * 1024
"""Captures larger than this are converted in the worker process (about 10 ms of base64 at most in a thread)."""


class Offloader:
    """Runs a function in a thread, or, for `size` above the threshold, in one worker process.

    The process is started on first use ("spawn": never a fork of a process running gRPC) and
    does one job at a time, so it holds at most one large capture besides what the store keeps.
    """

    def __init__(self, process_above_bytes: int = DEFAULT_PROCESS_ABOVE_BYTES) -> None:
        self.process_above_bytes = process_above_bytes
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, size: int, function: Callable[..., T], *args: object) -> T:
        if size <= self.process_above_bytes:
            return await asyncio.to_thread(function, *args)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        except BrokenProcessPool:
            # The worker died (killed, out of memory): the job still gets done, in a thread,
            # and the next large one starts a new worker.
            log.warning("the worker process for large captures stopped; converting this one in a thread")
            self._pool = None
            return await asyncio.to_thread(function, *args)

    def close(self) -> None:
        """Stop the worker process (jobs not started are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
