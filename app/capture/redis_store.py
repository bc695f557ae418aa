"""The Redis Streams store: one capture store shared by every replica, kept across restarts.

The gateway never waits on Redis. `add` (on the Dispatch path) only puts the capture
in a bounded local queue; a writer task appends what is queued in batches, each one
atomic Lua script that hands out the ids (one global order across replicas) and
trims the stream to the bounds. A reader task tails the stream and fills a local
mirror with every replica's captures, its own included, in the stream's order: the
page, the API, SSE and export read the mirror, synchronously, on the loop.

When Redis is slow or away the queue fills and further captures are dropped and
counted; the writer retries with backoff and catches up when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from app.capture.mirror import Mirror
from app.capture.record import Capture
from app.capture.redis_keys import RedisStoreConfig, StoreError, check_keys, connect, parse_entry_id
from app.capture.redis_scripts import APPEND, CLEAR
from app.capture.store import StoreStats, StoreUnavailable
from app.capture.stream_codec import (
    META_FIELDS,
    OWN_REPLY,
    SCHEMA,
    SCHEMA_ID,
    decode,
    encode_meta,
    reply_kind,
    schema_of,
    without_payload,
)

log = logging.getLogger("tyk_inspector.store")

# One script call carries at most this much; what arrives meanwhile goes in the next.
BATCH_ITEMS = 500
BATCH_BYTES = 8 * 1024 * 1024
# The writer waits this long after the first capture of a batch for more to join it, and the
# reader as long between two reads: one call for many captures costs the loop (and Redis) far
# less than one each. The page sees a capture that much later; the gateway never does.
LINGER_SECONDS = 0.02
READ_PAUSE_SECONDS = 0.01
READ_COUNT = 500
READ_BLOCK_MS = 1000
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
# How long an import, a replay or a Clear waits for the shared store before it is told it failed.
SETTLE_SECONDS = 10.0


class LiveViews(Protocol):
    """Where the reader announces what it read (the broadcaster)."""

    def publish(self, capture: Capture) -> None: ...
    def publish_cleared(self, last_id: int) -> None: ...


@dataclass(slots=True)
class _Queued:
    seq: int
    """Numbers this replica's captures; with the replica's id it is the entry's origin (`o`)."""
    capture: Capture
    cost: int
    queued_at: float


class RedisStore:
    """A CaptureStore over a Redis Stream, shared by every replica with the same URL and prefix."""

    shared = True

    def __init__(self, config: RedisStoreConfig, live: LiveViews) -> None:
        self.config = config
        self._live = live
        self.mirror = Mirror(config.max_items, config.max_bytes)
        self._keys = config.keys
        self._stream = config.key("captures")
        self._schemas_key = config.key("schemas")
        self._schemas: dict[str, tuple[str, ...]] = {SCHEMA_ID: META_FIELDS}
        self._origin = os.urandom(6).hex() + ":"
        self._origin_bytes = self._origin.encode()
        self._seq = 0
        self._queue: deque[_Queued] = deque()
        self._pending: dict[int, _Queued] = {}
        """Written or being written, not yet read back: the reader takes its own captures from here."""
        self._written: deque[tuple[int, int]] = deque()
        self._held_items = 0
        self._held_bytes = 0
        self._wake = asyncio.Event()
        self._seen = asyncio.Event()
        """Set (and replaced) each time the reader has read something."""
        self._cursor = "0-0"
        self.dropped = 0
        """Captures not stored because the local queue was full (Redis slow or away)."""
        self.written = 0
        self.write_errors = 0
        self.write_lag_seconds = 0.0
        """How long the last batch written had waited in the queue (oldest capture)."""
        self.unreadable = 0
        self.connected = False
        self._writer_client = connect(config.url, timeout=5.0)
        self._reader_client = connect(config.url, timeout=READ_BLOCK_MS / 1000 + 5.0)
        self._append = self._writer_client.register_script(APPEND)
        self._clear = self._writer_client.register_script(CLEAR)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the store, load what it holds, start the writer and reader.

        Raises StoreError for a refused password or a key of the wrong type; a Redis that does
        not answer is only logged: the gateway is answered either way, and writing starts when it is back.
        """
        where = self.config.public_url
        try:
            await check_keys(self._reader_client, self.config)
            await self._catch_up()
            self.connected = True
        except (RedisError, OSError) as exc:
            log.warning("Redis store %s is not answering (%s): captures wait for it", where, exc)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="store-writer"),
            asyncio.create_task(self._read_loop(), name="store-reader"),
        ]
        log.info("captures are kept in Redis at %s under %s:*", where, self.config.prefix)

    async def stop(self, grace: float) -> None:
        """Write what is queued (for up to `grace` seconds), then stop both tasks and disconnect."""
        self._stopping = True
        deadline = time.monotonic() + grace
        while self._queue and time.monotonic() < deadline and self._tasks and not self._tasks[0].done():
            self._wake.set()
            await asyncio.sleep(0.01)
        if self._queue:
            log.warning("%d captures not written to Redis before shutdown", len(self._queue))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._writer_client.aclose()
        await self._reader_client.aclose()

    # -- the Dispatch path -----------------------------------------------------------------------

    def add(self, capture: Capture) -> Capture:
        """Queue a capture for Redis, or count it dropped when the queue is full. Never waits."""
        if capture.size > self.config.max_bytes:
            capture = without_payload(capture, self.config.max_bytes)
        cost = capture.size
        if self._held_items >= self.config.queue_items or self._held_bytes + cost > self.config.queue_bytes:
            self.dropped += 1
            return capture
        self._seq += 1
        self._hold(_Queued(self._seq, capture, cost, time.monotonic()))
        return capture

    def _hold(self, item: _Queued) -> None:
        self._queue.append(item)
        self._pending[item.seq] = item
        self._held_items += 1
        self._held_bytes += item.cost
        if not self._wake.is_set():
            self._wake.set()

    def _release(self, seq: int) -> _Queued | None:
        item = self._pending.pop(seq, None)
        if item is not None:
            self._held_items -= 1
            self._held_bytes -= item.cost
        return item

    def add_many(self, captures: Iterable[Capture]) -> list[Capture]:
        return [self.add(c) for c in captures]

    # -- reads: the mirror -----------------------------------------------------------------------

    def get(self, capture_id: int) -> Capture | None:
        return self.mirror.get(capture_id)

    def newest_first(self, before: int | None = None) -> Iterator[Capture]:
        return self.mirror.newest_first(before)

    def oldest_first(self, after: int = 0) -> Iterator[Capture]:
        return self.mirror.oldest_first(after)

    @property
    def first_id(self) -> int:
        return self.mirror.first_id

    @property
    def last_id(self) -> int:
        return self.mirror.last_id

    def clear(self) -> int:
        """Empty this replica's mirror only; `clear_shared` empties the store itself."""
        return self.mirror.clear()

    def stats(self) -> StoreStats:
        s = self.mirror.stats()
        return StoreStats(
            count=s.count,
            bytes=s.bytes,
            max_items=s.max_items,
            max_bytes=s.max_bytes,
            total=s.total,
            evicted=s.evicted,
            first_id=s.first_id,
            last_id=s.last_id,
            dropped=self.dropped,
            queued=len(self._queue),
        )

    # -- shared writes that the caller waits for: import, replay, Clear ---------------------------

    async def append(self, captures: list[Capture]) -> list[Capture]:
        """Store captures now (an import) and return them with their ids, once this replica shows them.

        Raises StoreUnavailable when Redis does not take them.
        """
        stored = [c if c.size <= self.config.max_bytes else without_payload(c, self.config.max_bytes) for c in captures]
        for start in range(0, len(stored), BATCH_ITEMS):
            items = []
            for capture in stored[start : start + BATCH_ITEMS]:
                self._seq += 1
                item = _Queued(self._seq, capture, capture.size, time.monotonic())
                self._pending[item.seq] = item
                self._held_items += 1
                self._held_bytes += item.cost
                items.append(item)
            try:
                first, last = await self._run_append(items)
            except RedisError as exc:
                for item in items:
                    self._release(item.seq)
                raise StoreUnavailable(f"the Redis store did not take the captures: {exc}") from None
            for offset, item in enumerate(items):
                item.capture.id = first + offset
                self._written.append((item.capture.id, item.seq))
            await self.settle(last)
        return stored

    async def clear_shared(self) -> int:
        """Empty the store for every replica; returns how many captures it held."""
        try:
            removed, marker = await self._clear(keys=self._keys, args=[self.mirror.last_id], client=self._writer_client)
        except RedisError as exc:
            raise StoreUnavailable(f"the Redis store could not be cleared: {exc}") from None
        target = parse_entry_id(marker.decode() if isinstance(marker, bytes) else str(marker))
        await self._wait_for(lambda: parse_entry_id(self._cursor) >= target, "the Clear was stored but not")
        return int(removed)

    async def settle(self, capture_id: int) -> None:
        """Wait until this replica's mirror has caught up to `capture_id`."""
        await self._wait_for(lambda: self.mirror.last_id >= capture_id, f"capture {capture_id} was written but not")

    async def settle_capture(self, capture: Capture) -> None:
        """Wait until a capture handed to `add` has its id and shows in this replica."""
        await self._wait_for(lambda: 0 < capture.id <= self.mirror.last_id, "the capture was")

    async def _wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"{what} read back from Redis within {SETTLE_SECONDS:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), max(0.0, deadline - time.monotonic()))

    # -- the writer ------------------------------------------------------------------------------

    async def _run_append(self, items: list[_Queued]) -> tuple[int, int]:
        args: list[bytes | int | str] = [
            self.config.max_items,
            self.config.max_bytes,
            self.mirror.last_id,
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
        first, last = await self._append(keys=self._keys, args=args, client=self._writer_client)
        return int(first), int(last)

    async def _write_loop(self) -> None:
        backoff = BACKOFF_FIRST
        reported_drops = 0
        failing_since: float | None = None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                if len(self._queue) < BATCH_ITEMS and not self._stopping:
                    await asyncio.sleep(LINGER_SECONDS)
            batch = self._take_batch()
            try:
                first, _ = await self._run_append(batch)
            except RedisError as exc:
                self.write_errors += 1
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("Redis store: writing failed (%s); retrying with backoff, captures queue", exc)
                reported_drops = self._report_drops(reported_drops)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            now = time.monotonic()
            if failing_since is not None:
                log.info("Redis store: writing again after %.1f s", now - failing_since)
                failing_since = None
            backoff = BACKOFF_FIRST
            self.write_lag_seconds = now - batch[0].queued_at
            for offset, item in enumerate(batch):
                self._queue.popleft()
                item.capture.id = first + offset
                self._written.append((item.capture.id, item.seq))
            self.written += len(batch)
            reported_drops = self._report_drops(reported_drops)

    def _take_batch(self) -> list[_Queued]:
        batch: list[_Queued] = []
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

    # -- the reader ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = BACKOFF_FIRST
        failing = False
        while True:
            try:
                if not self.connected:
                    await check_keys(self._reader_client, self.config)
                    self.connected = True
                if await self._read_once(block=True) < READ_COUNT:
                    await asyncio.sleep(READ_PAUSE_SECONDS)
            except StoreError as exc:
                log.error("Redis store: %s", exc)
                await asyncio.sleep(BACKOFF_MAX)
                continue
            except (RedisError, OSError) as exc:
                self.connected = False
                if not failing:
                    log.warning("Redis store: reading failed (%s); retrying with backoff", exc)
                    failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if failing:
                log.info("Redis store: reading again")
                failing = False
            backoff = BACKOFF_FIRST

    async def _catch_up(self) -> None:
        """Read until the end of the stream (at start: load what the store holds)."""
        while await self._read_once(block=False) >= READ_COUNT:
            pass

    async def _read_once(self, block: bool) -> int:
        client = self._reader_client
        block_ms = READ_BLOCK_MS if block else None
        streams: Any = await client.xread({self._stream: self._cursor}, count=READ_COUNT, block=block_ms)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = streams[0][1] if streams else []
        await self._learn_schemas(entries)
        for entry_id, fields in entries:
            self._apply(entry_id.decode(), fields)
        if entries:
            self._cursor = entries[-1][0].decode()
            self._forget_written(parse_entry_id(self._cursor)[0])
            self._seen.set()
            self._seen = asyncio.Event()
        return len(entries)

    async def _learn_schemas(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Fetch the field names of captures written by another version of the inspector."""
        unknown = {
            schema_of(fields[b"m"])
            for _, fields in entries
            if b"m" in fields and self._own_seq(fields) not in self._pending
        } - self._schemas.keys()
        if unknown:
            names = sorted(unknown)
            for schema_id, schema in zip(names, await self._reader_client.hmget(self._schemas_key, names), strict=True):
                if schema is not None:
                    self._schemas[schema_id] = tuple(json.loads(schema))

    def _apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        number = int(entry_id.partition("-")[0])
        if b"c" in fields:
            self.mirror.clear()
            self.mirror.skip_to(number)
            self._live.publish_cleared(number)
            return
        if number <= self.mirror.last_id:
            return  # already shown (e.g. read again after a reconnect)
        mine = self._release(self._own_seq(fields))
        if mine is not None:
            capture = mine.capture
            capture.id = number
        else:
            try:
                capture = decode(number, fields, self._schemas)
            except ValueError as exc:
                self.unreadable += 1
                self.mirror.skip_to(number)
                log.warning("Redis store: %s", exc)
                return
        self.mirror.append(capture)
        self._live.publish(capture)

    def _own_seq(self, fields: dict[bytes, bytes]) -> int:
        """The seq of one of this replica's captures, or 0 for another replica's."""
        origin = fields.get(b"o", b"")
        return int(origin[len(self._origin) :]) if origin.startswith(self._origin_bytes) else 0

    def _forget_written(self, up_to: int) -> None:
        # Captures written but trimmed before this reader got to them: stop holding them.
        while self._written and self._written[0][0] <= up_to:
            self._release(self._written.popleft()[1])
