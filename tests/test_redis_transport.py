"""The Redis store reached over a unix socket and over TLS (rediss://), with Debian's redis-server,
and the --store URL options that say how to trust a TLS server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from app.config import Settings
from app.server import Inspector
from app.store.redis_keys import StoreError
from tests.conftest import TEST_SETTINGS, wait_until
from tests.redis_server import REDIS_SERVER, RedisServer, TLSUnsupported
from tests.test_redis_store import paths, replica, run_cli, tagged


def started(server: RedisServer) -> RedisServer:
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed: `make test` installs it (scripts/ensure-redis.sh)")
    try:
        server.start()
    except TLSUnsupported as exc:
        pytest.skip(f"rediss:// needs a redis-server built with TLS: {exc}")
    return server


async def stores_and_lists_captures(server: RedisServer) -> None:
    """Captures sent to one replica are in Redis, and a replica started afterwards lists them."""
    settings = replace(TEST_SETTINGS, store=server.url)
    async with replica(settings) as a:
        for name in ("one", "two"):
            await a.client.dispatch(tagged(name))
        await wait_until(lambda: a.inspector.store.last_id == 2, within=10, what="two captures read back")
        assert await paths(a) == ["/one", "/two"]
    with server.client() as r:
        assert r.xlen("tyk-inspector:captures") == 2
    async with replica(settings) as b:  # nothing in memory: loaded from Redis
        assert await paths(b) == ["/one", "/two"]
        assert [c["id"] for c in (await b.http.get("/api/captures", params={"after": 0})).json()["items"]] == [1, 2]


async def test_a_store_on_a_unix_socket_keeps_and_lists_captures(tmp_path: Path) -> None:
    server = started(RedisServer(tmp_path, unix_socket=True))  # listens on the socket only, no TCP port
    try:
        assert server.url == f"unix://{tmp_path / 'redis.sock'}"
        await stores_and_lists_captures(server)
    finally:
        server.kill()


async def test_a_store_over_tls_trusts_the_ca_given_in_the_url(tmp_path: Path) -> None:
    server = started(RedisServer(tmp_path, tls=True))  # a TLS port only, its certificate from a test CA
    try:
        assert server.url.startswith("rediss://") and f"?ssl_ca_certs={server.ca_file}" in server.url
        await stores_and_lists_captures(server)
    finally:
        server.kill()


async def test_a_tls_store_whose_certificate_is_not_trusted_is_refused_naming_the_setting(tmp_path: Path) -> None:
    server = started(RedisServer(tmp_path, tls=True))
    try:
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        for url in (
            f"rediss://127.0.0.1:{server.port}/0",
            f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={other_ca}",
        ):
            inspector = Inspector(replace(TEST_SETTINGS, store=url))
            try:
                with pytest.raises(StoreError, match=r"certificate is not trusted.*--store.*ssl_ca_certs=") as refused:
                    await inspector.start()
            finally:
                await inspector.stop()
            assert "certificate verify failed" not in str(refused.value)  # said in words, not as an SSL dump
        result = run_cli("--store", f"rediss://127.0.0.1:{server.port}/0")
        assert result.returncode == 2, result.stderr
        assert "not trusted" in result.stderr and "ssl_ca_certs" in result.stderr
    finally:
        server.kill()


def test_store_url_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    good = [
        f"rediss://127.0.0.1:6380/0?ssl_ca_certs={ca}",
        f"rediss://127.0.0.1:6380/0?ssl_ca_path={tmp_path}&ssl_cert_reqs=required&ssl_check_hostname=false",
        f"unix://{tmp_path}/redis.sock?db=2",
    ]
    for url in good:
        assert Settings(store=url).redis_url == url
    bad = {
        f"rediss://127.0.0.1:6380/0?ssl_ca_cert={ca}": "'ssl_ca_cert' is not one the store knows",
        f"redis://127.0.0.1:6379/0?ssl_ca_certs={ca}": "'ssl_ca_certs' is not one the store knows",
        f"rediss://127.0.0.1:6380/0?ssl_ca_certs={tmp_path}/missing.pem": "ssl_ca_certs=.*missing.pem is not a file",
        f"rediss://127.0.0.1:6380/0?ssl_ca_path={ca}": "is not a directory",
        "rediss://127.0.0.1:6380/0?ssl_cert_reqs=maybe": "ssl_cert_reqs must be none, optional or required",
        f"unix://{tmp_path}/redis.sock?db=two": "db must be a number",
    }
    for url, message in bad.items():
        with pytest.raises(ValueError, match=rf"--store / TYK_INSPECTOR_STORE: .*{message}"):
            Settings(store=url)
    result = run_cli("--store", f"rediss://127.0.0.1:6380/0?ssl_ca_cert={ca}")
    assert result.returncode == 2 and "--store" in result.stderr and "ssl_ca_cert" in result.stderr
