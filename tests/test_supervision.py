"""Background tasks are supervised and rules never fail a gateway call.

Real parts: an inspector on loopback ports, a real gRPC client and plugin server, real rules files
on disk, real asyncio tasks for the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from pathlib import Path

import grpc
import pytest

from app.supervisor import Supervisor
from tests.conftest import load_object, wait_until
from tests.plugins import header_plugin, plugin_server
from tests.test_proxy import detail, inspector_with, write_rules

# Letters, under the size past which a message is read in a worker and rules see only its summary
# (INLINE_READ_BYTES): each rule's regex below takes milliseconds on its first 64 Ki characters.
BIG_BODY = b'{"items": "' + bytes(random.Random(0).choices(b"abcdefghijklmnopqrstuvwxyz", k=200_000)) + b'"}'


def touch(path: Path, step: int) -> None:
    """A new mtime, whatever the file system's resolution."""
    os.utime(path, ns=(step, step * 10**18))


# --- a rule can never fail a gateway call -------------------------------------------------------------


async def test_rules_that_run_out_of_time_leave_the_call_to_the_default_which_is_captured_and_counted(
    tmp_path: Path,
) -> None:
    # Each rule runs a costly (linear, but slow per byte) regex over the body: together far more than a call
    # may wait for its routing.
    rules = write_rules(tmp_path / "rules.yaml", {
        "rules": [{"name": f"sku-{i}", "match": {"query": f"body:/(a|b|c|d|e)[a-z]{{20}}zzq{i}/"}, "action": "echo"}
                  for i in range(300)],
        "default": "PLUGIN",
    })  # fmt: skip
    async with plugin_server(header_plugin) as plugin:
        rules.write_text(rules.read_text().replace("PLUGIN", plugin.target))
        async with inspector_with(rules_file=str(rules)) as (inspector, client, http):
            sent = load_object("pre.json")
            sent.request.raw_body = BIG_BODY
            began = time.monotonic()
            reply = await client.dispatch(sent)
            took = time.monotonic() - began
            # The default (the plugin server) answered, soon: the rules' time is bounded.
            assert reply.request.set_headers["X-Plugin"] == "headers"
            assert took < 2.0, f"the routing took {took:.2f} s"  # unbounded, 300 body searches take 3 s and more
            await wait_until(lambda: inspector.store.last_id == 1, what="the capture")
            capture = await detail(http, 1)
            assert capture["rule"] == "default" and capture["answered_by"] == "upstream"
            assert "the default" in capture["error"] and "took longer than 100 ms" in capture["error"]
            assert inspector.service.rule_errors == 1
            metrics = (await http.get("/metrics")).text
            assert "tyk_inspector_rule_errors_total 1.0" in metrics
            stats = (await http.get("/api/stats")).json()
            assert stats["health"]["rule_errors"] == 1


async def test_a_rule_whose_match_fails_leaves_the_call_to_the_default_not_to_an_error(tmp_path: Path) -> None:
    # A pattern that backtracks for ever on this path: the match cannot complete within its time.
    rules = write_rules(tmp_path / "rules.yaml", {
        "rules": [
            {"name": "nested", "match": {"query": "path:/(a|aa)+$/"}, "mock": {"set_headers": {"X-Rule": "nested"}}},
        ],
    })  # fmt: skip
    async with inspector_with(rules_file=str(rules)) as (inspector, client, http):
        sent = load_object("pre.json")
        sent.request.url = "/" + "a" * 5000 + "!"
        try:
            reply = await client.dispatch(sent)
        except grpc.aio.AioRpcError as exc:  # what the gateway got before: UNKNOWN, so its client a 500
            pytest.fail(f"the call failed with {exc.code().name}: {exc.details()}")
        assert reply == sent  # the default: echo
        await wait_until(lambda: inspector.store.last_id == 1, what="the capture")
        capture = await detail(http, 1)
        assert capture["rule"] == "default" and capture["answered_by"] == "echo"
        if capture["error"] is not None:  # a linear-time engine may decide in time: then the rule just did not match
            assert "rule #1 (nested) could not be matched" in capture["error"]
            assert inspector.service.rule_errors == 1


# --- the rules watcher --------------------------------------------------------------------------------


async def test_a_non_utf8_save_is_refused_and_later_edits_are_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rules = write_rules(tmp_path / "rules.yaml", {"rules": [], "default": "echo"})
    async with (
        plugin_server(header_plugin) as plugin,
        inspector_with(rules_file=str(rules), rules_poll_seconds=0.05) as (inspector, client, http),
    ):
        sent = load_object("pre.json")
        rules.write_bytes(b"rules: []\ndefault: \xff\xfeecho\n")  # saved in Latin-1 by an editor
        touch(rules, 1)
        await wait_until(lambda: "not UTF-8" in caplog.text, what="the refusal")
        assert "line 2" in caplog.text
        stats = (await http.get("/api/stats")).json()
        assert "not UTF-8" in stats["health"]["rules"]["error"] and not stats["health"]["degraded"]
        assert await client.dispatch(sent) == sent  # the previous rules stay
        # The watcher is still there: a valid edit is read.
        write_rules(rules, {"rules": [], "default": plugin.target})
        touch(rules, 2)
        await wait_until(lambda: "rules reloaded" in caplog.text, what="the reload")
        assert (await client.dispatch(sent)).request.set_headers["X-Plugin"] == "headers"
        assert (await http.get("/api/stats")).json()["health"]["rules"]["error"] is None
        assert inspector.supervisor.health()["tasks"][-1]["state"] == "running"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - match: { hook_type: CustomKeyChek }\n    action: echo\n",
         "line 2: rule #1: match.hook_type 'CustomKeyChek' is no hook or event type, so the rule would never "
         "match: did you mean 'CustomKeyCheck'?"),
        ("rules:\n  - match: {}\n    upstrem: a:1\n",
         "line 3: rule #1: unknown key 'upstrem': did you mean 'upstream'?"),
        ("rules:\n  - match:\n      hook_typ: Pre\n    action: echo\n",
         "line 3: rule #1: match: unknown key 'hook_typ': did you mean 'hook_type'?"),
        ("rules:\n  - match: { path_prefix: orders }\n    action: echo\n",
         "line 2: rule #1: match.path_prefix 'orders' would never match (request paths start with /): "
         "did you mean '/orders'?"),
        ("rules:\n  - match: { method: GTE }\n    action: echo\n",
         "line 2: rule #1: match.method 'GTE' is not an HTTP method: did you mean 'GET'?"),
        ("defualt: echo\nrules: []\n", "line 1: top level: unknown key 'defualt': did you mean 'default'?"),
        ('{"rules": [\n  {"match": {"hook_type": "Pree"}, "action": "echo"}\n]}\n',
         "line 2: rule #1: match.hook_type 'Pree' is no hook or event type"),
    ],
)  # fmt: skip
def test_rules_typos_are_errors_with_the_line_and_a_suggestion(tmp_path: Path, text: str, expected: str) -> None:
    from app.proxy.rules import RulesError, load_rules

    path = tmp_path / ("rules.json" if text.startswith("{") else "rules.yaml")
    path.write_text(text)
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert expected in str(raised.value)


def test_event_types_and_any_case_of_a_hook_type_are_accepted(tmp_path: Path) -> None:
    from app.proxy.rules import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - match: { hook_type: AuthFailure }\n    action: echo\n"
        "  - match: { hook_type: customkeycheck, method: PROPFIND }\n    action: echo\n"
    )
    assert len(load_rules(path).rules) == 2


async def test_a_typo_on_reload_keeps_the_previous_rules_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rules = write_rules(
        tmp_path / "rules.yaml", {"rules": [{"match": {"hook_type": "Pre"}, "mock": {"set_headers": {"X-Mock": "1"}}}]}
    )
    async with inspector_with(rules_file=str(rules), rules_poll_seconds=0.05) as (_inspector, client, http):
        sent = load_object("pre.json")
        assert (await client.dispatch(sent)).request.set_headers["X-Mock"] == "1"
        rules.write_text("rules:\n  - match: { hook_type: Pree }\n    mock: { set_headers: { X-Mock: '2' } }\n")
        touch(rules, 1)
        await wait_until(lambda: "rules not reloaded" in caplog.text, what="the refusal")
        assert "did you mean 'Pre'?" in caplog.text
        assert "did you mean 'Pre'?" in (await http.get("/api/stats")).json()["health"]["rules"]["error"]
        assert (await client.dispatch(sent)).request.set_headers["X-Mock"] == "1"


# --- the supervisor -----------------------------------------------------------------------------------


async def test_a_crashed_task_is_logged_with_its_traceback_and_started_again(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(backoff_first=0.01)
    runs: list[int] = []
    forever = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"crash number {len(runs)}")
        await forever.wait()

    supervisor.start("flaky", flaky)
    await wait_until(lambda: len(runs) == 3, what="two restarts")
    await wait_until(lambda: supervisor.health()["tasks"][0]["state"] == "running", what="it to run")
    assert not supervisor.degraded
    assert supervisor.health()["tasks"][0]["restarts"] == 2
    assert "task flaky crashed; starting it again" in caplog.text
    assert "RuntimeError: crash number 1" in caplog.text and "Traceback" in caplog.text
    await supervisor.stop()


async def test_a_task_that_keeps_crashing_is_given_up_and_the_inspector_says_it_is_degraded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with inspector_with() as (inspector, client, http):
        assert (await http.get("/api/stats")).json()["health"]["degraded"] is False
        assert "tyk_inspector_degraded 0.0" in (await http.get("/metrics")).text
        inspector.supervisor.backoff_first = 0.01

        async def broken() -> None:
            raise OSError("disk full")

        inspector.supervisor.start("exporter", broken)
        await wait_until(
            lambda: inspector.supervisor.health()["tasks"][-1]["state"] == "failed", what="the task to be given up"
        )
        health = (await http.get("/api/stats")).json()["health"]
        assert health["degraded"] is True
        assert {"name": "exporter", "state": "failed", "restarts": 4, "last_error": "OSError: disk full"} in health[
            "tasks"
        ]
        metrics = (await http.get("/metrics")).text
        assert "tyk_inspector_degraded 1.0" in metrics and 'tyk_inspector_task_up{task="exporter"} 0.0' in metrics
        assert "crashed 5 times in a row and is given up" in caplog.text
        sent = load_object("pre.json")
        assert await client.dispatch(sent) == sent  # the gateway is answered all the same


async def test_stopping_waits_a_bounded_time_for_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a read that loses its cancellation does (redis-py on Python 3.11): stop() returns anyway."""
    supervisor = Supervisor()
    release, started = asyncio.Event(), asyncio.Event()
    stop_asked: list[bool] = []

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallowed, as a library's read can

    supervisor.start("stubborn", stubborn, stop=lambda: stop_asked.append(True), stop_seconds=0.4)
    await started.wait()
    began = time.monotonic()
    await asyncio.wait_for(supervisor.stop(), 5)
    assert time.monotonic() - began < 2
    assert stop_asked == [True]
    assert "task stubborn did not stop within 0.4 s; leaving it behind" in caplog.text
    release.set()
    left_behind = supervisor.states()[0].task
    assert left_behind is not None
    await wait_until(left_behind.done, what="the task to end once released")


# --- the page -----------------------------------------------------------------------------------------


async def test_the_page_says_when_rules_are_not_reloaded_and_when_the_inspector_is_degraded(tmp_path: Path) -> None:
    from tests.browser import dashboard_in, launch_chromium

    rules = write_rules(tmp_path / "rules.yaml", {"rules": [], "default": "echo"})
    async with (
        inspector_with(rules_file=str(rules), rules_poll_seconds=0.05) as (inspector, _client, _http),
        launch_chromium() as chromium,
        dashboard_in(chromium, inspector.http_url) as browser,
    ):
        pill = browser.page.locator("#health")
        assert await pill.is_hidden()  # healthy: nothing said
        rules.write_text("rules:\n  - match: { hook_type: CustomKeyChek }\n    action: echo\n")
        touch(rules, 1)
        await pill.wait_for(state="visible")
        assert await pill.text_content() == "rules not reloaded"
        assert "did you mean 'CustomKeyCheck'?" in (await pill.get_attribute("title") or "")

        inspector.supervisor.backoff_first = 0.01

        async def broken() -> None:
            raise OSError("disk full")

        inspector.supervisor.start("exporter", broken)
        await browser.page.wait_for_function("document.getElementById('health').textContent.startsWith('degraded')")
        title = await pill.get_attribute("title") or ""
        assert "task exporter was given up: OSError: disk full" in title
