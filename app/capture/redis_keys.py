"""Where the Redis store lives: its settings, its keys, and the checks made before using them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

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
