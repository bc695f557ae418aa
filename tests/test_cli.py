"""The command line: flags over env over defaults, `send` against a live server, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import grpc
import httpx
import pytest

from app.cli import build_parser, byte_size, main, settings_from_args
from app.server import Inspector
from app.tyk.version import LATEST
from protogen import coprocess_object_pb2 as pb
from tests.conftest import EXAMPLES, Client, load_object, wait_listening, wait_until

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str], env: dict[str, str] | None = None) -> object:
    parser, env_defaults = build_parser(env or {})
    args = parser.parse_args(["serve", *argv])
    assert not env_defaults.errors
    return settings_from_args(args)


def test_defaults() -> None:
    settings = parse([])
    assert settings.grpc_address == "[::]:50051"  # type: ignore[attr-defined]
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)  # type: ignore[attr-defined]


def test_env_overrides_defaults_and_flags_override_env() -> None:
    env = {"TYK_INSPECTOR_HTTP_PORT": "9000", "TYK_INSPECTOR_BUFFER_BYTES": "64MiB", "TYK_INSPECTOR_LOG_FORMAT": "json"}
    from_env = parse([], env)
    assert (from_env.http_port, from_env.buffer_bytes, from_env.log_format) == (9000, 64 * 1024**2, "json")  # type: ignore[attr-defined]
    from_flags = parse(["--http-port", "9100", "--buffer-bytes", "1MB"], env)
    assert (from_flags.http_port, from_flags.buffer_bytes) == (9100, 1_000_000)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "size"), [("1048576", 1048576), ("64MiB", 64 << 20), ("100MB", 10**8), ("2k", 2000)])
def test_byte_sizes(text: str, size: int) -> None:
    assert byte_size(text) == size


def test_bad_env_value_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"], environ={"TYK_INSPECTOR_HTTP_PORT": "eighty"})
    assert exit_info.value.code == 2
    assert "TYK_INSPECTOR_HTTP_PORT" in capsys.readouterr().err


def test_tyk_version_from_flag_or_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse([]).tyk_version == LATEST  # type: ignore[attr-defined]
    assert parse([], {"TYK_INSPECTOR_TYK_VERSION": "v5.3.11"}).tyk_version == "5.3.11"  # type: ignore[attr-defined]
    assert parse(["--tyk-version", "5.8"], {"TYK_INSPECTOR_TYK_VERSION": "5.3.0"}).tyk_version == "5.8.0"  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        main(["--tyk-version", "five"], environ={})
    assert "--tyk-version" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([], environ={"TYK_INSPECTOR_TYK_VERSION": "five"})
    assert "TYK_INSPECTOR_TYK_VERSION" in capsys.readouterr().err


def test_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--buffer-items", "0"], environ={})
    assert "--buffer-items" in capsys.readouterr().err


async def run_cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_dispatch_and_event_to_a_running_server(inspector: Inspector) -> None:
    target = f"127.0.0.1:{inspector.grpc_port}"
    code, out, _ = await run_cli("send", str(EXAMPLES / "pre.json"), "--to", target)
    assert code == 0
    assert json.loads(out)["hookName"] == "MyPreHook"
    code, out, _ = await run_cli("send", str(EXAMPLES / "event-auth-failure.json"), "--to", f"tcp://{target}")
    assert code == 0 and json.loads(out) == {}
    kinds = [c.kind for c in inspector.store.oldest_first()]
    assert kinds == ["dispatch", "event"]


async def test_send_an_export_document_replays_every_capture(inspector: Inspector, client: Client) -> None:
    await client.dispatch(load_object("response-gzip.json"))
    await client.event("hello")
    async with httpx.AsyncClient(base_url=inspector.http_url) as http:
        export = (await http.get("/api/export")).content
    code, _, _ = await run_cli("send", "-", "--to", f"127.0.0.1:{inspector.grpc_port}", stdin=export)
    assert code == 0
    requests = [c.request for c in inspector.store.oldest_first()]
    assert pb.Object.FromString(requests[2]) == pb.Object.FromString(requests[0])
    assert pb.Event.FromString(requests[3]).payload == "hello"


async def test_send_reports_errors() -> None:
    code, _, err = await run_cli("send", "/no/such/file.json")
    assert code == 2 and "cannot read" in err
    code, _, err = await run_cli("send", "-", stdin=b'{"hookType": "Nope"}')
    assert code == 2 and "cannot read" in err
    code, _, err = await run_cli("send", str(EXAMPLES / "pre.json"), "--to", "127.0.0.1:1", "--timeout", "2")
    assert code == 1 and "UNAVAILABLE" in err


def test_event_loop_choice() -> None:
    import uvloop

    from app.cli import loop_factory

    assert loop_factory("asyncio") is None
    assert loop_factory("auto") is uvloop.new_event_loop  # installed with the inspector
    assert loop_factory("uvloop") is uvloop.new_event_loop


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_sigterm_with_calls_in_flight_exits_cleanly(event_loop: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "--grpc-address", "127.0.0.1:0", "--http-port", "0", "--shutdown-grace", "5", "--event-loop", event_loop,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "TYK_INSPECTOR_CAPTURE_LOG": "line"},
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    grpc_port, url = await wait_listening(process, log)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, httpx.AsyncClient(base_url=url) as http:
        client = Client(channel)
        obj = load_object("post-key-auth.json")
        assert await client.dispatch(obj) == obj
        stream = await http.send(http.build_request("GET", "/api/stream", params={"after": 0}), stream=True)
        outcomes: list[str] = []

        async def keep_calling() -> None:
            while True:
                try:
                    await client.dispatch(obj, timeout=5)
                    outcomes.append("ok")
                except grpc.aio.AioRpcError as exc:
                    outcomes.append(exc.code().name)
                    return

        callers = [asyncio.create_task(keep_calling()) for _ in range(8)]
        await wait_until(lambda: len(outcomes) > 50, what="calls in flight")
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 15)
        code = await asyncio.wait_for(process.wait(), 15)
        await asyncio.wait_for(asyncio.gather(*callers), 15)
        body = b"".join([chunk async for chunk in stream.aiter_raw()])  # the SSE stream ended by itself
        await stream.aclose()

    log.append(rest.decode())
    text = "".join(log)
    assert code == 0, text
    assert "ERROR" not in text and "Traceback" not in text, text
    assert "Tyk Inspector stopped after" in text.rstrip().splitlines()[-1], text  # the final line
    # Calls the handler took all got their reply (every capture is an "ok"), the others were
    # refused as the server stopped; none failed half-way.
    assert set(outcomes) <= {"ok", "UNAVAILABLE", "CANCELLED"}, outcomes
    assert _captures_told(body) == outcomes.count("ok") + 1


def _captures_told(body: bytes) -> int:
    """How many captures an SSE stream's `captures` and `tail` events told of."""
    told = 0
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields.get("event") == "captures":
            told += len(json.loads(fields["data"]))
        elif fields.get("event") == "tail":
            data = json.loads(fields["data"])
            told += data["skipped"]["count"] + len(data["items"])
    return told
