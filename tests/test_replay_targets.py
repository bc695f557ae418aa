"""Replay connects only where it is allowed: configured upstreams, rule targets, loopback, --replay-allow."""

from __future__ import annotations

import socket
from dataclasses import replace

import grpc
import httpx
import pytest

from app.capture.record import Capture
from app.proxy.replay import ReplayRefused
from app.proxy.rules import parse_rules
from app.proxy.targets import ReplayTargets, TargetRefused
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import TEST_SETTINGS, Client, load_object
from tests.plugins import plugin_server


async def echo(obj: pb.Object) -> pb.Object:
    return obj


def test_only_configured_loopback_or_allowed_targets() -> None:
    rules = parse_rules({"upstreams": {"auth": "auth.internal:7000"}, "rules": [{"upstream": "auth"}]})
    targets = ReplayTargets(upstream="plugins.internal:50051", allowed=("extra.internal:1",))
    for ok in ("127.0.0.1:9", "localhost:50051", "[::1]:1", "tcp://127.0.0.2:5", "Plugins.Internal:50051",
               "auth.internal:7000", "extra.internal:1"):  # fmt: skip
        assert targets.check(ok, rules) == ok
    for refused in ("10.0.0.1:22", "169.254.169.254:80", "unix:/var/run/docker.sock", "dns:///10.0.0.1:22",
                    "ipv4:10.0.0.1:22", "example.com", "auth.internal:7001", "unix-abstract:x",
                    "127.0.0.1:0"):  # fmt: skip
        with pytest.raises(TargetRefused, match="--replay-a"):
            targets.check(refused, rules)
    assert ReplayTargets(anywhere=True).check("10.0.0.1:22", None) == "10.0.0.1:22"


async def test_a_refused_target_is_403_with_a_message_and_nothing_is_dialled(
    inspector: Inspector, client: Client, http: httpx.AsyncClient
) -> None:
    await client.dispatch(load_object("pre.json"))
    # A port that accepts connections: had replay dialled it, the listener would see it.
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        listener.setblocking(False)
        address = _non_loopback_address()
        for target in (f"{address}:{listener.getsockname()[1]}", "unix:/tmp/x.sock", "dns:///10.0.0.1:22"):
            refused = await http.post("/api/captures/1/replay", json={"to": target})
            assert refused.status_code == 403, target
            assert "refused" in refused.json()["detail"] and "--replay-a" in refused.json()["detail"]
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert inspector.store.last_id == 1, "a refused replay records nothing"


async def test_loopback_plugin_servers_are_reachable(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    async with plugin_server(echo) as plugin:
        done = await http.post("/api/captures/1/replay", json={"to": plugin.target})
        assert done.status_code == 201 and len(plugin.received) == 1


def test_a_captures_own_upstream_is_checked_too(inspector: Inspector) -> None:
    # An imported capture may claim any upstream: it is as untrusted as `to`.
    claimed = Capture(kind="dispatch", request=load_object("pre.json").SerializeToString(), reply=None)
    claimed.upstream = "10.0.0.1:22"
    with pytest.raises(ReplayRefused, match=r"10\.0\.0\.1:22"):
        inspector.replayer.target_for(claimed, None)
    claimed.upstream = "127.0.0.1:50051"
    assert inspector.replayer.target_for(claimed, None) == "127.0.0.1:50051"


async def test_replay_allow_widens_the_list() -> None:
    address = _non_loopback_address()
    async with plugin_server(echo) as plugin:
        port = plugin.target.rsplit(":", 1)[1]
        target = f"{address}:{port}"
        inspector = Inspector(replace(TEST_SETTINGS, replay_allow=(target,)))
        await inspector.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
                await Client(channel).dispatch(load_object("pre.json"))
            async with httpx.AsyncClient(base_url=inspector.http_url) as http:
                done = await http.post("/api/captures/1/replay", json={"to": target})
                # The plugin listens on loopback only, so the call itself may fail: what matters is it was allowed.
                assert done.status_code == 201, done.text
        finally:
            await inspector.stop()


def _non_loopback_address() -> str:
    """An address of this machine that is not loopback (the test's stand-in for another host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
            address: str = probe.getsockname()[0]
        except OSError:
            address = "192.0.2.1"
    return address if not address.startswith("127.") else "192.0.2.1"
