"""Intercept over a real inspector: a real gRPC client as the gateway, real HTTP and SSE clients as the page."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from app.cli import build_parser, settings_from_args
from app.server import Inspector, serve
from protogen import coprocess_object_pb2 as pb
from tests.conftest import EXAMPLES, TEST_SETTINGS, Client, load_object, wait_until
from tests.plugins import header_plugin, plugin_server
from tests.test_cli import run_cli
from tests.test_stream import open_stream


@asynccontextmanager
async def intercepting(**changes: Any) -> AsyncIterator[tuple[Inspector, Client, httpx.AsyncClient]]:
    inspector = Inspector(replace(TEST_SETTINGS, **changes))
    await inspector.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel,
            httpx.AsyncClient(base_url=inspector.http_url, timeout=10) as http,
        ):
            yield inspector, Client(channel), http
    finally:
        await inspector.stop()


async def held_items(http: httpx.AsyncClient, count: int = 1) -> list[dict[str, Any]]:
    async def poll() -> list[dict[str, Any]]:
        while True:
            items: list[dict[str, Any]] = (await http.get("/api/held")).json()["items"]
            if len(items) >= count:
                return items
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), 5)


def dispatch_in_background(client: Client, obj: pb.Object, **kwargs: Any) -> asyncio.Task[bytes]:
    return asyncio.ensure_future(client.dispatch_bytes(obj.SerializeToString(), **kwargs))


async def last_capture(http: httpx.AsyncClient) -> dict[str, Any]:
    item: dict[str, Any] = (await http.get("/api/captures", params={"limit": 1})).json()["items"][0]
    return item


async def test_a_pre_call_is_held_edited_and_the_client_gets_the_edit_byte_for_byte() -> None:
    async with intercepting(intercept="hook:Pre") as (inspector, client, http):
        call = dispatch_in_background(client, load_object("pre.json"))
        [held] = await held_items(http)
        assert held["point"] == "after" and held["hook_type"] == "Pre"
        assert not call.done()
        detail = (await http.get(f"/api/held/{held['id']}")).json()
        edit = detail["object"]
        edit["request"]["setHeaders"] = {"X-Debug": "1"}
        response = await http.post(f"/api/held/{held['id']}/continue", json={"object": edit})
        assert response.status_code == 200, response.text
        reply = await asyncio.wait_for(call, 5)
        assert reply == json_format.ParseDict(edit, pb.Object()).SerializeToString()
        assert pb.Object.FromString(reply).request.set_headers["X-Debug"] == "1"
        assert (await http.get("/api/held")).json()["items"] == []
        await wait_until(lambda: inspector.store.last_id >= 1, what="the capture")
        capture = inspector.store.get(inspector.store.last_id)
        assert capture is not None and capture.reply == reply
        assert capture.intercepted and "after the plugin: continued as edited by 127.0.0.1" in capture.intercepted
        assert capture.intercept_edit and "X-Debug" in capture.intercept_edit
        assert (await last_capture(http))["intercepted"] == capture.intercepted


async def test_calls_the_query_does_not_match_events_and_send_are_never_held() -> None:
    async with intercepting(intercept="hook:Pre") as (inspector, client, _):
        await asyncio.wait_for(client.dispatch(load_object("post-key-auth.json")), 5)
        assert await asyncio.wait_for(client.event("{}"), 5) is not None
        marked = load_object("pre.json").SerializeToString()
        reply = await asyncio.wait_for(client.dispatch_bytes(marked, metadata=(("x-tyk-inspector-send", "1"),)), 5)
        assert reply == marked
        assert inspector.interceptor.held_total == 0


async def test_api_sets_the_query_and_refuses_a_bad_one() -> None:
    async with intercepting() as (inspector, _, http):
        assert inspector.service.intercept is None, "no query: the Dispatcher checks nothing else"
        assert (await http.get("/api/intercept")).json()["active"] is False
        bad = await http.put("/api/intercept", json={"q": "hook:(", "points": ["after"]})
        assert bad.status_code == 400 and "invalid query" in bad.json()["detail"]
        unknown = await http.put("/api/intercept", json={"q": "warn:x", "points": ["after"]})
        assert unknown.status_code == 400 and "not known before the call is answered" in unknown.json()["detail"]
        points = await http.put("/api/intercept", json={"q": "hook:Pre", "points": ["sideways"]})
        assert points.status_code == 400 and "points" in points.json()["detail"]
        ok = await http.put("/api/intercept", json={"q": "hook:Pre", "points": ["after"]})
        assert ok.status_code == 200 and ok.json()["q"] == "hook:Pre" and ok.json()["points"] == ["after"]
        assert inspector.service.intercept is inspector.interceptor
        off = await http.put("/api/intercept", json={"q": "", "points": ["after"]})
        assert off.json()["active"] is False and inspector.service.intercept is None


async def test_writes_follow_the_cross_site_and_token_rules() -> None:
    token = "t" * 24
    async with intercepting(intercept="hook:Pre", auth_token=token) as (_, client, http):
        assert (await http.get("/api/held")).status_code == 401
        http.headers["Authorization"] = f"Bearer {token}"
        call = dispatch_in_background(client, load_object("pre.json"))
        [held] = await held_items(http)
        evil = await http.post(f"/api/held/{held['id']}/continue", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        cross = await http.put("/api/intercept", json={"q": ""}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert not call.done()
        assert (await http.post(f"/api/held/{held['id']}/continue")).status_code == 200
        await asyncio.wait_for(call, 5)


async def test_a_bad_edit_is_a_400_naming_the_field_and_the_call_stays_held() -> None:
    async with intercepting(intercept="hook:Pre") as (_, client, http):
        sent = load_object("pre.json")
        call = dispatch_in_background(client, sent)
        [held] = await held_items(http)
        bad = await http.post(f"/api/held/{held['id']}/continue", json={"object": {"request": {"method": 5}}})
        assert bad.status_code == 400 and "method" in bad.json()["detail"], bad.text
        wrong = await http.post(f"/api/held/{held['id']}/continue", json={"object": {"hookTipe": "Pre"}})
        assert wrong.status_code == 400 and "hookTipe" in wrong.json()["detail"]
        assert not call.done() and len(await held_items(http)) == 1
        assert (await http.post(f"/api/held/{held['id']}/continue")).status_code == 200
        assert await asyncio.wait_for(call, 5) == sent.SerializeToString()


async def test_respond_with_a_deny_preset_to_a_custom_key_check() -> None:
    async with intercepting(intercept="hook:auth") as (_, client, http):
        call = dispatch_in_background(client, load_object("custom-key-check.json"))
        [held] = await held_items(http)
        unknown = await http.post(f"/api/held/{held['id']}/respond", json={"preset": "maybe"})
        assert unknown.status_code == 400 and "preset" in unknown.json()["detail"]
        response = await http.post(f"/api/held/{held['id']}/respond", json={"preset": "deny-401"})
        assert response.status_code == 200, response.text
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.request.return_overrides.response_code == 401
        capture = await last_capture(http)
        assert capture["answered_by"] == "intercept" and "responded deny-401" in capture["intercepted"]
        assert capture["outcome_status"] in (401, None)


async def test_respond_allow_gives_a_session_the_lint_accepts() -> None:
    async with intercepting(intercept="hook:auth") as (_, client, http):
        call = dispatch_in_background(client, load_object("custom-key-check.json"))
        [held] = await held_items(http)
        assert (await http.post(f"/api/held/{held['id']}/respond", json={"preset": "allow"})).status_code == 200
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.HasField("session") and reply.metadata["token"]
        sent = json_format.MessageToDict(load_object("custom-key-check.json"))
        candidate = json_format.MessageToDict(reply)
        preview = await http.post("/api/outcome/preview", json={"sent": sent, "reply": candidate})
        assert preview.status_code == 200
        assert preview.json()["outcome"]["status"] == "continue", preview.json()


async def test_fail_a_held_call() -> None:
    async with intercepting(intercept="hook:Pre") as (_, client, http):
        call = dispatch_in_background(client, load_object("pre.json"))
        [held] = await held_items(http)
        bad = await http.post(f"/api/held/{held['id']}/fail", json={"code": "OK"})
        assert bad.status_code == 400 and "code" in bad.json()["detail"]
        response = await http.post(f"/api/held/{held['id']}/fail", json={"code": "unavailable", "details": "down"})
        assert response.status_code == 200
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await asyncio.wait_for(call, 5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE and failed.value.details() == "down"
        capture = await last_capture(http)
        assert capture["grpc_status"] == "UNAVAILABLE" and "failed UNAVAILABLE" in capture["intercepted"]


async def test_two_viewers_racing_the_first_action_wins() -> None:
    async with intercepting(intercept="hook:Pre") as (_, client, http):
        call = dispatch_in_background(client, load_object("pre.json"))
        [held] = await held_items(http)
        first, second = await asyncio.gather(
            http.post(f"/api/held/{held['id']}/respond", json={"preset": "deny-403"}),
            http.post(f"/api/held/{held['id']}/continue"),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        code = reply.request.return_overrides.response_code
        assert code == (403 if first.status_code == 200 else -1)


async def test_a_held_call_continues_by_itself_after_the_timeout() -> None:
    async with intercepting(intercept="hook:Pre", intercept_timeout_seconds=0.3) as (_, client, http):
        sent = load_object("pre.json")
        call = dispatch_in_background(client, sent)
        [held] = await held_items(http)
        assert held["expires_at"] - held["since"] == pytest.approx(0.3, abs=0.05)
        assert await asyncio.wait_for(call, 5) == sent.SerializeToString()
        assert "continued after 0.3 s (--intercept-timeout)" in (await last_capture(http))["intercepted"]


async def test_past_the_cap_calls_pass_unheld_and_are_counted() -> None:
    async with intercepting(intercept="hook:Pre", intercept_max=1) as (_, client, http):
        first = dispatch_in_background(client, load_object("pre.json"))
        await held_items(http)
        await asyncio.wait_for(client.dispatch(load_object("pre.json")), 5)
        state = (await http.get("/api/intercept")).json()
        assert state["held"] == 1 and state["passed_over"] == 1
        metrics = (await http.get("/metrics")).text
        assert "tyk_inspector_intercept_held 1.0" in metrics
        assert "tyk_inspector_intercept_passed_over_total 1.0" in metrics
        assert "tyk_inspector_intercept_held_calls_total 1.0" in metrics
        assert (await http.post("/api/held/continue-all")).json() == {"continued": 1}
        await asyncio.wait_for(first, 5)


async def test_held_bytes_count_against_max_inflight_bytes() -> None:
    size = len(load_object("pre.json").SerializeToString())
    # Room for one call's request, not for a held reply of its own as well.
    async with intercepting(intercept="hook:Pre", max_inflight_bytes=size + 10) as (inspector, client, http):
        await http.put("/api/intercept", json={"q": "hook:Pre", "points": ["after"]})
        inspector.service.tag_requests = True  # the reply differs from the request: its bytes are held too
        await asyncio.wait_for(client.dispatch(load_object("pre.json")), 5)
        assert (await http.get("/api/intercept")).json()["passed_over"] == 1


async def test_held_and_released_events_and_the_last_page_closing_releases_all() -> None:
    async with intercepting(intercept="hook:Pre") as (_, client, http):
        async with open_stream(http) as stream:
            call = dispatch_in_background(client, load_object("pre.json"))
            await wait_until(lambda: stream.named("held"), what="a held event")
            held = json.loads(stream.named("held")[0].data)
            assert held["hook_type"] == "Pre"
        # The only page went away: the call goes on at once, not after the timeout.
        await asyncio.wait_for(call, 2)
        assert "the last page closed" in (await last_capture(http))["intercepted"]
        async with open_stream(http) as stream:
            call = dispatch_in_background(client, load_object("pre.json"))
            [held] = await held_items(http)
            await http.post(f"/api/held/{held['id']}/continue")
            await wait_until(lambda: stream.named("released"), what="a released event")
            assert json.loads(stream.named("released")[0].data)["id"] == held["id"]
            await asyncio.wait_for(call, 5)


async def test_a_call_the_gateway_cancels_while_held_is_marked_abandoned() -> None:
    async with intercepting(intercept="hook:Pre") as (inspector, client, http):
        call = dispatch_in_background(client, load_object("pre.json"))
        await held_items(http)
        call.cancel()
        await wait_until(lambda: inspector.store.last_id >= 1, what="the abandoned call's capture")
        capture = inspector.store.get(inspector.store.last_id)
        assert capture is not None and capture.grpc_status == "CANCELLED"
        assert capture.intercepted and "abandoned by the gateway" in capture.intercepted
        assert (await http.get("/api/held")).json()["items"] == []


async def test_shutdown_continues_held_calls_before_the_grace_period() -> None:
    inspector = Inspector(replace(TEST_SETTINGS, intercept="hook:Pre", shutdown_grace_seconds=5))
    await inspector.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
        sent = load_object("pre.json")
        call = dispatch_in_background(Client(channel), sent)
        await wait_until(lambda: inspector.interceptor.held, what="the call to be held")
        stopping = asyncio.ensure_future(inspector.stop())
        assert await asyncio.wait_for(call, 2) == sent.SerializeToString()
        await stopping


async def test_proxy_mode_holds_before_and_after_the_plugin() -> None:
    async with (
        plugin_server(header_plugin) as plugin,
        intercepting(intercept="hook:Pre", upstream=plugin.target) as (_, client, http),
    ):
        call = dispatch_in_background(client, load_object("pre.json"))
        [before] = await held_items(http)
        assert before["point"] == "before"
        edit = (await http.get(f"/api/held/{before['id']}")).json()["object"]
        edit["request"]["method"] = "POST"
        assert (await http.post(f"/api/held/{before['id']}/continue", json={"object": edit})).status_code == 200
        [after] = await held_items(http)
        assert after["point"] == "after" and after["id"] != before["id"]
        assert plugin.received[0].request.method == "POST", "the plugin server got the edited Object"
        await http.post(f"/api/held/{after['id']}/continue")
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.request.set_headers["X-Plugin"] == "headers"
        capture = await last_capture(http)
        assert "before the plugin: continued as edited" in capture["intercepted"]
        assert "after the plugin: continued" in capture["intercepted"]

        # Answered before the plugin: it never sees the call.
        call = dispatch_in_background(client, load_object("pre.json"))
        [before] = await held_items(http)
        await http.post(f"/api/held/{before['id']}/respond", json={"preset": "override-503"})
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.request.return_overrides.response_code == 503
        assert len(plugin.received) == 1


async def test_outcome_preview_follows_the_candidate_reply() -> None:
    async with intercepting() as (_, _client, http):
        sent = json_format.MessageToDict(load_object("pre.json"))
        same = await http.post("/api/outcome/preview", json={"sent": sent, "reply": sent})
        assert same.status_code == 200 and same.json()["outcome"]["status"] == "continue"
        denied = json.loads(json.dumps(sent))
        denied["request"]["returnOverrides"] = {"responseCode": 401, "responseError": "no"}
        result = (await http.post("/api/outcome/preview", json={"sent": sent, "reply": denied})).json()
        assert result["outcome"]["status"] == 401
        failed = (await http.post("/api/outcome/preview", json={"sent": sent, "reply": None})).json()
        assert failed["outcome"]["status"] == 500
        bad = await http.post("/api/outcome/preview", json={"sent": sent, "reply": {"request": {"url": 3}}})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("reply")


async def test_with_redaction_the_page_edits_the_redacted_view_and_the_gateway_gets_the_real_values() -> None:
    async with intercepting(intercept="hook:Pre", redact=True) as (inspector, client, http):
        sent = load_object("pre.json")
        sent.request.headers["Authorization"] = "Bearer real-secret"
        sent.request.url = sent.request.request_uri = "/orders-api/v1/orders?api_key=k-secret"
        call = dispatch_in_background(client, sent)
        [held] = await held_items(http)
        assert "k-secret" not in json.dumps(held)
        detail = (await http.get(f"/api/held/{held['id']}")).json()
        assert "real-secret" not in json.dumps(detail) and "k-secret" not in json.dumps(detail)
        edit = detail["object"]
        edit["request"]["setHeaders"] = {"X-Debug": "1"}
        assert (await http.post(f"/api/held/{held['id']}/continue", json={"object": edit})).status_code == 200
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.request.headers["Authorization"] == "Bearer real-secret", "a value left as shown is the real one"
        assert reply.request.set_headers["X-Debug"] == "1"
        detail_doc = (await http.get(f"/api/captures/{inspector.store.last_id}")).json()
        assert "X-Debug" in detail_doc["intercept_edit"] and "real-secret" not in detail_doc["intercept_edit"]


def test_the_command_line_and_environment_set_the_intercept() -> None:
    parser, env = build_parser({"TYK_INSPECTOR_INTERCEPT": "hook:auth"})
    settings = settings_from_args(parser.parse_args(["serve", "--intercept-timeout", "5", "--intercept-max", "3"]))
    assert not env.errors
    assert (settings.intercept, settings.intercept_timeout_seconds, settings.intercept_max) == ("hook:auth", 5, 3)
    flag = settings_from_args(parser.parse_args(["serve", "--intercept", "api:orders"]))
    assert flag.intercept == "api:orders"


async def test_a_bad_intercept_query_at_start_is_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    assert await serve(replace(TEST_SETTINGS, intercept="hook:(")) == 2
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line.startswith("--intercept / TYK_INSPECTOR_INTERCEPT: ")


async def test_tyk_inspector_send_is_never_held() -> None:
    async with intercepting(intercept="hook:Pre") as (inspector, _, _http):
        target = f"127.0.0.1:{inspector.grpc_port}"
        code, out, err = await run_cli("send", str(EXAMPLES / "pre.json"), "--to", target, "--timeout", "20")
        assert code == 0, err
        assert json.loads(out)["hookName"] == "MyPreHook"
        assert inspector.interceptor.held_total == 0


async def test_an_edit_with_a_large_body_goes_on_and_the_preview_takes_it() -> None:
    async with intercepting(intercept="hook:Pre") as (_, client, http):
        sent = load_object("pre.json")
        call = dispatch_in_background(client, sent)
        [held] = await held_items(http)
        edit = (await http.get(f"/api/held/{held['id']}")).json()["object"]
        edit["request"]["rawBody"] = base64.b64encode(b"x" * 300_000).decode()  # past the 64 KiB default
        preview = await http.post("/api/outcome/preview", json={"held": held["id"], "reply": edit, "sent": edit})
        assert preview.status_code == 200, preview.text
        response = await http.post(f"/api/held/{held['id']}/continue", json={"object": edit})
        assert response.status_code == 200, response.text
        assert pb.Object.FromString(await asyncio.wait_for(call, 5)).request.raw_body == b"x" * 300_000


async def test_respond_with_a_mock_from_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    mock = {"return_overrides": {"response_code": 418, "response_error": "teapot"}}
    rules.write_text(json.dumps({"rules": [{"name": "teapot", "match": {"hook_type": "Post"}, "mock": mock}]}))
    async with intercepting(intercept="hook:Pre", rules_file=str(rules)) as (_, client, http):
        assert (await http.get("/api/intercept")).json()["mocks"] == ["teapot"]
        assert (await http.put("/api/intercept", json={"q": "hook:Pre"})).json()["mocks"] == ["teapot"]
        call = dispatch_in_background(client, load_object("pre.json"))
        [held] = await held_items(http)
        unknown = await http.post(f"/api/held/{held['id']}/respond", json={"mock": "kettle"})
        assert unknown.status_code == 400 and "teapot" in unknown.json()["detail"]
        assert (await http.post(f"/api/held/{held['id']}/respond", json={"mock": "teapot"})).status_code == 200
        reply = pb.Object.FromString(await asyncio.wait_for(call, 5))
        assert reply.request.return_overrides.response_code == 418
        assert "responded with the mock teapot" in (await last_capture(http))["intercepted"]
