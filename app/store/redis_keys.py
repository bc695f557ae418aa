"""Where the Redis store lives: its settings, its keys, the checks made before using them, and the
one retry policy its reader and writer follow while Redis is away."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger("tyk_inspector.store")

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0

STORE_SETTING = "--store / TYK_INSPECTOR_STORE"
PREFIX_SETTING = "--store-prefix (TYK_INSPECTOR_STORE_PREFIX)"

# Every key the store uses, and the type it must have; the scripts take them in this order.
KEY_TYPES = {
    "captures": "stream",
    "last_id": "string",
    "bytes": "string",
    "sizes": "list",
    "stats": "hash",
    "schemas": "hash",
}


class StoreError(RuntimeError):
    """The store cannot be used as configured; the message names the setting to change."""


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    url: str
    prefix: str
    max_items: int
    max_bytes: int
    queue_items: int
    queue_bytes: int

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def keys(self) -> list[str]:
        return [self.key(name) for name in KEY_TYPES]

    @property
    def public_url(self) -> str:
        """The URL without its password, for log lines."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


def connect(url: str, timeout: float) -> aioredis.Redis:
    # No retries inside the client: the writer and reader loops retry with backoff themselves,
    # and an import or Clear should fail at once when Redis is away.
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=2.0, retry=Retry(NoBackoff(), 0), decode_responses=False
    )


async def check_keys(client: aioredis.Redis, config: RedisStoreConfig) -> None:
    """Raise StoreError when Redis refuses us or a key under the prefix is someone else's.

    Other Redis errors (not answering) are left to the caller.
    """
    try:
        await client.ping()
        for name, expected in KEY_TYPES.items():
            key = config.key(name)
            found = _text(await client.type(key))
            if found not in ("none", expected):
                raise StoreError(
                    f"Redis key {key!r} is a {found}, not a {expected}: it is not the inspector's, so it is left "
                    f"alone; choose another {PREFIX_SETTING} or remove it"
                )
    except AuthenticationError as exc:
        raise StoreError(f"Redis refused the credentials in {STORE_SETTING}: {exc}") from None
    except RedisConnectionError as exc:
        # Not a Redis that is away: one whose certificate we do not trust stays so until the setting changes.
        reason = exc.__cause__ or exc.__context__
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise StoreError(
                f"the Redis server's TLS certificate is not trusted ({reason.verify_message}): give the CA that "
                f"signed it in {STORE_SETTING}, e.g. rediss://HOST:PORT/0?ssl_ca_certs=/path/ca.pem"
            ) from None
        raise
    except ResponseError as exc:
        if str(exc).startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            raise StoreError(f"Redis refused access with {STORE_SETTING}: {exc}") from None
        raise StoreError(f"Redis at {STORE_SETTING}: {exc}") from None


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Backoff:
    """The one retry loop of the Redis store's tasks: after a failure wait, twice as long each time
    up to BACKOFF_MAX; say once when failing starts and once when it works again."""

    def __init__(self, doing: str, meanwhile: str = "") -> None:
        self.doing = doing
        """What is retried, for the log: "reading", "writing"."""
        self.meanwhile = meanwhile
        self._pause = BACKOFF_FIRST
        self._failing_since: float | None = None

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    async def failed(self, exc: BaseException) -> None:
        """Log the first failure of a spell, then wait before the next try."""
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("Redis store: %s failed (%s); retrying with backoff%s", self.doing, exc, self.meanwhile)
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, BACKOFF_MAX)

    def succeeded(self) -> None:
        if self._failing_since is not None:
            log.info("Redis store: %s again after %.1f s", self.doing, time.monotonic() - self._failing_since)
            self._failing_since = None
        self._pause = BACKOFF_FIRST
