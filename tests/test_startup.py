"""Starting up: a bad certificate is a named error before anything listens; nothing stays bound on failure;
tokens: from a file (not in `ps`), long enough beyond loopback, warned about without TLS."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trustme

from app.config import Settings
from app.grpc_service import BindError
from app.server import Inspector
from tests.conftest import TEST_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"dashboard at (http\S+)")
TOKEN = "a-token-kept-in-a-file-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def bad_pair(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    key.write_text("not a key\n")
    return str(cert), str(key)


async def test_a_bad_certificate_is_a_named_error_and_nothing_stays_bound(bad_pair: tuple[str, str]) -> None:
    http_port, grpc_port = free_port(), free_port()
    settings = replace(
        TEST_SETTINGS,
        http_port=http_port,
        grpc_address=f"127.0.0.1:{grpc_port}",
        tls_cert=bad_pair[0],
        tls_key=bad_pair[1],
    )
    with pytest.raises(BindError, match="--tls-cert"):
        await Inspector(settings).start()
    assert bindable(http_port) and bindable(grpc_port)


async def test_a_certificate_that_does_not_match_its_key_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    one.cert_chain_pems[0].write_to_path(str(cert))
    other.private_key_pem.write_to_path(str(key))
    with pytest.raises(BindError, match="--tls-key"):
        await Inspector(replace(TEST_SETTINGS, tls_cert=str(cert), tls_key=str(key))).start()


async def test_the_cli_exits_2_before_announcing_the_dashboard(bad_pair: tuple[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--grpc-address", "127.0.0.1:0", "--http-port", "0",
        "--tls-cert", bad_pair[0], "--tls-key", bad_pair[1],
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    text = err.decode()
    assert process.returncode == 2, text
    assert "--tls-cert" in text and "dashboard at" not in text and "Traceback" not in text


async def test_grpc_failing_to_bind_leaves_no_http_socket() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = free_port()
        settings = replace(TEST_SETTINGS, http_port=http_port, grpc_address=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(BindError, match="--grpc-address"):
            await Inspector(settings).start()
    assert bindable(http_port)


def test_short_tokens_are_refused_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        replace(TEST_SETTINGS, http_host="0.0.0.0", auth_token="short-token")
    assert replace(TEST_SETTINGS, http_host="0.0.0.0", auth_token="x" * 16).auth_token == "x" * 16
    assert replace(TEST_SETTINGS, auth_token="short").auth_token == "short"  # loopback: your machine, your call


async def test_a_token_without_tls_beyond_loopback_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    inspector = Inspector(replace(TEST_SETTINGS, http_host="0.0.0.0", auth_token="x" * 24))
    await inspector.start()
    try:
        assert any("clear text" in r.message and r.levelname == "WARNING" for r in caplog.records)
    finally:
        await inspector.stop()


async def test_token_from_a_file_is_not_on_the_command_line(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--grpc-address", "127.0.0.1:0", "--http-port", "0",
        "--auth-token-file", str(token_file),
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, "TYK_INSPECTOR_CAPTURE_LOG": "off"},
    )  # fmt: skip
    assert process.stderr is not None
    try:
        log = ""
        while not (match := LISTENING.search(log)):
            line = await asyncio.wait_for(process.stderr.readline(), 15)
            assert line, "the inspector exited before listening: " + log
            log += line.decode()
        command_line = await asyncio.to_thread(Path(f"/proc/{process.pid}/cmdline").read_bytes)
        assert TOKEN.encode() not in command_line
        async with httpx.AsyncClient(base_url=match.group(1)) as http:
            assert (await http.get("/api/stats")).status_code == 401
            ok = await http.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth-token-file", "/nonexistent/token"], "--auth-token-file /nonexistent/token"),
        (["--auth-token-file", "EMPTY"], "holds no token"),
        (["--auth-token", "x" * 20, "--auth-token-file", "EMPTY"], "give one of them"),
    ],
)
def test_token_file_errors_name_the_flag(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *[str(empty) if a == "EMPTY" else a for a in args]], environ={})
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_settings_defaults_for_the_http_limits() -> None:
    settings = Settings()
    assert settings.http_header_timeout_seconds > 0 and settings.http_max_connections > 0
