"""The Redis Streams store: one capture store shared by every replica, kept across restarts.

The gateway never waits on Redis. `add` (on the Dispatch path) only puts the capture
in a bounded local queue; a writer task appends what is queued in batches, each one
atomic Lua script that hands out the ids (one global order across replicas) and
trims the stream to the bounds (app.capture.redis_writer). A reader task tails the
stream and fills a local mirror with every replica's captures, its own included, in
the stream's order: the page, the API, SSE and export read the mirror, synchronously,
on the loop.

When Redis is slow or away the queue fills and further captures are dropped and
counted; the writer retries with backoff and catches up when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from redis.exceptions import RedisError

from app.capture.mirror import Mirror
from app.capture.record import Capture
from app.capture.redis_keys import RedisStoreConfig, StoreError, check_keys, connect, parse_entry_id
from app.capture.redis_scripts import CLEAR
from app.capture.redis_writer import BACKOFF_FIRST, BACKOFF_MAX, BATCH_ITEMS, StreamWriter
from app.capture.store import StoreStats, StoreUnavailable
from app.capture.stream_codec import META_FIELDS, SCHEMA_ID, decode, schema_of, without_payload

log = logging.getLogger("tyk_inspector.store")

# The reader waits this long between two reads: one call for many captures costs the loop
# (and Redis) far less than one each.
READ_PAUSE_SECONDS = 0.01
READ_COUNT = 500
READ_BLOCK_MS = 1000
# How long an import, a replay or a Clear waits for the shared store before it is told it failed.
SETTLE_SECONDS = 10.0


class LiveViews(Protocol):
    """Where the reader announces what it read (the broadcaster)."""

    def publish(self, capture: Capture) -> None: ...
    def publish_cleared(self, last_id: int) -> None: ...


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
        self._seen = asyncio.Event()
        """Set (and replaced) each time the reader has read something."""
        self._cursor = "0-0"
        self.unreadable = 0
        self.connected = False
        self._writer_client = connect(config.url, timeout=5.0)
        self._reader_client = connect(config.url, timeout=READ_BLOCK_MS / 1000 + 5.0)
        self._writer = StreamWriter(config, self._writer_client, lambda: self.mirror.last_id)
        self._clear = self._writer_client.register_script(CLEAR)
        self._tasks: list[asyncio.Task[None]] = []

    # The writer's counters, for /api/stats and /metrics.

    @property
    def dropped(self) -> int:
        """Captures not stored because the local queue was full (Redis slow or away)."""
        return self._writer.dropped

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def write_errors(self) -> int:
        return self._writer.write_errors

    @property
    def write_lag_seconds(self) -> float:
        """How long the last batch written had waited in the queue (oldest capture)."""
        return self._writer.write_lag_seconds

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
            asyncio.create_task(self._writer.run(), name="store-writer"),
            asyncio.create_task(self._read_loop(), name="store-reader"),
        ]
        log.info("captures are kept in Redis at %s under %s:*", where, self.config.prefix)

    async def stop(self, grace: float) -> None:
        """Write what is queued (for up to `grace` seconds), then stop both tasks and disconnect."""
        writer = self._writer
        writer.stopping = True
        deadline = time.monotonic() + grace
        while writer.queued and time.monotonic() < deadline and self._tasks and not self._tasks[0].done():
            writer.wake()
            await asyncio.sleep(0.01)
        if writer.queued:
            log.warning("%d captures not written to Redis before shutdown", writer.queued)
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
        self._writer.offer(capture)
        return capture

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
            dropped=self._writer.dropped,
            queued=self._writer.queued,
        )

    # -- shared writes that the caller waits for: import, replay, Clear ---------------------------

    async def append(self, captures: list[Capture]) -> list[Capture]:
        """Store captures now (an import) and return them with their ids, once this replica shows them.

        Raises StoreUnavailable when Redis does not take them.
        """
        stored = [c if c.size <= self.config.max_bytes else without_payload(c, self.config.max_bytes) for c in captures]
        for start in range(0, len(stored), BATCH_ITEMS):
            try:
                last = await self._writer.write_now(stored[start : start + BATCH_ITEMS])
            except RedisError as exc:
                raise StoreUnavailable(f"the Redis store did not take the captures: {exc}") from None
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
            self._writer.forget_written(parse_entry_id(self._cursor)[0])
            self._seen.set()
            self._seen = asyncio.Event()
        return len(entries)

    async def _learn_schemas(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Fetch the field names of captures written by another version of the inspector."""
        unknown = {
            schema_of(fields[b"m"]) for _, fields in entries if b"m" in fields and not self._writer.holds(fields)
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
        capture = self._writer.claim(fields)  # one of ours: shown without decoding it again
        if capture is not None:
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
