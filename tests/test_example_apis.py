"""The README's complete API definitions and the fake-login rules: what they say matches the protocol,
and the rules really let a custom-auth API's request past its auth hook in echo mode."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import grpc
import httpx

from app.proxy.rules import load_rules
from app.server import Inspector
from tests.conftest import TEST_SETTINGS, Client, load_object

ROOT = Path(__file__).resolve().parent.parent
APIS = ROOT / "examples" / "apis"
HOOKS = {"MyPreHook", "MyAuthCheck", "MyPostKeyAuthHook", "MyPostHook", "MyResponseHook"}


def test_the_classic_definition_has_all_five_grpc_hooks_and_custom_auth() -> None:
    api = json.loads((APIS / "orders-classic.json").read_text())
    middleware = api["custom_middleware"]
    assert middleware["driver"] == "grpc"
    named = {h["name"] for key in ("pre", "post_key_auth", "post", "response") for h in middleware[key]}
    assert named | {middleware["auth_check"]["name"]} == HOOKS
    assert api["use_keyless"] is False and api["custom_plugin_auth_enabled"] is True
    [handler] = api["event_handlers"]["events"]["AuthFailure"]
    assert handler["handler_name"] == "cp_dynamic_handler"


def test_the_oas_definition_has_all_five_grpc_hooks_and_custom_auth() -> None:
    api = json.loads((APIS / "orders-oas.json").read_text())["x-tyk-api-gateway"]
    auth = api["server"]["authentication"]
    assert auth["enabled"] and auth["custom"]["enabled"] and auth["custom"]["config"]["enabled"]
    plugins = api["middleware"]["global"]
    assert plugins["pluginConfig"]["driver"] == "grpc"
    named = {p["functionName"] for key in ("prePlugins", "postAuthenticationPlugins", "postPlugins",
                                            "responsePlugins") for p in plugins[key] if p["enabled"]}  # fmt: skip
    assert named | {auth["custom"]["config"]["functionName"]} == HOOKS


def test_the_readme_points_at_the_examples() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in ("examples/apis/orders-classic.json", "examples/apis/orders-oas.json",
                 "examples/apis/fake-login.yaml", "examples/scale-out/compose.yaml"):  # fmt: skip
        assert f"]({path})" in readme or f"--rules {path}" in readme, path
        assert (ROOT / path).exists(), path


async def test_fake_login_lets_a_custom_auth_request_past_its_auth_hook() -> None:
    load_rules(APIS / "fake-login.yaml")  # valid as it stands
    inspector = Inspector(replace(TEST_SETTINGS, rules_file=str(APIS / "fake-login.yaml")))
    await inspector.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{inspector.grpc_port}") as channel:
            await Client(channel).dispatch(load_object("custom-key-check.json"))
            await Client(channel).dispatch(load_object("pre.json"))
        async with httpx.AsyncClient(base_url=inspector.http_url) as http:
            auth = (await http.get("/api/captures/1")).json()
            pre = (await http.get("/api/captures/2")).json()
        assert auth["answered_by"] == "mock" and auth["rule"] == "fake-login"
        assert auth["outcome"]["result"] == "continue", auth["outcome"]["summary"]  # not the echo's 403
        assert pre["answered_by"] == "echo"
    finally:
        await inspector.stop()
