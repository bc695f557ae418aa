"""Calls to real plugin servers: one long-lived channel per upstream, raw bytes both ways."""

from __future__ import annotations

import grpc

from app.tyk.protocol import SERVICE_NAME

SERVICE = f"/{SERVICE_NAME}/"


class UpstreamPool:
    """Reuses one gRPC channel per upstream address (HTTP/2 multiplexes the calls)."""

    def __init__(self, max_message_bytes: int) -> None:
        self._options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = grpc.aio.insecure_channel(target.removeprefix("tcp://"), options=self._options)
            self._channels[target] = channel
        return channel

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
        stub = self._channel(target).unary_unary(SERVICE + method)
        reply: bytes = await stub(request, timeout=deadline_seconds, metadata=metadata or None)
        return reply

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
