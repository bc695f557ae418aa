"""This replica's captures on their way into the Redis stream: the bounded local queue and its writer.

`offer` is what the Dispatch path calls: it only appends to a local queue bounded in
captures and bytes, and counts what does not fit as dropped. The writer task (`run`)
sends what is queued in batches, each one atomic Lua script call that hands out the ids
and trims the stream; it retries with backoff while Redis is away. A capture stays
held (and counted against the bounds) until the store's reader has read it back, so
the reader shows this replica's own captures without decoding them again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.capture.record import Capture
from app.store.redis_keys import Backoff, RedisStoreConfig
from app.store.redis_scripts import APPEND
from app.store.stream_codec import OWN_REPLY, SCHEMA, SCHEMA_ID, encode_meta, reply_kind

log = logging.getLogger("tyk_inspector.store")

# One script call carries at most this much; what arrives meanwhile goes in the next.
BATCH_ITEMS = 500
BATCH_BYTES = 8 * 1024 * 1024
# The writer waits this long after the first capture of a batch for more to join it: one
# call for many captures costs the loop (and Redis) far less than one each. The page sees a
# capture that much later; the gateway never does.
LINGER_SECONDS = 0.02


@dataclass(slots=True)
class Queued:
    seq: int
    """Numbers this replica's captures; with the replica's id it is the entry's origin (`o`)."""
    capture: Capture
    cost: int
    queued_at: float


class StreamWriter:
    """The local queue, the captures written but not yet read back, and the task writing them."""

    def __init__(self, config: RedisStoreConfig, client: aioredis.Redis, last_id: Callable[[], int]) -> None:
        self.config = config
        self._client = client
        self._last_id = last_id
        """The newest id this replica shows: the script never hands out an id at or below it."""
        self._append = client.register_script(APPEND)
        self._origin = os.urandom(6).hex() + ":"
        self._origin_bytes = self._origin.encode()
        self._seq = 0
        self._queue: deque[Queued] = deque()
        self._pending: dict[int, Queued] = {}
        """Written or being written, not yet read back: the reader takes its own captures from here."""
        self._written: deque[tuple[int, int]] = deque()
        self._held_items = 0
        self._held_bytes = 0
        self._wake = asyncio.Event()
        self.stopping = False
        """Set at shutdown: write what is queued without lingering for more."""
        self.dropped = 0
        """Captures not stored because the local queue was full (Redis slow or away)."""
        self.written = 0
        self.write_errors = 0
        self.write_lag_seconds = 0.0
        """How long the last batch written had waited in the queue (oldest capture)."""
        self.running = False
        self.repaired = 0
        """Stream entries removed because no capture id could follow them (written by something else)."""

    @property
    def queued(self) -> int:
        """Captures waiting to be written."""
        return len(self._queue)

    def wake(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    # -- the Dispatch path -----------------------------------------------------------------------

    def offer(self, capture: Capture) -> None:
        """Queue a capture, or count it dropped when the queue is full. Never waits."""
        cost = capture.size
        if self._held_items >= self.config.queue_items or self._held_bytes + cost > self.config.queue_bytes:
            self.dropped += 1
            return
        item = self._hold(capture, cost)
        self._queue.append(item)
        self.wake()

    def _hold(self, capture: Capture, cost: int) -> Queued:
        self._seq += 1
        item = Queued(self._seq, capture, cost, time.monotonic())
        self._pending[item.seq] = item
        self._held_items += 1
        self._held_bytes += cost
        return item

    def _release(self, seq: int) -> Queued | None:
        item = self._pending.pop(seq, None)
        if item is not None:
            self._held_items -= 1
            self._held_bytes -= item.cost
        return item

    # -- what the reader asks --------------------------------------------------------------------

    def _own_seq(self, fields: dict[bytes, bytes]) -> int:
        """The seq of one of this replica's captures, or 0 for another replica's."""
        origin = fields.get(b"o", b"")
        return int(origin[len(self._origin) :]) if origin.startswith(self._origin_bytes) else 0

    def holds(self, fields: dict[bytes, bytes]) -> bool:
        """Whether a stream entry is one of this replica's captures still held here."""
        return self._own_seq(fields) in self._pending

    def claim(self, fields: dict[bytes, bytes]) -> Capture | None:
        """This replica's capture a stream entry was written from (no longer held), or None."""
        item = self._release(self._own_seq(fields))
        return None if item is None else item.capture

    def forget_written(self, up_to: int) -> None:
        """The reader has passed `up_to`: captures written but trimmed before it read them are let go."""
        while self._written and self._written[0][0] <= up_to:
            self._release(self._written.popleft()[1])

    # -- writing -----------------------------------------------------------------------------------

    async def write_now(self, captures: list[Capture]) -> int:
        """Append captures at once (an import), outside the queue; returns the last id handed out.

        The captures get their ids. Raises RedisError when Redis does not take them.
        """
        items = [self._hold(capture, capture.size) for capture in captures]
        try:
            first, last = await self._run_append(items)
        except RedisError:
            for item in items:
                self._release(item.seq)
            raise
        self._wrote(items, first)
        return last

    def _wrote(self, items: list[Queued], first: int) -> None:
        for offset, item in enumerate(items):
            item.capture.id = first + offset
            self._written.append((item.capture.id, item.seq))

    async def _run_append(self, items: list[Queued]) -> tuple[int, int]:
        args: list[bytes | int | str] = [
            self.config.max_items,
            self.config.max_bytes,
            self._last_id(),
            SCHEMA_ID,
            SCHEMA,
        ]
        for item in items:
            capture = item.capture
            kind = reply_kind(capture)
            reply = capture.reply if kind == OWN_REPLY and capture.reply is not None else b""
            # One argument says where the capture comes from, what it counts and whether a reply
            # follows, then its meta: fewer arguments are what makes a batch cheap to send.
            head = f"{self._origin}{item.seq} {item.cost} {kind}\n".encode() + encode_meta(capture)
            if kind == OWN_REPLY:
                args += [head, capture.request, reply]
            else:
                args += [head, capture.request]
        first, last, removed = await self._append(keys=self.config.keys, args=args, client=self._client)
        if int(removed):
            self.repaired += int(removed)
            log.warning(
                "Redis store: removed %d stream entries with ids no capture id can follow (not written by an "
                "inspector); writing goes on after them",
                int(removed),
            )
        return int(first), int(last)

    async def run(self) -> None:
        """The writer task: batches from the queue, retried with backoff while Redis fails.

        Ends by itself once `stopping` is set and the queue is empty.
        """
        self.running = True
        try:
            await self._run()
        finally:
            self.running = False

    async def _run(self) -> None:
        retry = Backoff("writing", ", captures queue")
        reported_drops = 0
        while True:
            if not self._queue:
                if self.stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                if not self._queue:
                    continue
                if len(self._queue) < BATCH_ITEMS and not self.stopping:
                    await asyncio.sleep(LINGER_SECONDS)
            batch = self._take_batch()
            try:
                first, _ = await self._run_append(batch)
            except RedisError as exc:
                self.write_errors += 1
                reported_drops = self._report_drops(reported_drops)
                await retry.failed(exc)
                continue
            retry.succeeded()
            now = time.monotonic()
            self.write_lag_seconds = now - batch[0].queued_at
            for _ in batch:
                self._queue.popleft()
            self._wrote(batch, first)
            self.written += len(batch)
            reported_drops = self._report_drops(reported_drops)

    def _take_batch(self) -> list[Queued]:
        batch: list[Queued] = []
        size = 0
        for item in self._queue:
            if batch and (len(batch) >= BATCH_ITEMS or size + item.cost > BATCH_BYTES):
                break
            batch.append(item)
            size += item.cost
        return batch

    def _report_drops(self, reported: int) -> int:
        if self.dropped > reported:
            log.warning(
                "Redis store: %d captures dropped (%d in all): the local queue of %d captures / %d bytes was full",
                self.dropped - reported,
                self.dropped,
                self.config.queue_items,
                self.config.queue_bytes,
            )
        return self.dropped
