"""Debian's redis-server on a free loopback port (or a unix socket, or TLS) in a temporary directory,
for the Redis store's tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trustme

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TLSUnsupported(RuntimeError):
    """The installed redis-server was built without TLS."""


class RedisServer:
    """One redis-server process; stop() and start() again keep its port (a Redis restart).

    `unix_socket=True`: it listens only on `redis.sock` in the directory (no TCP port);
    `tls=True`: only on a TLS port, with a certificate from a test CA (`ca_file`).
    """

    def __init__(
        self,
        directory: Path,
        password: str | None = None,
        maxmemory: str | None = None,
        unix_socket: bool = False,
        tls: bool = False,
    ) -> None:
        self.directory = directory
        self.password = password
        self.maxmemory = maxmemory
        self.port = free_port()
        self.socket = directory / "redis.sock" if unix_socket else None
        self.ca_file = directory / "ca.pem" if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.socket is not None:
            return f"unix://{self.socket}"
        if self.ca_file is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        if self.socket is not None:
            return redis.Redis(unix_socket_path=str(self.socket), password=self.password, socket_timeout=5)
        if self.ca_file is not None:
            return redis.Redis(
                host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5,
                ssl=True, ssl_ca_certs=str(self.ca_file),
            )  # fmt: skip
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def _listeners(self) -> list[str]:
        if self.socket is not None:
            return ["--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.ca_file is not None:
            cert, key = self.directory / "redis-cert.pem", self.directory / "redis-key.pem"
            if not self.ca_file.exists():
                ca = trustme.CA()
                issued = ca.issue_cert("127.0.0.1", "localhost")
                ca.cert_pem.write_to_path(str(self.ca_file))
                issued.cert_chain_pems[0].write_to_path(str(cert))
                issued.private_key_pem.write_to_path(str(key))
            return [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(self.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        return ["--port", str(self.port)]

    def start(self) -> None:
        command = [
            REDIS_SERVER,
            *self._listeners(),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.maxmemory:
            command += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        # Errors in the arguments come on stderr, before the log file is opened.
        with (self.directory / "redis.err").open("wb") as errors:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                log = "".join(
                    path.read_text(errors="replace")
                    for path in (self.directory / "redis.err", self.directory / "redis.log")
                    if path.exists()
                )
                if self.ca_file is not None and _no_tls_support(log):
                    raise TLSUnsupported(f"{REDIS_SERVER} was built without TLS support: {log.strip()[-300:]}")
                raise RuntimeError(f"redis-server exited: {log}")
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.exceptions.AuthenticationError:
                return  # listening; the test wants the refusal
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: Redis vanishes mid-conversation, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _no_tls_support(log: str) -> bool:
    # A build without TLS refuses the tls-* settings ("Bad directive") or says TLS is not supported.
    lowered = log.lower()
    return "tls" in lowered and ("not supported" in lowered or "bad directive" in lowered or "build_tls" in lowered)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed: `make test` installs it (scripts/ensure-redis.sh)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
