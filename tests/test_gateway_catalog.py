"""The gateway's catalog: /hello and /tyk/apis read from a real HTTP server, names in the API,
`api:` by name or listen path, the hooks view and why a hook never fires."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.capture.record import Capture
from app.cli import build_parser, settings_from_args
from app.gateway.apidef import ApiDefinition, ConfiguredHook, parse_api_list
from app.gateway.catalog import GatewayCatalog
from app.gateway.hooks import TWICE_NEAR_LIMIT, Usage, report
from app.server import Inspector
from app.tyk.version import TykVersion
from tests.conftest import TEST_SETTINGS, Client, load_object, wait_listening, wait_until
from tests.gateway_api import (
    BUNDLE_ID,
    LEGACY_ID,
    MCP_ID,
    ORDERS_ID,
    PAYMENTS_ID,
    FakeGateway,
    catalog,
    fake_gateway,
)

SECRET = "gateway-secret-123"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with fake_gateway(FakeGateway(secret=SECRET)) as served:
        yield served


def codes(reasons: list[dict[str, str]]) -> list[str]:
    return [r["code"] for r in reasons]


# --- reading the gateway -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["5.8", "5.14"])
async def test_the_catalog_of_each_release_gives_names_listen_paths_and_hooks_in_order(version: str) -> None:
    seen: list[TykVersion] = []
    with fake_gateway(FakeGateway(version=version, secret=SECRET)) as served:
        reader = GatewayCatalog((served.url,), SECRET, on_version=seen.append)
        await reader.refresh()
    orders = reader.lookup(ORDERS_ID)
    assert orders is not None
    assert (orders.name, orders.listen_path, orders.driver) == ("Orders API", "/orders/", "grpc")
    assert [(h.hook_type, h.name) for h in orders.hooks] == [
        ("Pre", "MyPreHook"),
        ("Pre", "SessionFirst"),
        ("CustomKeyCheck", "MyAuthCheck"),
        ("PostKeyAuth", "MyPostKeyAuthHook"),
        ("Post", "RetiredHook"),
        ("Response", "MyResponseHook"),
    ]
    assert reader.name_of(ORDERS_ID) == "Orders API /orders/"
    assert reader.name_of("not-known") is None
    assert seen == [TykVersion.parse(version)]
    assert reader.status()["tyk_version"] == {"version": f"{version}.0", "source": f"/hello at {served.url}"}
    # MCP APIs are asked for from 5.12 on (the gateway leaves them out otherwise).
    apis_paths = [path for path, _ in served.requests if path.startswith("/tyk/apis")]
    if version == "5.14":
        assert apis_paths == ["/tyk/apis?include_types=mcp"]
        assert reader.lookup(MCP_ID) is not None
    else:
        assert apis_paths == ["/tyk/apis"]
    # The secret goes to /tyk/apis only, as x-tyk-authorization.
    headers = dict(served.requests)
    assert headers["/hello"].get("x-tyk-authorization") is None
    assert headers[apis_paths[0]]["x-tyk-authorization"] == SECRET


async def test_given_tyk_version_is_kept_and_hello_only_informs(gateway: FakeGateway) -> None:
    seen: list[TykVersion] = []
    reader = GatewayCatalog((gateway.url,), SECRET, version_fixed=True, on_version=seen.append)
    await reader.refresh()
    assert seen == []
    assert reader.status()["gateways"][0]["version"] == "5.14.0"


async def test_a_wrong_secret_is_a_clear_message_and_the_last_catalog_stays_stale(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    reader = GatewayCatalog((gateway.url,), SECRET)
    await reader.refresh()
    gateway.secret = "rotated-on-the-gateway"
    with caplog.at_level(logging.INFO, "tyk_inspector.gateway"):
        await reader.refresh()
        await reader.refresh()  # the same failure is logged once
    state = reader.status()["gateways"][0]
    assert state["stale"] is True and state["ok"] is False
    assert "refused the secret" in state["error"] and "403" in state["error"]
    assert state["age_seconds"] is not None and state["api_count"] == 5
    assert reader.lookup(ORDERS_ID) is not None  # names still shown
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "last good catalog stays" in warnings[0]
    assert SECRET not in caplog.text and SECRET not in json.dumps(reader.status()) and SECRET not in repr(reader)
    gateway.secret = SECRET
    await reader.refresh()
    assert reader.status()["gateways"][0]["ok"] is True


async def test_no_secret_says_which_setting_gives_it(gateway: FakeGateway) -> None:
    reader = GatewayCatalog((gateway.url,), None)
    await reader.refresh()
    assert "--gateway-secret" in reader.status()["gateways"][0]["error"]


async def test_an_unreachable_gateway_and_one_without_the_api_are_said_clearly(gateway: FakeGateway) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gateway.apis_status = 404
    reader = GatewayCatalog((f"http://127.0.0.1:{port}", gateway.url), SECRET)
    await reader.refresh()
    down, data_plane = reader.status()["gateways"]
    assert down["error"].startswith(f"cannot reach the gateway at http://127.0.0.1:{port}")
    assert down["stale"] is False  # nothing was ever read
    assert "data-plane" in data_plane["error"] and "control_api_port" in data_plane["error"]


async def test_callers_at_the_same_moment_share_one_read(gateway: FakeGateway) -> None:
    reader = GatewayCatalog((gateway.url,), SECRET)
    await asyncio.gather(*(reader.refresh() for _ in range(8)))
    assert reader.refreshes == 1
    assert len([p for p, _ in gateway.requests if p.startswith("/tyk/apis")]) == 1


async def test_the_background_task_rereads_on_request_and_stops(gateway: FakeGateway) -> None:
    reader = GatewayCatalog((gateway.url,), SECRET, refresh_seconds=3600)
    reader.start()
    try:
        await wait_until(lambda: reader.refreshes >= 1, what="the first read")
        gateway.apis = [catalog("5.14")[1]]
        reader.request_refresh()
        await wait_until(lambda: reader.lookup(ORDERS_ID) is None, what="a read on request")
    finally:
        await reader.stop()
    assert reader._task is None


def test_a_catalog_that_is_not_a_list_or_has_odd_entries_is_read_safely() -> None:
    listed = parse_api_list(
        json.dumps(
            [{"api_id": "x", "custom_middleware": {"pre": "no", "auth_check": []}}, "junk", {"name": "no id"}]
        ).encode()
    )
    assert [a.api_id for a in listed.apis] == ["x"] and listed.apis[0].hooks == ()


# --- why a hook never fires ----------------------------------------------------------------


def capture(
    api_id: str, hook_type: str, hook_name: str, size: int = 10, duration_ns: int = 1_000_000, **fields: Any
) -> Capture:
    return Capture(
        kind="dispatch",
        request=b"x" * size,
        reply=None,
        api_id=api_id,
        hook_type=hook_type,
        hook_name=hook_name,
        duration_ns=duration_ns,
        **fields,
    )


def hooks_report(usage: Usage) -> dict[str, Any]:
    apis = parse_api_list(json.dumps(catalog("5.14")).encode()).apis
    document = report([(a, "gw") for a in apis], usage)
    return {a["name"]: a for a in document["apis"]} | {"unknown": document["unknown_apis"]}


def test_each_reason_a_hook_never_fires_only_where_the_definition_shows_it() -> None:
    usage = Usage()
    usage.add_all(
        [
            capture(ORDERS_ID, "Pre", "MyPreHook", duration_ns=2_000_000),
            capture(ORDERS_ID, "Pre", "MyPreHook", duration_ns=4_000_000, grpc_status="OK"),
            capture(ORDERS_ID, "PostKeyAuth", "MyPostKeyAuthHook", upstream_status="UNIMPLEMENTED", grpc_status="OK"),
            capture(ORDERS_ID, "Response", "MyResponseHook", size=TWICE_NEAR_LIMIT),
            capture("ffffffffffffffffffffffffffffffff", "Pre", "Elsewhere"),
            capture(ORDERS_ID, "Pre", "MyPreHook", replay_of=1),  # a replay is not a gateway call
        ]
    )
    apis = hooks_report(usage)
    orders = apis["Orders API"]
    hooks = {h["name"]: h for h in orders["hooks"]}
    assert list(hooks) == [
        "MyPreHook",
        "SessionFirst",
        "MyAuthCheck",
        "MyPostKeyAuthHook",
        "RetiredHook",
        "MyResponseHook",
    ]
    pre = hooks["MyPreHook"]
    assert (pre["calls"], pre["fires"], pre["reasons"], pre["p50_ms"], pre["p99_ms"]) == (2, True, [], 2.0, 4.0)
    assert codes(hooks["RetiredHook"]["reasons"]) == ["hook-disabled"]
    assert codes(hooks["MyPostKeyAuthHook"]["reasons"]) == ["unimplemented"]
    assert hooks["MyPostKeyAuthHook"]["fires"] is False
    assert codes(hooks["SessionFirst"]["warnings"]) == ["session-before-auth"]
    assert hooks["MyAuthCheck"]["reasons"] == []  # custom auth on, keyed API: nothing shown, just no calls yet
    assert hooks["MyResponseHook"]["warnings"] == []  # raw_body_only set: bodies travel once
    payments = apis["Payments"]
    assert codes(payments["reasons"]) == ["driver-empty"]
    pay = {h["name"]: codes(h["reasons"]) for h in payments["hooks"]}
    assert pay == {"PayPre": [], "PayAuth": ["auth-on-keyless"], "PayPostAuth": ["post-auth-on-keyless"]}
    assert codes(apis["Legacy Python"]["reasons"]) == ["api-inactive", "driver-not-grpc"]
    assert codes(apis["Bundled"]["reasons"]) == ["bundle-not-loaded"]
    mcp = apis["Tools MCP"]["hooks"][0]
    assert codes(mcp["reasons"]) == ["no-traffic"]
    unknown = apis["unknown"]
    assert [u["api_id"] for u in unknown] == ["ffffffffffffffffffffffffffffffff"]
    # No catalog read yet: no API is "unknown" for it.
    assert report([], usage, catalog_read=False)["unknown_apis"] == []


def test_bodies_sent_twice_near_the_limit_warn_without_raw_body_only() -> None:
    api = ApiDefinition("a", driver="grpc", hooks=(ConfiguredHook("Post", "Big"),))
    usage = Usage()
    usage.add(capture("a", "Post", "Big", size=TWICE_NEAR_LIMIT))
    (row,) = report([(api, "gw")], usage)["apis"]
    assert codes(row["hooks"][0]["warnings"]) == ["body-twice"]


# --- through the inspector -----------------------------------------------------------------


@pytest.fixture
async def served(gateway: FakeGateway) -> AsyncIterator[tuple[Inspector, httpx.AsyncClient, FakeGateway]]:
    settings = replace(TEST_SETTINGS, gateway_urls=(gateway.url,), gateway_url=gateway.url, gateway_secret=SECRET)
    inspector = Inspector(settings)
    await inspector.start()
    try:
        async with httpx.AsyncClient(base_url=inspector.http_url, timeout=10) as http:
            web = inspector.web
            assert web is not None
            await wait_until(lambda: web.catalog.refreshes >= 1, what="the first catalog read")
            yield inspector, http, gateway
    finally:
        await inspector.stop()


async def send_pre(inspector: Inspector) -> None:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
        await Client(channel).dispatch(load_object("pre.json"))


async def test_api_filter_finds_a_capture_by_name_id_or_listen_path(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway],
) -> None:
    inspector, http, _ = served
    await send_pre(inspector)
    for query in ("api:orders", "api:orders*", 'api:"Orders API"', "api:/orders/", f"api:{ORDERS_ID}"):
        found = (await http.get("/api/captures", params={"q": query})).json()["items"]
        assert [c["api_id"] for c in found] == [ORDERS_ID], query
    assert (await http.get("/api/captures", params={"q": "api:payments"})).json()["items"] == []


async def test_the_hooks_view_and_refresh_through_the_api(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway],
) -> None:
    inspector, http, gateway = served
    await send_pre(inspector)
    document = (await http.get("/api/apis")).json()
    assert document["tyk_version"] == {"version": "5.14.0", "source": f"/hello at {gateway.url}"}
    assert inspector.web is not None and str(inspector.web.gateway.version) == "5.14.0"
    orders = next(a for a in document["apis"] if a["api_id"] == ORDERS_ID)
    pre = next(h for h in orders["hooks"] if h["name"] == "MyPreHook")
    assert pre["calls"] == 1 and pre["fires"] is True and pre["last_seen_us"]
    assert {a["name"] for a in document["apis"]} == {"Orders API", "Payments", "Legacy Python", "Bundled", "Tools MCP"}
    first = (await http.get("/api/apis/names")).json()
    assert first["names"][PAYMENTS_ID] == {"name": "Payments", "listen_path": "/payments/"}
    await http.post("/api/apis/refresh")  # the same catalog: the same revision, no names sent again
    again = (await http.get("/api/apis/names", params={"revision": first["revision"]})).json()
    assert again["names"] is None and again["revision"] == first["revision"]
    gateway.apis = [catalog("5.14")[0] | {"name": "Orders v2"}]
    refreshed = (await http.post("/api/apis/refresh")).json()
    assert refreshed["gateways"][0]["api_count"] == 1 and refreshed["revision"] == first["revision"] + 1
    assert (await http.get("/api/apis/names")).json()["names"][ORDERS_ID]["name"] == "Orders v2"
    assert LEGACY_ID not in (await http.get("/api/apis/names")).json()["names"]
    assert BUNDLE_ID  # (the bundle API left with the rest)


async def test_the_secret_is_in_no_answer_and_no_log(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway], caplog: pytest.LogCaptureFixture
) -> None:
    inspector, http, gateway = served
    gateway.secret = "changed"
    with caplog.at_level(logging.DEBUG):
        await http.post("/api/apis/refresh")
        paths = ("/api/stats", "/api/apis", "/api/apis/names", "/", "/metrics")
        answers = [(await http.get(path)).text for path in paths]
    assert all(SECRET not in text for text in answers)
    assert SECRET not in caplog.text and SECRET not in repr(inspector.settings)
    assert "refused the secret" in (await http.get("/api/apis")).json()["gateways"][0]["error"]


def test_cli_gateway_urls_repeat_and_the_secret_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    parser, _ = build_parser({})
    args = parser.parse_args(
        [
            "serve",
            "--gateway-url",
            "http://a:8080",
            "--gateway-url",
            "http://b:8080",
            "--gateway-secret-file",
            str(secret_file),
        ]
    )
    settings = settings_from_args(args)
    assert settings.gateway_urls == ("http://a:8080", "http://b:8080") and settings.gateway_url == "http://a:8080"
    assert settings.gateway_secret == "from-file" and not settings.tyk_version_given
    assert "from-file" not in repr(settings)
    parser, _ = build_parser({"TYK_INSPECTOR_GATEWAY_SECRET": "from-env", "TYK_INSPECTOR_TYK_VERSION": "5.8.2"})
    settings = settings_from_args(parser.parse_args(["serve"]))
    assert settings.gateway_secret == "from-env" and settings.tyk_version_given and settings.tyk_version == "5.8.2"
    assert settings.gateway_urls == () and settings.gateway_url == "http://localhost:8080"
    with pytest.raises(ValueError, match="--gateway-url"):
        replace(TEST_SETTINGS, gateway_urls=("localhost:8080",))
    with pytest.raises(ValueError, match="no credentials in the URL") as refused:
        replace(TEST_SETTINGS, gateway_urls=("http://admin:hunter2@gw:8080",))
    assert "hunter2" not in str(refused.value)


async def test_har_and_metrics_name_the_api_and_the_metrics_label_stays_the_id(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway],
) -> None:
    inspector, http, _ = served
    await send_pre(inspector)
    har = (await http.get("/api/export", params={"format": "har"})).json()
    (entry,) = har["log"]["entries"]
    assert entry["_tykInspector"]["api_id"] == ORDERS_ID
    assert (entry["_tykInspector"]["api_name"], entry["_tykInspector"]["listen_path"]) == ("Orders API", "/orders/")
    metrics = (await http.get("/metrics")).text
    assert f'api_id="{ORDERS_ID}"' in metrics and "Orders API" not in metrics


async def test_the_console_log_names_the_api(gateway: FakeGateway, caplog: pytest.LogCaptureFixture) -> None:
    settings = replace(TEST_SETTINGS, gateway_urls=(gateway.url,), gateway_secret=SECRET, capture_log="line")
    inspector = Inspector(settings)
    await inspector.start()
    try:
        web = inspector.web
        assert web is not None
        await wait_until(lambda: web.catalog.lookup(ORDERS_ID) is not None, what="the catalog read")
        with caplog.at_level(logging.INFO, "tyk_inspector"):
            await send_pre(inspector)
            await wait_until(lambda: "#1" in caplog.text, what="the capture's console line")
    finally:
        await inspector.stop()
    assert f"api={ORDERS_ID} (Orders API /orders/)" in caplog.text


def test_the_plugins_share_of_a_request_is_hook_time_over_first_hook_to_last() -> None:
    usage = Usage()
    pre = capture("a", "Pre", "P", duration_ns=1_000_000, received_us=1_000_000)
    response = capture("a", "Response", "R", duration_ns=1_000_000, received_us=1_010_000)  # 10 ms later
    usage.add_journey("a", [pre, response])
    usage.add_journey("a", [pre])  # one call alone says nothing of the request
    assert usage.plugin_share("a") == {"share": round(2 / 11, 4), "journeys": 1}
    assert usage.plugin_share("b") is None


async def test_a_response_hook_on_a_streaming_upstream_warns(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway],
) -> None:
    inspector, http, _ = served
    obj = load_object("response-petstore-301.json")
    obj.spec["APIID"] = ORDERS_ID
    obj.hook_name = "MyResponseHook"
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
        await Client(channel).dispatch(obj)
        document = (await http.get("/api/apis")).json()
        orders = next(a for a in document["apis"] if a["api_id"] == ORDERS_ID)
        response = next(h for h in orders["hooks"] if h["name"] == "MyResponseHook")
        assert response["calls"] == 1 and response["warnings"] == []  # a plain JSON upstream
        obj.response.headers["Content-Type"] = "text/event-stream; charset=utf-8"
        await Client(channel).dispatch(obj)
    document = (await http.get("/api/apis")).json()
    orders = next(a for a in document["apis"] if a["api_id"] == ORDERS_ID)
    response = next(h for h in orders["hooks"] if h["name"] == "MyResponseHook")
    assert codes(response["warnings"]) == ["response-buffers-stream"]


async def test_a_gateway_that_drips_its_answer_is_cut_off_as_a_whole() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:  # a byte at a time, each well within the per-read timeout
                writer.write(b"1\r\n \r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader = GatewayCatalog((f"http://127.0.0.1:{port}",), SECRET, timeout_seconds=1.0, read_seconds=0.5)
        began = asyncio.get_running_loop().time()
        await reader.refresh()
        assert asyncio.get_running_loop().time() - began < 5
    finally:
        server.close()
    assert "did not send its version and catalog within 0.5 s" in reader.status()["gateways"][0]["error"]


async def test_an_unforeseen_failure_is_logged_and_the_task_goes_on(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def off_loop(size: int, function: Any, *args: object) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a worker failed")
        return function(*args)

    reader = GatewayCatalog((gateway.url,), SECRET, off_loop=off_loop, refresh_seconds=3600)
    with caplog.at_level(logging.ERROR, "tyk_inspector.gateway"):
        reader.start()
        try:
            await wait_until(lambda: reader.failures == 1, what="the failed read")
            reader.request_refresh()
            await wait_until(lambda: reader.lookup(ORDERS_ID) is not None, what="the next read")
        finally:
            await reader.stop()
    assert "gateway catalog read failed" in caplog.text and "RuntimeError: a worker failed" in caplog.text


async def test_pages_asking_at_once_share_one_walk_of_the_buffer(
    served: tuple[Inspector, httpx.AsyncClient, FakeGateway],
) -> None:
    inspector, http, _ = served
    await send_pre(inspector)
    answers = await asyncio.gather(*(http.get("/api/apis") for _ in range(8)))
    documents = [a.json() for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert all(d["apis"] == documents[0]["apis"] for d in documents)
    orders = next(a for a in documents[0]["apis"] if a["api_id"] == ORDERS_ID)
    assert orders["calls"] == 1


async def test_an_unchanged_catalog_is_not_parsed_again(gateway: FakeGateway) -> None:
    parsed: list[str] = []

    async def off_loop(size: int, function: Any, *args: object) -> Any:
        parsed.append(function.__name__)
        return function(*args)

    reader = GatewayCatalog((gateway.url,), SECRET, off_loop=off_loop)
    await reader.refresh()
    await reader.refresh()
    assert parsed.count("parse_api_list") == 1
    gateway.apis = catalog("5.14")[:1]
    await reader.refresh()
    assert parsed.count("parse_api_list") == 2 and reader.lookup(PAYMENTS_ID) is None


async def test_stop_ends_a_read_in_flight_within_its_grace() -> None:
    arrived = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await reader.read()  # never answers; returns when the client goes away
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader = GatewayCatalog((f"http://127.0.0.1:{port}",), SECRET, timeout_seconds=60, read_seconds=60)
        reader.start()
        await asyncio.wait_for(arrived.wait(), 5)
        asked = asyncio.ensure_future(reader.refresh())  # a page's button, sharing the read
        await asyncio.sleep(0)  # one turn: the button's call joins the read
        began = asyncio.get_running_loop().time()
        await reader.stop(grace=2)
        assert asyncio.get_running_loop().time() - began < 2
        with pytest.raises(asyncio.CancelledError):
            await asked
        await asyncio.wait_for(reader.refresh(), 1)  # once stopped, nothing more is read
    finally:
        server.close()


async def test_the_command_reads_the_gateway_with_a_secret_file_and_never_logs_it(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    """The whole path from the command line: flags, the secret file, the background read, SIGTERM."""
    secret_file = tmp_path / "gateway-secret"
    secret_file.write_text(SECRET + "\n")
    gateway.secret = "another"  # a 403 first: its message is logged, the secret is not
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "main.py"), "--grpc-address", "127.0.0.1:0", "--http-port", "0",
        "--gateway-url", gateway.url, "--gateway-secret-file", str(secret_file), "--log-level", "DEBUG",
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env={k: v for k, v in os.environ.items()
                                                        if not k.startswith("TYK_INSPECTOR_")},
    )  # fmt: skip
    log: list[str] = []
    try:
        _, url = await wait_listening(process, log)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            await wait_until(lambda: any(p.startswith("/tyk/apis") for p, _ in gateway.requests), what="a read")
            # The refused read must be over before the secret changes, or the refresh below would join it.
            deadline = asyncio.get_running_loop().time() + 10
            while (await http.get("/api/apis")).json()["gateways"][0]["error"] is None:
                assert asyncio.get_running_loop().time() < deadline, "the refused read never ended"
                await asyncio.sleep(0.05)
            gateway.secret = SECRET
            state = (await http.post("/api/apis/refresh")).json()
            assert state["gateways"][0]["ok"] is True and state["secret"] is True
            assert (await http.get("/api/apis/names")).json()["names"][ORDERS_ID]["name"] == "Orders API"
            assert SECRET not in (await http.get("/api/stats")).text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        rest = await asyncio.wait_for(process.stderr.read(), 30)
        code = await asyncio.wait_for(process.wait(), 15)
    output = "".join(log) + rest.decode()
    assert code == 0, output
    assert "refused the secret" in output and SECRET not in output and "Tyk Inspector stopped" in output
    assert all(headers.get("x-tyk-authorization") in (SECRET, None) for _, headers in gateway.requests)
