"""The Redis Streams store: one capture store shared by every replica, kept across restarts.

The gateway never waits on Redis. `add` (on the Dispatch path) only puts the capture
in a bounded local queue; a writer task appends what is queued in batches, each one
atomic Lua script that hands out the ids (one global order across replicas) and
trims the stream to the bounds (app.store.redis_writer). A reader task tails the
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
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

from redis.exceptions import RedisError

from app.capture.record import Capture
from app.store.buffer import CaptureRing, StoreEvents, StoreStats, StoreUnavailable, strip_payload
from app.store.redis_keys import (
    BACKOFF_MAX,
    Backoff,
    RedisStoreConfig,
    StoreError,
    check_keys,
    connect,
    parse_entry_id,
)
from app.store.redis_scripts import CLEAR
from app.store.redis_writer import BATCH_ITEMS, StreamWriter
from app.store.stream_codec import MAX_META_BYTES, META_FIELDS, SCHEMA_ID, decode, schema_of

log = logging.getLogger("tyk_inspector.store")

# The reader waits this long between two reads: one call for many captures costs the loop
# (and Redis) far less than one each.
READ_PAUSE_SECONDS = 0.01
READ_COUNT = 500
READ_BLOCK_MS = 1000
# How long an import, a replay or a Clear waits for the shared store before it is told it failed.
SETTLE_SECONDS = 10.0
# Capture ids stay within what every reader (and Redis's Lua numbers) hold exactly; an entry
# beyond it was not written by an inspector.
MAX_CAPTURE_ID = 10**15 - 1
# At shutdown the reader finishes its current read (at most READ_BLOCK_MS) by itself; then it is cancelled.
READER_STOP_SECONDS = READ_BLOCK_MS / 1000 * 2 + 1.0


class TaskOwner(Protocol):
    """Who runs the store's tasks (app.supervisor): restarts them after a crash, stops them in bounded time."""

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        stop: Callable[[], object] | None = ...,
        stop_seconds: float = ...,
    ) -> None: ...

    async def stop(self, *names: str) -> None: ...


class RedisStore:
    """A CaptureStore over a Redis Stream, shared by every replica with the same URL and prefix."""

    shared = True

    def __init__(self, config: RedisStoreConfig) -> None:
        self.config = config
        self.events = StoreEvents()
        """What the reader announces: every capture it shows, every Clear it reads (from any replica)."""
        self.mirror = CaptureRing(config.max_items, config.max_bytes)
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
        self._owner: TaskOwner | None = None
        self._reading = False
        """The reader's stop flag: cleared at shutdown, checked between two reads."""
        self._bad_schemas: set[str] = set()
        self._beyond: set[str] = set()

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

    async def start(self, owner: TaskOwner) -> None:
        """Check the store, load what it holds, start the writer and reader (as `owner`'s tasks).

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
        self._owner = owner
        self._reading = True
        owner.start("store-writer", self._writer.run, stop=self._writer.wake)
        owner.start("store-reader", self._read_loop, stop=self._stop_reading, stop_seconds=READER_STOP_SECONDS)
        log.info("captures are kept in Redis at %s under %s:*", where, self.config.prefix)

    async def stop(self, grace: float) -> None:
        """Write what is queued (for up to `grace` seconds), then stop both tasks and disconnect."""
        writer = self._writer
        writer.stopping = True
        deadline = time.monotonic() + grace
        while writer.queued and time.monotonic() < deadline and self._owner is not None and writer.running:
            writer.wake()
            await asyncio.sleep(0.01)
        if writer.queued:
            log.warning("%d captures not written to Redis before shutdown", writer.queued)
        if self._owner is not None:
            await self._owner.stop("store-writer", "store-reader")
        for client in (self._writer_client, self._reader_client):
            try:
                await asyncio.wait_for(client.aclose(), 2.0)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("Redis store: the connection did not close cleanly (%r)", exc)

    def _stop_reading(self) -> None:
        self._reading = False

    # -- the Dispatch path -----------------------------------------------------------------------

    def add(self, capture: Capture) -> Capture:
        """Queue a capture for Redis, or count it dropped when the queue is full. Never waits."""
        if capture.size > self.config.max_bytes:
            strip_payload(capture, self.config.max_bytes)
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
        """Empty this replica's mirror only; `clear_all` empties the store itself."""
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
        for capture in captures:
            if capture.size > self.config.max_bytes:
                strip_payload(capture, self.config.max_bytes)
        stored = captures
        for start in range(0, len(stored), BATCH_ITEMS):
            try:
                last = await self._writer.write_now(stored[start : start + BATCH_ITEMS])
            except RedisError as exc:
                raise StoreUnavailable(f"the Redis store did not take the captures: {exc}") from None
            await self.settle(last)
        return stored

    async def clear_all(self) -> int:
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
        retry = Backoff("reading")
        # The flag, not only cancellation, ends the loop: a cancellation can be lost inside the
        # client's read (seen with redis-py on Python 3.11), a flag checked between reads cannot.
        while self._reading:
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
                await retry.failed(exc)
                continue
            retry.succeeded()

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
        cursor = None
        for entry_id, fields in entries:
            if self._beyond_ids(entry_id.decode()):
                continue  # the cursor stays below it: the writer removes it, and what follows comes after the cursor
            self._apply(entry_id.decode(), fields)
            cursor = entry_id.decode()
        if entries and cursor is None and block:
            await asyncio.sleep(READ_BLOCK_MS / 1000)  # only such entries: wait as a blocking read would
        if cursor is not None:
            self._cursor = cursor
            self._writer.forget_written(parse_entry_id(self._cursor)[0])
            self._seen.set()
            self._seen = asyncio.Event()
        return len(entries)

    async def _learn_schemas(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Fetch the field names of captures written by another version of the inspector."""
        unknown = {
            schema_of(fields[b"m"]) for _, fields in entries if b"m" in fields and not self._writer.holds(fields)
        } - self._schemas.keys()
        unknown -= self._bad_schemas
        if unknown:
            names = sorted(unknown)
            for schema_id, schema in zip(names, await self._reader_client.hmget(self._schemas_key, names), strict=True):
                if schema is None:
                    continue
                try:
                    if len(schema) > MAX_META_BYTES:
                        raise ValueError(f"larger than {MAX_META_BYTES} bytes")
                    fields = json.loads(schema)
                    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
                        raise ValueError("not a list of field names")
                except ValueError as exc:
                    # Its captures are counted unreadable one by one; the schema is not asked for again.
                    self._bad_schemas.add(schema_id)
                    log.warning("Redis store: schema %r in %s is unreadable (%s)", schema_id, self._schemas_key, exc)
                    continue
                self._schemas[schema_id] = tuple(fields)

    def _apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        """Show one stream entry; one that cannot be read is skipped, counted and logged, never fatal."""
        try:
            self._apply_entry(entry_id, fields)
        except Exception as exc:  # another process wrote it: whatever it holds, the reader goes on
            self._unreadable(f"stream entry {entry_id} could not be shown: {type(exc).__name__}: {exc}")

    def _beyond_ids(self, entry_id: str) -> bool:
        """Whether an entry's id is beyond any capture id (written by something else); counted once."""
        if int(entry_id.partition("-")[0]) <= MAX_CAPTURE_ID:
            return False
        if entry_id not in self._beyond and len(self._beyond) < 1000:
            self._beyond.add(entry_id)
            self._unreadable(f"stream entry {entry_id} is beyond any capture id: not written by an inspector")
        return True

    def _unreadable(self, reason: str) -> None:
        self.unreadable += 1
        count = self.unreadable
        if count <= 10 or not count & (count - 1):  # the first ten, then ever more rarely: a flood logs little
            log.warning("Redis store: %s (%d unreadable entries skipped so far)", reason, count)

    def _apply_entry(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        number = int(entry_id.partition("-")[0])
        if b"c" in fields:
            self.mirror.clear()
            self.mirror.skip_to(number)
            self.events.cleared(number)
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
                self.mirror.skip_to(number)
                self._unreadable(str(exc))
                return
        self.mirror.append(capture)
        self.events.added(capture)
