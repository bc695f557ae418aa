"""The access token: logins that expire and can be ended, and failed attempts throttled per client.

Sessions are random ids kept in memory (bounded), so a logout or the end of a session's
lifetime really ends it; a restart logs everyone out. Failed attempts, by bearer token or
on the login form, count per client address; after a few the client waits, longer each time.
Memory stays bounded: the oldest entries go first.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("tyk_inspector")

COOKIE = "tyk_inspector_session"
MAX_SESSIONS = 1024
MAX_CLIENTS = 4096
FREE_ATTEMPTS = 5
"""Failed attempts a client gets before it has to wait."""
MAX_LOCKOUT_SECONDS = 300.0
FORGET_AFTER_SECONDS = 900.0
"""A client's failures are forgotten after this long without another one."""


def tokens_equal(given: bytes, token: str) -> bool:
    """Constant-time comparison as bytes: compare_digest refuses str with non-ASCII characters."""
    return hmac.compare_digest(given, token.encode("utf-8"))


@dataclass(slots=True)
class _Failures:
    count: int
    last: float
    locked_until: float


class LoginThrottle:
    """Failed attempts per client, bounded: FREE_ATTEMPTS free, then a wait that doubles up to 5 minutes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._clients: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait before its next attempt (0: it may try now)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock())

    def failed(self, client: str) -> int:
        """Count a failed attempt; the client's failures so far."""
        now = self._clock()
        entry = self._clients.pop(client, None)
        if entry is None or now - entry.last > FORGET_AFTER_SECONDS:
            entry = _Failures(0, now, 0.0)
        entry.count += 1
        entry.last = now
        if entry.count >= FREE_ATTEMPTS:
            entry.locked_until = now + min(MAX_LOCKOUT_SECONDS, 2.0 ** (entry.count - FREE_ATTEMPTS))
        self._clients[client] = entry
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)
        return entry.count

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def __len__(self) -> int:
        return len(self._clients)


class Sessions:
    """Logged-in browsers: random ids with an expiry, at most MAX_SESSIONS (the oldest go first)."""

    def __init__(self, lifetime_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime_seconds
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def create(self) -> str:
        session = secrets.token_urlsafe(32)
        self._expiry[session] = self._clock() + self.lifetime
        while len(self._expiry) > MAX_SESSIONS:
            self._expiry.popitem(last=False)
        return session

    def valid(self, session: str) -> bool:
        expiry = self._expiry.get(session)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[session]
            return False
        return True

    def end(self, session: str) -> None:
        self._expiry.pop(session, None)

    def __len__(self) -> int:
        return len(self._expiry)


class Authenticator:
    """The token, the sessions and the throttle one inspector shares between its guard and its login page."""

    def __init__(self, token: str | None, session_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.token = token
        self.sessions = Sessions(session_seconds, clock)
        self.throttle = LoginThrottle(clock)

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def check_token(self, given: bytes, client: str, how: str) -> bool:
        """Whether `given` is the token; a wrong one counts against the client and is logged."""
        assert self.token is not None
        if tokens_equal(given, self.token):
            self.throttle.succeeded(client)
            return True
        failures = self.throttle.failed(client)
        log.warning("SECURITY: wrong access token from %s (%s), %d failed in a row", client, how, failures)
        return False
