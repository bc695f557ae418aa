"""The console capture log: rate-limited with a summary, every line escaped, json written off the loop."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from app.capture.record import Capture
from app.config import Settings
from app.live.capture_log import RateLimiter, capture_line, printable
from app.redaction.redact import Redactor
from app.server import Inspector
from tests.conftest import Client, load_object, wait_listening, wait_until, with_settings
from tests.test_stream import open_stream

ROOT = Path(__file__).resolve().parent.parent
FORGED = "MyPreHook\n01:59:59 WARNING forged line\x1b[2J\x1b]0;owned\x07\u202etxt.exe"


def capture(n: int, hook_name: str = "MyPreHook", api_id: str = "api-1", duration_ns: int = 1000) -> Capture:
    c = Capture(kind="dispatch", request=b"", reply=b"", hook_type="Pre", hook_name=hook_name, api_id=api_id)
    c.id, c.duration_ns = n, duration_ns
    return c


def test_printable_escapes_controls_and_invisible_formatting() -> None:
    assert printable("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert printable("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert printable("\x9b\x7f\x00") == "\\x9b\\x7f\\x00"
    assert printable("evil\u202etxt\u2028x\u200b") == "evil\\u202etxt\\u2028x\\u200b"
    assert printable("Pre ünïcode /orders?q=1 ✓") == "Pre ünïcode /orders?q=1 ✓"  # printable text stays as it is


def test_capture_line_is_one_line_whatever_the_hook_name_holds() -> None:
    line = capture_line(capture(7, hook_name=FORGED, api_id="a\nb"), Redactor())
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line and "\x07" not in line
    assert line == ("Pre MyPreHook\\n01:59:59 WARNING forged line\\x1b[2J\\x1b]0;owned\\x07\\u202etxt.exe api=a\\nb #7")


def test_rate_limiter_logs_up_to_the_rate_then_summarises_the_second() -> None:
    limiter = RateLimiter(rate=20, now=100.0)
    burst = [capture(i, api_id=f"api-{i % 2}", duration_ns=i * 1000) for i in range(1, 501)]
    chosen = limiter.select(burst, now=100.0)
    assert [c.id for c in chosen] == list(range(1, 21))
    # Refilled at 20 a second: 60 ms later one more line, the rest counted.
    assert [c.id for c in limiter.select([capture(501), capture(502)], now=100.06)] == [501]
    assert limiter.summary(now=100.5) is None  # the second is not over yet
    assert limiter.due_in(now=100.5) == pytest.approx(0.5)
    summary = limiter.summary(now=101.0)
    assert summary is not None
    assert (summary.captures, summary.logged) == (502, 21)
    assert summary.hooks == {"Pre MyPreHook": 502}
    assert summary.apis == {"api-0": 250, "api-1": 252}
    assert summary.statuses == {"-": 502}
    assert summary.slowest is burst[-1]
    text = summary.text(now=101.0)
    assert text.startswith("502 captures in 1.0 s (502/s), 21 logged one by one")
    assert "hooks Pre MyPreHook 502" in text and "APIs api-1 252, api-0 250" in text
    assert "slowest #500 Pre MyPreHook 0.500 ms" in text
    assert limiter.due_in(now=101.0) is None  # a new period starts with the next capture


def test_rate_limiter_is_silent_when_every_capture_was_logged() -> None:
    limiter = RateLimiter(rate=20, now=0.0)
    assert len(limiter.select([capture(i) for i in range(5)], now=0.0)) == 5
    assert limiter.summary(now=2.0) is None and limiter.due_in(now=2.0) is None


def test_summary_escapes_captured_names() -> None:
    limiter = RateLimiter(rate=1, now=0.0)
    failed = capture(3)
    failed.error = "request is not a coprocess.Object"
    limiter.select([capture(1), capture(2, hook_name=FORGED), failed], now=0.0)
    summary = limiter.summary(now=0.0, final=True)
    assert summary is not None and (summary.captures, summary.logged, summary.errors) == (3, 1, 1)
    text = summary.text(now=1.0)
    assert "\n" not in text and "\x1b" not in text and "MyPreHook\\n01:59:59 WARNING" in text
    assert "| errors 1 |" in text


class TestAutoMode:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(capture_log="auto", buffer_items=10_000)()

    async def test_a_flood_is_logged_up_to_the_rate_plus_a_summary(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="tyk_inspector.captures")
        await client.dispatch(load_object("pre.json"))
        export = (await http.get("/api/export")).json()
        export["captures"] *= 300
        assert (await http.post("/api/import", json=export)).status_code == 201  # 300 captures in one loop turn

        def summaries() -> list[dict[str, Any]]:
            return [vars(r) for r in caplog.records if r.name == "tyk_inspector.captures" and hasattr(r, "logged")]

        def lines() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "tyk_inspector.captures" and hasattr(r, "capture_id")]

        def not_logged() -> int:
            return sum(r["captures"] - r["logged"] for r in summaries())

        # Every capture is either logged one by one or counted in a summary as not logged,
        # and the flood was not logged one by one.
        await wait_until(lambda: len(lines()) + not_logged() >= 301, what="the summary")
        not_logged_count = not_logged()
        assert len(lines()) + not_logged_count == 301
        assert 1 <= len(lines()) < 301 and not_logged_count > 0
        assert any("hooks Pre MyPreHook" in r["msg"] % r["args"] for r in summaries())
        assert sum(r["hooks"]["Pre MyPreHook"] for r in summaries()) <= 301


async def test_json_mode_converts_and_writes_off_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tyk_inspector.captures")
    inspector = Inspector(with_settings(capture_log="json")())
    await inspector.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
            obj = load_object("pre.json")
            obj.hook_name = FORGED
            await Client(channel).dispatch(obj)
        records = await wait_until(
            lambda: [r for r in caplog.records if r.name == "tyk_inspector.captures"], what="the json log"
        )
    finally:
        await inspector.stop()
    (record,) = records
    assert record.thread != threading.get_ident(), "written by a worker thread, not the event loop"
    first, _, body = record.getMessage().partition("\n")
    assert first.startswith("Pre MyPreHook\\n01:59:59 WARNING")
    assert '"hookName": "MyPreHook\\n01:59:59 WARNING forged line\\u001b[2J' in body  # JSON escapes it too


async def test_console_output_cannot_be_forged_by_a_hook_name() -> None:
    # The real process and its real stderr, as a user's terminal sees it.
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--grpc-address", "127.0.0.1:0", "--http-port", "0",
        "--capture-log", "line", stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    try:
        grpc_port, _ = await wait_listening(process, log)
        output = "".join(log)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            obj = load_object("pre.json")
            obj.hook_name = FORGED
            await Client(channel).dispatch(obj)
        while "#1" not in output:
            output += (await asyncio.wait_for(process.stderr.readline(), 15)).decode()
    finally:
        process.terminate()
        await process.wait()
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    lines = output.splitlines()
    assert not any(line.startswith("01:59:59 WARNING") for line in lines)
    (logged,) = [line for line in lines if "#1" in line]
    assert re.match(r"\d\d:\d\d:\d\d INFO +Pre MyPreHook\\n01:59:59 WARNING forged line\\x1b\[2J", logged), logged


class TestNotABrowser:
    @pytest.fixture
    def settings(self) -> Settings:
        return with_settings(capture_log="line")()

    async def test_the_console_log_is_not_counted_as_a_live_view(
        self, inspector: Inspector, client: Client, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="tyk_inspector.captures")
        await client.dispatch(load_object("pre.json"))
        await wait_until(lambda: [r for r in caplog.records if r.name == "tyk_inspector.captures"], what="a line")
        stats = (await http.get("/api/stats")).json()
        assert stats["subscribers"] == 0 and stats["subscriber_lags"] == 0
        assert "tyk_inspector_sse_clients 0.0" in (await http.get("/metrics")).text
        async with open_stream(http):
            await wait_until(lambda: inspector.broadcaster.subscriber_count == 1, what="the browser")
            assert (await http.get("/api/stats")).json()["subscribers"] == 1
