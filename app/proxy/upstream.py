"""Calls to real plugin servers: one long-lived channel per upstream, raw bytes both ways.

The channels are bounded: at most `max_channels` at once (replay can name any number of
targets), and a channel nobody used for `idle_seconds` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import grpc

from app.tyk.protocol import SERVICE_NAME

SERVICE = f"/{SERVICE_NAME}/"
DEFAULT_MAX_CHANNELS = 32
DEFAULT_IDLE_SECONDS = 300.0


@dataclass(slots=True)
class _Entry:
    channel: grpc.aio.Channel
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)


class UpstreamPool:
    """Reuses one gRPC channel per upstream address (HTTP/2 multiplexes the calls)."""

    def __init__(
        self,
        max_message_bytes: int,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        self._options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self.max_channels = max_channels
        self.idle_seconds = idle_seconds
        self._entries: dict[str, _Entry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def open_channels(self) -> int:
        return len(self._entries)

    def _acquire(self, target: str) -> _Entry:
        entry = self._entries.pop(target, None)
        if entry is None:
            channel = grpc.aio.insecure_channel(target.removeprefix("tcp://"), options=self._options)
            entry = _Entry(channel)
        self._entries[target] = entry  # dicts keep insertion order: the most recently used last
        self._evict(keep=target)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="upstream-sweeper")
        return entry

    def _evict(self, keep: str) -> None:
        """Close least recently used idle channels beyond the bound (busy ones are never cut off)."""
        for target in list(self._entries):
            if len(self._entries) <= self.max_channels:
                return
            if target != keep and self._entries[target].active == 0:
                self._close(target)

    def _close(self, target: str) -> None:
        entry = self._entries.pop(target)
        task = asyncio.get_running_loop().create_task(entry.channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            now = time.monotonic()
            for target, entry in list(self._entries.items()):
                if entry.active == 0 and now - entry.last_used >= self.idle_seconds:
                    self._close(target)

    async def call(
        self,
        target: str,
        method: str,
        request: bytes,
        deadline_seconds: float | None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """Send serialized `request` to `method` (Dispatch or DispatchEvent); raises grpc.aio.AioRpcError.

        `deadline_seconds` None: no deadline, as the gateway sets none on its plugin calls.
        """
        entry = self._acquire(target)
        entry.active += 1
        try:
            stub = entry.channel.unary_unary(SERVICE + method)
            reply: bytes = await stub(request, timeout=deadline_seconds, metadata=metadata or None)
            return reply
        finally:
            entry.active -= 1
            entry.last_used = time.monotonic()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for target in list(self._entries):
            self._close(target)
        await asyncio.gather(*self._closing, return_exceptions=True)
