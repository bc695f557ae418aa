"""With --store redis://: one intercept query for every replica.

The query set through any replica's page (or API) is written to `<prefix>:intercept`; every
replica reads that key once a second (a supervised task) and applies it when it changed, so the
gateway's calls are held whichever replica they reach. The held calls themselves stay with the
replica that holds them (docs/intercept.md says what that means for the page).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from redis.exceptions import RedisError

from app.proxy.intercept import Interceptor
from app.store.redis_keys import connect

log = logging.getLogger("tyk_inspector.intercept")

POLL_SECONDS = 1.0
MAX_VALUE_BYTES = 64 * 1024
"""A shared query larger than this is not one a person typed: it is ignored (and said)."""


class SharedQuery:
    """The intercept query kept in Redis, applied to this replica's interceptor when it changes."""

    def __init__(self, url: str, key: str, interceptor: Interceptor, poll_seconds: float = POLL_SECONDS) -> None:
        self.key = key
        self.interceptor = interceptor
        self.poll_seconds = poll_seconds
        self._client = connect(url, timeout=5.0)
        self._applied: bytes | None = None
        self._failing = False
        self._stop = asyncio.Event()

    async def publish(self, query: str, points: list[str]) -> None:
        """Share a query this replica accepted. Raises RedisError or OSError when Redis is away."""
        value = json.dumps({"q": query, "points": points}).encode()
        await self._client.set(self.key, value)
        self._applied = value  # already applied here

    async def run(self) -> None:
        """Read the shared query every `poll_seconds` until stopped (a task of the supervisor)."""
        self._stop.clear()
        while not self._stop.is_set():
            try:
                value = await self._client.get(self.key)
                if self._failing:
                    log.info("shared intercept query: Redis answers again")
                self._failing = False
            except (RedisError, OSError) as exc:
                if not self._failing:
                    log.warning("shared intercept query: Redis is not answering (%s); this replica keeps its own", exc)
                self._failing = True
                value = None
            if isinstance(value, str):
                value = value.encode()
            if value is not None and value != self._applied:
                self._apply(value)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_seconds)

    def _apply(self, value: bytes) -> None:
        self._applied = value
        try:
            if len(value) > MAX_VALUE_BYTES:
                raise ValueError(f"{len(value)} bytes, over {MAX_VALUE_BYTES}")
            shared = json.loads(value)
            self.interceptor.configure(str(shared["q"]), [str(p) for p in shared["points"]])
        except (ValueError, KeyError, TypeError) as exc:  # QueryError too: a replica of another version wrote it
            log.warning("shared intercept query in %s not applied: %s", self.key, exc)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self._client.aclose()
