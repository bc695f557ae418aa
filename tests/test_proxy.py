"""Proxy, routing rules, upstream failures, mocks, diff and replay, against real plugin servers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from google.protobuf import json_format

from app.proxy.rules import RulesError, load_rules
from app.server import Inspector
from protogen import coprocess_object_pb2 as pb
from tests.conftest import TEST_SETTINGS, Client, load_event, load_object, wait_until
from tests.plugins import (
    auth_plugin,
    failing_plugin,
    header_plugin,
    plugin_server,
    response_plugin,
    stalled_plugin,
    unused_target,
)

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def inspector_with(**changes: Any) -> AsyncIterator[tuple[Inspector, Client, httpx.AsyncClient]]:
    inspector = Inspector(replace(TEST_SETTINGS, **changes))
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url) as http,
        ):
            yield inspector, Client(channel), http
    finally:
        await inspector.stop()


def write_rules(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


async def detail(http: httpx.AsyncClient, capture_id: int) -> dict[str, Any]:
    response = await http.get(f"/api/captures/{capture_id}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


# --- proxy mode --------------------------------------------------------------------------------------


async def test_upstream_proxies_every_call_and_captures_both_sides() -> None:
    async with (
        plugin_server(header_plugin) as plugin,
        inspector_with(upstream=plugin.target) as (_inspector, client, http),
    ):
        sent = load_object("pre.json")
        reply = await client.dispatch(sent, metadata=(("traceparent", "00-abc-def-01"),))
        assert reply.request.set_headers["X-Plugin"] == "headers"  # the gateway gets the plugin's answer
        assert plugin.received == [sent]
        assert plugin.metadata[0]["traceparent"] == "00-abc-def-01"  # trace context passes through
        await client.event_bytes(load_event("event-auth-failure.json").SerializeToString())
        assert len(plugin.events) == 1

        capture = await detail(http, 1)
        assert (capture["answered_by"], capture["upstream"], capture["upstream_status"]) == (
            "upstream", plugin.target, "OK",
        )  # fmt: skip
        assert capture["upstream_ms"] > 0 and capture["modified"] is True
        assert capture["reply"]["request"]["setHeaders"] == {"X-Plugin": "headers"}
        kinds = {(c["kind"], c["what"]) for c in capture["changes"]}
        assert {("set header", "X-Plugin added"), ("delete header", "User-Agent"), ("add param", "limit added"),
                ("delete param", "status")} <= kinds  # fmt: skip
        modified = (await http.get("/api/captures", params={"modified": "true"})).json()["items"]
        assert [c["id"] for c in modified] == [1]


async def test_rules_route_by_api_id_and_hook_type(tmp_path: Path) -> None:
    async with plugin_server(header_plugin) as headers, plugin_server(auth_plugin) as auth:
        rules = write_rules(tmp_path / "rules.yaml", {
            "upstreams": {"auth": auth.target, "orders": headers.target},
            "rules": [
                {"name": "auth", "match": {"hook_type": "CustomKeyCheck"}, "upstream": "auth"},
                {"name": "orders", "match": {"api_id": "b84fe1a04e5648927971c0557971565c"}, "upstream": "orders"},
            ],
            "default": "echo",
        })  # fmt: skip
        async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
            auth_call = load_object("custom-key-check.json")
            auth_call.request.headers["Authorization"] = "Bearer good"
            assert (await client.dispatch(auth_call)).session.rate == 100
            assert (await client.dispatch(load_object("pre.json"))).request.set_headers["X-Plugin"] == "headers"
            other_api = load_object("response-petstore-301.json")  # another API ID: echoed
            assert await client.dispatch(other_api) == other_api
            summaries = (await http.get("/api/captures", params={"after": 0})).json()["items"]
            assert [(c["rule"], c["answered_by"]) for c in summaries] == [
                ("auth", "upstream"), ("orders", "upstream"), ("default", "echo"),
            ]  # fmt: skip
            assert len(auth.received) == 1 and len(headers.received) == 1
            created = {c["kind"] for c in (await detail(http, 1))["changes"]}
            assert "session created" in created and "metadata" in created


# --- upstream failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["pass", "echo"])
@pytest.mark.parametrize("failure", ["down", "slow", "error"])
async def test_upstream_failures(tmp_path: Path, failure: str, on_error: str) -> None:
    release = asyncio.Event()
    handler = {"slow": stalled_plugin(release), "error": failing_plugin}.get(failure, header_plugin)
    async with plugin_server(handler) as plugin:
        target = unused_target() if failure == "down" else plugin.target
        rules = write_rules(tmp_path / "rules.json", {
            "rules": [{"name": "plugin", "match": {}, "upstream": target, "on_error": on_error,
                       "deadline_seconds": 0.3}],
        })  # fmt: skip
        rules = rules.rename(tmp_path / "rules.yaml")
        async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
            sent = load_object("pre.json")
            expected_code = {"down": "UNAVAILABLE", "slow": "DEADLINE_EXCEEDED", "error": "UNKNOWN"}[failure]
            if on_error == "pass":
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await client.dispatch(sent)
                assert raised.value.code().name == expected_code  # as if the inspector were not there
            else:
                assert await client.dispatch(sent) == sent  # fell back to echo
            release.set()
            capture = await detail(http, 1)
            assert capture["upstream_status"] == expected_code
            assert capture["error"].startswith(f"upstream {target}: {expected_code}")
            assert capture["answered_by"] == ("fallback" if on_error == "echo" else "upstream")
            assert (capture["reply"] is None) and (capture["echo"] is (on_error == "echo"))


async def slow_failing_plugin(obj: pb.Object) -> pb.Object:
    await asyncio.sleep(0.3)  # the plugin's own pace: it fails after working for a while
    raise RuntimeError("plugin bug, found late")


@pytest.mark.parametrize("on_error", ["pass", "echo"])
async def test_a_slow_failing_upstream_call_records_its_real_duration(tmp_path: Path, on_error: str) -> None:
    async with plugin_server(slow_failing_plugin) as plugin:
        rules = write_rules(tmp_path / "rules.yaml", {
            "rules": [{"name": "plugin", "match": {}, "upstream": plugin.target, "on_error": on_error}],
        })  # fmt: skip
        async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
            if on_error == "pass":
                with pytest.raises(grpc.aio.AioRpcError):
                    await client.dispatch(load_object("pre.json"))
            else:
                await client.dispatch(load_object("pre.json"))
            capture = await detail(http, 1)
            assert capture["upstream_status"] == "UNKNOWN"
            assert capture["duration_ms"] >= 300 and capture["upstream_ms"] >= 300
            assert capture["duration_ms"] >= capture["upstream_ms"]
            slow = (await http.get("/api/captures", params={"q": "dur:>200ms"})).json()["items"]
            assert [c["id"] for c in slow] == [1]
            metrics = (await http.get("/metrics")).text
            assert "tyk_inspector_dispatch_duration_seconds_bucket" in metrics
            assert 'le="0.25"} 0' in metrics  # not counted as a fast call


# --- mocks ------------------------------------------------------------------------------------------


async def test_mock_rules_answer_without_an_upstream(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules.yaml", {
        "rules": [
            {"name": "deny-bad-keys", "match": {"hook_type": "CustomKeyCheck"},
             "mock": {"return_overrides": {"response_code": 403, "response_error": "no {{request.method}} for you",
                                           "headers": {"X-Reason": "{{request.headers.authorization}}"}}}},
            {"name": "tenant-header", "match": {"hook_name": "MyPreHook", "path_prefix": "/orders-api"},
             "mock": {"set_headers": {"X-Tenant": "{{spec.OrgID}}"}, "delete_headers": ["User-Agent"],
                      "add_params": {"limit": "50"}, "delete_params": ["status"]}},
            {"name": "session", "match": {"hook_type": "PostKeyAuth"},
             "mock": {"session": {"rate": 5, "per": 1, "metadata": {"token": "t"}}, "metadata": {"plan": "gold"}}},
        ],
    })  # fmt: skip
    async with inspector_with(rules_file=str(rules)) as (_inspector, client, http):
        denied = await client.dispatch(load_object("custom-key-check.json"))
        assert denied.request.return_overrides.response_code == 403
        assert denied.request.return_overrides.response_error == "no GET for you"
        assert denied.request.return_overrides.headers["X-Reason"].startswith("Bearer eyJ")
        pre = await client.dispatch(load_object("pre.json"))
        assert pre.request.set_headers["X-Tenant"] == "5e9d9544a1dcd60001d0ed20"
        assert list(pre.request.delete_headers) == ["User-Agent"] and pre.request.add_params["limit"] == "50"
        session = await client.dispatch(load_object("post-key-auth.json"))
        assert (session.session.rate, session.session.metadata["token"], session.metadata["plan"]) == (5, "t", "gold")
        summaries = (await http.get("/api/captures", params={"after": 0})).json()["items"]
        assert [(c["rule"], c["answered_by"]) for c in summaries] == [
            ("deny-bad-keys", "mock"), ("tenant-header", "mock"), ("session", "mock"),
        ]  # fmt: skip
        # A 403 without override_error goes through the error template, its plain message shown as written.
        assert [c["outcome_status"] for c in summaries] == [403, "continue", "continue"]
        assert summaries[0]["warnings"] == [] and summaries[2]["warnings"] == ["session-ignored"]
        assert [c["modified"] for c in summaries] == [True, True, False]  # a PostKeyAuth session change does nothing


# --- rules files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rules": [{"match": {"colour": "red"}, "action": "echo"}]}, "rule #1: match: unknown key 'colour' \\(known:"),
        ({"rules": [{"upstream": "nowhere"}]}, "neither a known name nor HOST:PORT"),
        ({"rules": [{"upstream": "a:1", "mock": {}}]}, "exactly one of"),
        ({"rules": [{"mock": {"session": {"rate": "fast"}}}]}, "mock cannot be applied"),
        ({"rules": [{"action": "echo", "on_error": "explode"}]}, "'on_error' must be"),
        ({"rulez": []}, "top level: unknown key 'rulez': did you mean 'rules'\\?"),
        ({"deadline_seconds": "abc", "rules": []}, "top level: 'deadline_seconds' must be a positive number"),
        ({"deadline_seconds": -5, "rules": []}, "top level: 'deadline_seconds' must be a positive number"),
        ({"rules": [{"action": "echo", "deadline_seconds": True}]}, "rule #1: 'deadline_seconds' must be"),
        ({"rules": [{"action": "echo", "deadline_seconds": 0}]}, "rule #1: 'deadline_seconds' must be"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RulesError, match=message):
        load_rules(write_rules(tmp_path / "rules.yaml", doc))


def test_deadlines_are_none_unless_given(tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path / "rules.yaml", {
        "deadline_seconds": 3, "rules": [{"action": "echo"}, {"action": "echo", "deadline_seconds": 1.5}],
    }))  # fmt: skip
    assert [r.deadline_seconds for r in rules.rules] == [3.0, 1.5] and rules.default.deadline_seconds == 3.0
    bare = load_rules(write_rules(tmp_path / "bare.yaml", {"rules": [{"action": "echo"}]}), "127.0.0.1:1")
    assert bare.rules[0].deadline_seconds is None and bare.default.deadline_seconds is None


def test_rules_json_and_yaml_syntax_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RulesError, match="not valid JSON"):
        load_rules(tmp_path / "bad.json")
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"rules": [{"upstream": "nowhere"}]}, "nowhere"),
        ({"rules": [{"match": {"hook_type": "CustomKeyChek"}, "action": "echo"}]}, "did you mean 'CustomKeyCheck'?"),
    ],
)
async def test_invalid_rules_file_at_start_is_one_clear_line(tmp_path: Path, doc: dict[str, Any], named: str) -> None:
    bad = write_rules(tmp_path / "rules.yaml", doc)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--rules", str(bad), "--grpc-address", "127.0.0.1:0", "--http-port", "0",
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "--rules" in err.decode() and named in err.decode() and "line " in err.decode()


async def test_rules_reload_when_the_file_changes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with plugin_server(header_plugin) as plugin:
        rules = write_rules(tmp_path / "rules.yaml", {"rules": [], "default": "echo"})
        async with inspector_with(rules_file=str(rules), rules_poll_seconds=0.05) as (_inspector, client, _http):
            sent = load_object("pre.json")
            assert await client.dispatch(sent) == sent
            write_rules(rules, {"rules": [], "default": plugin.target})
            os.utime(rules, ns=(1, 10**18))  # a new mtime, whatever the file system's resolution
            await wait_until(lambda: "rules reloaded" in caplog.text, what="the reload")
            assert (await client.dispatch(sent)).request.set_headers["X-Plugin"] == "headers"
            # A broken edit is refused and the working rules stay.
            rules.write_text("rules: [ {upstream: }")
            os.utime(rules, ns=(2, 2 * 10**18))
            await wait_until(lambda: "rules not reloaded" in caplog.text, what="the refusal")
            assert (await client.dispatch(sent)).request.set_headers["X-Plugin"] == "headers"


# --- replay -------------------------------------------------------------------------------------------


async def test_replay_to_another_plugin_server_with_and_without_edits() -> None:
    async with (
        plugin_server(header_plugin) as first,
        plugin_server(auth_plugin) as second,
        inspector_with(upstream=first.target) as (_inspector, client, http),
    ):
        await client.dispatch(load_object("custom-key-check.json"))
        again = await http.post("/api/captures/1/replay", json={})
        assert again.status_code == 201
        assert again.json()["capture"]["replay_of"] == 1 and len(first.received) == 2
        assert again.json()["changes_vs_original"] == []  # same plugin, same answer

        elsewhere = (await http.post("/api/captures/1/replay", json={"to": second.target})).json()
        assert elsewhere["capture"]["upstream"] == second.target
        assert {c["kind"] for c in elsewhere["changes_vs_original"]} >= {"return override", "set header"}

        edited = load_object("custom-key-check.json")
        edited.request.headers["Authorization"] = "Bearer good"
        edit_json = json_format.MessageToDict(edited)
        granted = (await http.post("/api/captures/1/replay", json={"to": second.target, "object": edit_json})).json()
        assert "session created" in {c["kind"] for c in granted["capture"]["changes"]}
        assert second.received[-1].request.headers["Authorization"] == "Bearer good"

        bad = await http.post("/api/captures/1/replay", json={"object": {"hookType": "Nope"}})
        assert bad.status_code == 400 and "not a valid coprocess.Object" in bad.json()["detail"]
        ids = [c["id"] for c in (await http.get("/api/captures", params={"after": 0})).json()["items"]]
        assert ids == [1, 2, 3, 4]


async def test_an_event_is_replayed_as_captured_to_the_plugin_server() -> None:
    async with (
        plugin_server(header_plugin) as plugin,
        inspector_with(upstream=plugin.target) as (_inspector, client, http),
    ):
        payload = load_event("event-auth-failure.json").payload
        await client.event(payload)
        assert plugin.events == [payload]
        again = await http.post("/api/captures/1/replay", json={})
        assert again.status_code == 201, again.text
        replayed = again.json()
        assert replayed["capture"]["kind"] == "event" and replayed["capture"]["replay_of"] == 1
        assert replayed["capture"]["upstream_status"] == "OK" and replayed["changes_vs_original"] is None
        assert plugin.events == [payload, payload], "the plugin server got the event again, byte for byte"
        edited = await http.post("/api/captures/1/replay", json={"object": {"payload": "{}"}})
        assert edited.status_code == 400 and "replayed as captured" in edited.json()["detail"]
        assert len(plugin.events) == 2


async def test_replay_needs_a_target_in_echo_mode(client: Client, http: httpx.AsyncClient) -> None:
    await client.dispatch(load_object("pre.json"))
    refused = await http.post("/api/captures/1/replay", json={})
    assert refused.status_code == 400 and "no plugin server to replay to" in refused.json()["detail"]
    assert (await http.post("/api/captures/99/replay", json={})).status_code == 404


async def test_replay_from_the_command_line() -> None:
    async with (
        plugin_server(response_plugin) as plugin,
        inspector_with() as (inspector, client, _http),
    ):
        await client.dispatch(load_object("response-gzip.json"))
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "main.py"), "replay", "1", "--to", plugin.target,
            "--inspector", inspector.http_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["replay_of"] == 1 and result["id"] == 2
        assert "response body changed" in {c["kind"] for c in result["changes"]}


# --- deadlines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller_timeout", "rule_deadline", "expected"),
    [
        (None, None, None),  # the gateway sets no deadline: neither does the proxy
        (30.0, None, 30.0),  # the caller's remaining deadline is passed on
        (None, 2.0, 2.0),  # a rule's deadline is an explicit choice
        (30.0, 2.0, 2.0),  # ... that can only shorten the caller's
        (1.5, 20.0, 1.5),
    ],
)
async def test_the_upstream_call_gets_the_callers_deadline(
    tmp_path: Path, caller_timeout: float | None, rule_deadline: float | None, expected: float | None
) -> None:
    async with plugin_server(header_plugin) as plugin:
        rule: dict[str, object] = {"name": "plugin", "match": {}, "upstream": plugin.target}
        if rule_deadline is not None:
            rule["deadline_seconds"] = rule_deadline
        rules = write_rules(tmp_path / "rules.yaml", {"rules": [rule]})
        async with inspector_with(rules_file=str(rules)) as (_inspector, client, _http):
            await client.dispatch(load_object("pre.json"), timeout=caller_timeout)
        [seen] = plugin.deadlines
        if expected is None:
            assert seen is None
        else:
            assert seen is not None and expected - 1.0 < seen <= expected + 0.1  # grpc-timeout is rounded
