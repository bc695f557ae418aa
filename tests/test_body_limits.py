"""Request bodies are capped per route before they are read, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest

from app.config import Settings
from app.server import Inspector
from app.web.limits import DEFAULT_BODY_BYTES, LOGIN_BODY_BYTES
from tests.conftest import with_settings

TOKEN = "a-long-enough-test-token"


async def answer(sock: socket.socket, within: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `within` seconds pass)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    data = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await loop.sock_recv(sock, 65536):
                data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def status_and_detail(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head, "no answer from the server"
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["detail"] if body.startswith(b"{") else ""


def post_head(path: str, length: int | None, connection: str = "close") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
    ).encode()


@pytest.fixture
def settings() -> Settings:
    return with_settings(auth_token=TOKEN, max_import_bytes=100_000)()


async def test_a_huge_login_body_is_refused_before_it_is_sent(inspector: Inspector) -> None:
    with socket.create_connection(("127.0.0.1", inspector.http_port)) as sock:
        # 400 MB announced, a few bytes sent: the answer cannot wait for the rest.
        sock.sendall(post_head("/login", 400_000_000) + b"token=")
        status, detail = status_and_detail(await answer(sock))
    assert status == 413
    assert f"{LOGIN_BODY_BYTES}-byte limit" in detail and "login" in detail


async def test_a_chunked_login_body_is_cut_off_at_the_limit(inspector: Inspector) -> None:
    loop = asyncio.get_running_loop()
    with socket.create_connection(("127.0.0.1", inspector.http_port)) as sock:
        sock.setblocking(False)
        await loop.sock_sendall(sock, post_head("/login", None, connection="keep-alive"))
        chunk = b"a" * 65536
        sent = 0
        with contextlib.suppress(OSError):  # the server hangs up: it neither reads nor parses the rest
            while sent < 400_000_000:
                await loop.sock_sendall(sock, b"%x\r\n%b\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        status, detail = status_and_detail(await answer(sock))
    assert status == 413 and f"{LOGIN_BODY_BYTES}-byte limit" in detail
    assert sent < 50_000_000, f"the server took {sent} bytes after refusing the body"


async def test_the_login_still_works_and_is_still_throttled(inspector: Inspector) -> None:
    with socket.create_connection(("127.0.0.1", inspector.http_port)) as sock:
        body = f"token={TOKEN}".encode()
        sock.sendall(post_head("/login", len(body)) + body)
        status, _ = status_and_detail(await answer(sock))
    assert status == 303


async def test_import_has_its_own_limit_named_in_the_413(inspector: Inspector) -> None:
    with socket.create_connection(("127.0.0.1", inspector.http_port)) as sock:
        sock.sendall(
            b"POST /api/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Length: 100001\r\n\r\n{"
        )  # fmt: skip
        status, detail = status_and_detail(await answer(sock))
    assert status == 413 and "import" in detail and "100000-byte limit" in detail


async def test_other_routes_take_small_bodies_only(inspector: Inspector) -> None:
    with socket.create_connection(("127.0.0.1", inspector.http_port)) as sock:
        sock.sendall(
            b"DELETE /api/captures HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % (DEFAULT_BODY_BYTES + 1)
        )  # fmt: skip
        status, detail = status_and_detail(await answer(sock))
    assert status == 413 and f"{DEFAULT_BODY_BYTES}-byte limit" in detail
    assert inspector.store.stats().count == 0
