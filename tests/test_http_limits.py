"""The HTTP side under slowloris and connection floods, with real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import pytest

from app.config import Settings
from app.server import Inspector
from tests.conftest import wait_until, with_settings


async def closed_by_server(sock: socket.socket, within: float) -> float:
    """Seconds until the server closes `sock` (recv gives b'' or a reset); fails after `within`."""
    began = time.monotonic()
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=within)
        except ConnectionResetError:
            return time.monotonic() - began
        except TimeoutError:
            raise AssertionError(f"the server held the connection for {within}s") from None
        if not data:
            return time.monotonic() - began


async def response_head(sock: socket.socket) -> bytes:
    """The first bytes the server answers with (the inspector runs on this loop: never block it)."""
    sock.setblocking(False)
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), timeout=10)


def connect(inspector: Inspector) -> socket.socket:
    return socket.create_connection(("127.0.0.1", inspector.http_port))


class TestTimeouts:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(http_header_timeout_seconds=1.0, http_keep_alive_seconds=1)()

    async def test_half_sent_headers_are_cut_off(self, inspector: Inspector) -> None:
        sock = connect(inspector)
        try:
            sock.sendall(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            assert await closed_by_server(sock, within=15) < 15
        finally:
            sock.close()
        assert inspector.connections is not None and inspector.connections.timed_out >= 1

    async def test_headers_dripped_a_byte_at_a_time_are_cut_off(self, inspector: Inspector) -> None:
        sock = connect(inspector)
        began = time.monotonic()
        try:
            # Each byte comes well within any idle timeout; the whole header block never does.
            for byte in b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break  # closed by the server
                await asyncio.sleep(0.05)  # the attack's pace, not a synchronisation
                if time.monotonic() - began > 15:
                    raise AssertionError("still open after 15 s of dripped headers")
        finally:
            sock.close()
        assert time.monotonic() - began < 15

    async def test_a_connection_that_never_speaks_is_closed(self, inspector: Inspector) -> None:
        sock = connect(inspector)
        try:
            assert await closed_by_server(sock, within=15) < 15
        finally:
            sock.close()

    async def test_an_idle_keep_alive_connection_is_closed(self, inspector: Inspector) -> None:
        sock = connect(inspector)
        try:
            sock.sendall(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await response_head(sock)).startswith(b"HTTP/1.1 200")
            assert await closed_by_server(sock, within=15) < 15
        finally:
            sock.close()

    async def test_a_slow_but_whole_request_is_served(self, inspector: Inspector) -> None:
        sock = connect(inspector)
        try:
            sock.sendall(b"GET /api/stats HTTP/1.1\r\n")
            await asyncio.sleep(0.3)  # slower than one packet, well within the header deadline
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
            assert (await response_head(sock)).startswith(b"HTTP/1.1 200")
        finally:
            sock.close()


class TestConnectionFlood:
    @pytest.fixture
    def settings(self) -> Settings:
        # A header deadline far beyond the test: only the cap can keep the dashboard reachable.
        return with_settings(http_header_timeout_seconds=300, http_max_connections=200)()

    async def test_1100_idle_connections_do_not_lock_the_dashboard_out(self, inspector: Inspector) -> None:
        flood: list[socket.socket] = []
        try:
            for _ in range(1100):
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):  # connecting in the background
                    sock.connect(("127.0.0.1", inspector.http_port))
                flood.append(sock)
            guard = inspector.connections
            assert guard is not None
            await wait_until(lambda: guard.open <= 200 and guard.open > 100, within=30, what="the flood to arrive")
            async with httpx.AsyncClient(base_url=inspector.http_url, timeout=10) as http:
                for _ in range(5):
                    assert (await http.get("/api/stats")).status_code == 200
                async with http.stream("GET", "/api/stream") as stream:
                    assert stream.status_code == 200
            assert guard.open <= 200
        finally:
            for sock in flood:
                sock.close()
