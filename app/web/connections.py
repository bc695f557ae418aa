"""HTTP connections that cannot be held hostage: a deadline for request headers and a cap on connections.

uvicorn closes a keep-alive connection that stays idle after a response, but it waits
forever for the first request on a new connection and for headers sent a byte at a time
(slowloris). This protocol, uvicorn's h11 one plus a timer, closes a connection whose
request headers are not complete within `header_timeout` seconds of its first byte (or of
connecting). At the connection cap, a new connection pushes out the oldest one still
waiting for its headers, so a flood of idle sockets never locks the dashboard out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("tyk_inspector")


@dataclass
class ConnectionGuard:
    """Shared by every connection of one HTTP listener."""

    header_timeout: float
    max_connections: int
    open: int = 0
    refused: int = 0
    timed_out: int = 0
    _waiting: OrderedDict[int, GuardedH11Protocol] = field(default_factory=OrderedDict)

    def protocol_class(self) -> type[GuardedH11Protocol]:
        """uvicorn's `http=` setting: the guarded protocol bound to this guard."""
        return type("InspectorH11Protocol", (GuardedH11Protocol,), {"guard": self})

    def admit(self, protocol: GuardedH11Protocol) -> bool:
        self.open += 1
        if self.open <= self.max_connections:
            return True
        if self._waiting:
            _, oldest = self._waiting.popitem(last=False)
            oldest.drop()  # waiting for headers: the least useful connection there is
            return True
        self.refused += 1
        return False

    def waiting(self, protocol: GuardedH11Protocol, waiting: bool) -> None:
        if waiting:
            self._waiting[id(protocol)] = protocol
        else:
            self._waiting.pop(id(protocol), None)

    def closed(self, protocol: GuardedH11Protocol) -> None:
        self.open -= 1
        self._waiting.pop(id(protocol), None)


class GuardedH11Protocol(H11Protocol):
    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._admitted = True
        if not self.guard.admit(self):
            log.warning("HTTP connection refused: %d connections open (the cap)", self.guard.max_connections)
            transport.abort()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._admitted:
            self._admitted = False
            self.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # Part of a request line or header block: the deadline runs from its first byte.
            if self._header_timer is None:
                self._await_headers()
        else:
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timeout applies; the header deadline starts
        # again with the next request's first byte. Idle, the connection may make room for another.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.guard.waiting(self, True)

    def _await_headers(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.guard.header_timeout, self._headers_too_slow)
        self.guard.waiting(self, True)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.guard.waiting(self, False)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE:
            self.guard.timed_out += 1
            self.drop()

    def drop(self) -> None:
        """Close a connection that has not sent a whole request: nothing is waiting for an answer."""
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self.transport.abort()
