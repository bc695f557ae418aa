"""SIGTERM with calls queued on a slow plugin server: they finish within the grace period and are
captured; past the grace period they are cancelled, and captured as cancelled. Ctrl+C stops the
inspector and its worker processes cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from protogen import coprocess_object_pb2 as pb
from tests.conftest import Client, load_object, wait_listening, wait_until
from tests.plugins import Handler, plugin_server

ROOT = Path(__file__).resolve().parent.parent
CALLS = 30


def one_at_a_time(seconds: float, release: asyncio.Event | None = None) -> Handler:
    """A plugin that answers one call at a time, each taking `seconds` (after `release`, if given)."""
    lock = asyncio.Lock()

    async def handler(obj: pb.Object) -> pb.Object:
        async with lock:
            if release is not None:
                await release.wait()
            await asyncio.sleep(seconds)  # the plugin's own work, not a synchronisation
            obj.request.set_headers["X-Plugin"] = "slow"
            return obj

    return handler


async def start_inspector(
    upstream: str | None, grace: float, capture_log: str = "line"
) -> tuple[asyncio.subprocess.Process, int, list[str], str]:
    proxy = ["--upstream", upstream] if upstream else []
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"),
        "--grpc-address", "127.0.0.1:0", "--http-port", "0", "--shutdown-grace", str(grace),
        *proxy, "--capture-log", capture_log,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=dict(os.environ),
        start_new_session=True,  # its own process group, as a terminal gives it
    )  # fmt: skip
    log: list[str] = []
    port, url = await wait_listening(process, log)
    return process, port, log, url


async def call_all(client: Client, outcomes: list[str]) -> None:
    async def one() -> None:
        try:
            reply = await client.dispatch(load_object("pre.json"), timeout=60)
            outcomes.append("ok" if reply.request.set_headers["X-Plugin"] == "slow" else "wrong reply")
        except grpc.aio.AioRpcError as exc:
            outcomes.append(exc.code().name)

    await asyncio.gather(*(one() for _ in range(CALLS)))


async def stop(process: asyncio.subprocess.Process, log: list[str], *, ctrl_c: bool = False) -> tuple[int, str]:
    """Stop it with SIGTERM, or with SIGINT to its whole process group (Ctrl+C in a terminal)."""
    assert process.stderr is not None
    if ctrl_c:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(process.stderr.read(), 60)
    code = await asyncio.wait_for(process.wait(), 15)
    return code, "".join(log) + rest.decode()


async def test_sigterm_lets_queued_calls_finish_within_the_grace_period_and_captures_them() -> None:
    release = asyncio.Event()
    async with plugin_server(one_at_a_time(0.03, release)) as plugin:
        process, port, log, _ = await start_inspector(plugin.target, grace=30)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                outcomes: list[str] = []
                callers = asyncio.ensure_future(call_all(Client(channel), outcomes))
                # Every call has reached the plugin server, which answers them one by one.
                await wait_until(lambda: len(plugin.received) == CALLS, within=30, what="30 calls queued")
                process.send_signal(signal.SIGTERM)
                release.set()
                code, text = await stop(process, log)
                await asyncio.wait_for(callers, 30)
        finally:
            if process.returncode is None:
                process.kill()
    assert code == 0, text
    assert outcomes == ["ok"] * CALLS, (outcomes, text)
    assert "ERROR" not in text and "Traceback" not in text, text
    assert f"Tyk Inspector stopped after {CALLS} captures" in text.rstrip().splitlines()[-1], text
    assert len(re.findall(r"Pre MyPreHook .* #\d+", text)) == CALLS, text


async def test_calls_still_running_when_the_grace_period_ends_are_cancelled_and_captured() -> None:
    release = asyncio.Event()  # never set: the plugin server never answers
    async with plugin_server(one_at_a_time(0, release)) as plugin:
        process, port, log, _ = await start_inspector(plugin.target, grace=0.5)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                outcomes: list[str] = []
                callers = asyncio.ensure_future(call_all(Client(channel), outcomes))
                await wait_until(lambda: len(plugin.received) == CALLS, within=30, what="30 calls queued")
                code, text = await stop(process, log)
                await asyncio.wait_for(callers, 30)
        finally:
            release.set()
            if process.returncode is None:
                process.kill()
    assert code == 0, text
    # What the gateway sees when the inspector gives up on a call at the end of the grace period.
    assert outcomes == ["UNAVAILABLE"] * CALLS, (outcomes, text)
    assert f"Tyk Inspector stopped after {CALLS} captures" in text.rstrip().splitlines()[-1], text
    # The console log (like every live view) hears of each call cut off, before it closes.
    assert len(re.findall(r"error='cancelled before the reply was sent: the inspector stopped", text)) == CALLS, text


def children(pid: int) -> list[str]:
    """The ids of a process's child processes (Linux)."""
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


async def test_ctrl_c_after_a_large_export_stops_cleanly_worker_processes_included() -> None:
    process, port, log, http_url = await start_inspector(None, grace=5, capture_log="off")
    try:
        big = load_object("pre.json")
        big.request.raw_body = os.urandom(3_500_000)  # under the client's 4 MiB limit for the echo
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = Client(channel)
            for _ in range(4):  # past the bytes a download converts in threads: the rest goes to workers
                await client.dispatch(big)
        async with httpx.AsyncClient(base_url=http_url, timeout=60) as http:
            exported = (await http.get("/api/export")).json()["captures"]
        workers = children(process.pid)
        code, text = await stop(process, log, ctrl_c=True)
    finally:
        if process.returncode is None:
            process.kill()
    assert workers, "the export did not start the worker processes"
    assert len(exported) == 4
    assert code == 0, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "Tyk Inspector stopped after 4 captures" in text.rstrip().splitlines()[-1], text


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, children of any of its threads included (Linux)."""
    found: set[int] = set()
    stack = [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    if int(child) not in found:
                        found.add(int(child))
                        stack.append(int(child))
    return found


def running(pid: int) -> bool:
    """Whether `pid` is alive (an exited process nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


async def test_worker_processes_and_the_resource_tracker_exit_after_the_inspector_is_killed() -> None:
    process, port, _log, http_url = await start_inspector(None, grace=5, capture_log="off")
    left: set[int] = set()
    try:
        big = load_object("pre.json")
        big.request.raw_body = os.urandom(3_500_000)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(4):  # past the bytes a download converts in threads: the rest goes to workers
                await Client(channel).dispatch(big)
        async with httpx.AsyncClient(base_url=http_url, timeout=60) as http:
            assert len((await http.get("/api/export")).json()["captures"]) == 4
        left = descendants(process.pid)
        assert len(left) >= 2, "the export did not start the worker processes and their resource tracker"
        process.kill()  # SIGKILL: nothing of the inspector runs any more
        # Not process.wait(): it also waits for the stderr pipe, which the workers hold open.
        await wait_until(lambda: not running(process.pid), within=15, what="the inspector to die")
        await wait_until(lambda: not any(running(pid) for pid in left), within=15, what="the workers to exit")
    finally:
        if process.returncode is None:
            process.kill()
        for pid in left:  # whatever the outcome, nothing of this test outlives it
            if running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # grpc honours http_proxy for loopback targets too; these tests talk to loopback only.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy"):
        monkeypatch.delenv(name, raising=False)
