"""The gateway's catalog read from the real gateway: API names, hooks in its order, its version, why a hook never fires.

The inspector of the harness runs with `--gateway-url` pointing at the gateway and the gateway's
secret in TYK_INSPECTOR_GATEWAY_SECRET; the harness's definitions include an API with a disabled
Pre hook (`nohook`) and one whose `custom_middleware.driver` is empty (`nodriver`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.gateway.catalog import GatewayCatalog
from app.tyk.version import TykVersion
from tests.conformance.environment import Case, Environment
from tests.conformance.harness import SECRET, deadline_wait, send
from tests.conformance.test_cases import allow, edit

# Each API's hooks as its definition lists them, in the order the gateway runs them.
CONFIGURED = {
    "keyless": [("Pre", "keyless_pre"), ("Post", "keyless_post"), ("Response", "keyless_response")],
    "auth": [
        ("Pre", "auth_pre"),
        ("CustomKeyCheck", "auth_auth"),
        ("PostKeyAuth", "auth_postauth"),
        ("Post", "auth_post"),
        ("Response", "auth_response"),
    ],
    "authx": [
        ("Pre", "authx_pre"),
        ("CustomKeyCheck", "authx_auth"),
        ("PostKeyAuth", "authx_postauth"),
        ("Post", "authx_post"),
        ("Response", "authx_response"),
    ],
    "rewrite": [("Pre", "rewrite_pre"), ("Post", "rewrite_post"), ("Response", "rewrite_response")],
    "noresp": [("Pre", "noresp_pre")],
    "nohook": [("Pre", "nohook_pre"), ("Post", "nohook_post")],
    "nodriver": [("Pre", "nodriver_pre")],
    "oas": [("Pre", "oas_pre"), ("Post", "oas_post"), ("Response", "oas_response")],
}
NAMES = {"nohook": "Disabled Pre API", "nodriver": "Empty Driver API"}


def refreshed(env: Environment) -> dict[str, Any]:
    state: dict[str, Any] = env.inspector.http.post("/api/apis/refresh").json()
    return state


def apis_by_id(env: Environment) -> dict[str, dict[str, Any]]:
    return {api["api_id"]: api for api in env.inspector.http.get("/api/apis").json()["apis"]}


def codes(reasons: list[dict[str, str]]) -> list[str]:
    return [r["code"] for r in reasons]


def test_the_catalog_lists_every_api_by_name_with_its_hooks_in_the_gateways_order(env: Environment) -> None:
    state = refreshed(env)
    gateway = state["gateways"][0]
    assert gateway["ok"] is True, gateway["error"]
    assert state["secret"] is True and gateway["url"] == env.gateway.url
    apis = apis_by_id(env)
    assert set(apis) == set(CONFIGURED)
    for api_id, hooks in CONFIGURED.items():
        api = apis[api_id]
        assert api["name"] == NAMES.get(api_id, api_id)
        assert api["listen_path"] == f"/{api_id}/"
        assert [(h["hook_type"], h["name"]) for h in api["hooks"]] == hooks, api_id
    assert apis["oas"]["is_oas"] is True and apis["oas"]["driver"] == "grpc"
    assert not any(api["is_oas"] for api_id, api in apis.items() if api_id != "oas")
    assert apis["auth"]["custom_plugin_auth_enabled"] is True and apis["auth"]["use_keyless"] is False
    names = env.inspector.http.get("/api/apis/names").json()["names"]
    assert names["nohook"] == {"name": "Disabled Pre API", "listen_path": "/nohook/"}


def test_the_version_read_from_hello_is_the_gateways(env: Environment) -> None:
    gateway = refreshed(env)["gateways"][0]
    assert gateway["version"], gateway
    assert TykVersion.parse(gateway["version"]) == TykVersion.parse(env.version)
    # --tyk-version was given: /hello informs, the model follows the flag.
    assert refreshed(env)["tyk_version"]["source"] == "--tyk-version"


def test_the_secret_is_nowhere_the_inspector_shows(env: Environment) -> None:
    refreshed(env)
    for path in ("/api/apis", "/api/apis/names", "/api/stats"):
        assert SECRET not in env.inspector.http.get(path).text, path
    assert SECRET not in env.inspector.log_path.read_text(errors="replace")


def test_api_filter_finds_captures_of_real_requests_by_name_or_listen_path(env: Environment) -> None:
    refreshed(env)
    result = env.run(Case("catalog_nohook", api="nohook"))
    assert not result.mismatches, result.mismatches
    ids = {s["id"] for s in result.summaries}
    assert ids and {s["hook_name"] for s in result.summaries} == {"nohook_post"}
    for query in ('api:"Disabled Pre API"', "api:disabled*", "api:/nohook/", "api:nohook"):
        found = env.inspector.http.get("/api/captures", params={"q": query, "limit": 500}).json()["items"]
        assert ids <= {c["id"] for c in found}, query
        assert {c["api_id"] for c in found} == {"nohook"}, query
    none = env.inspector.http.get("/api/captures", params={"q": 'api:"Empty Driver API"'}).json()["items"]
    assert none == []


def test_a_disabled_hook_and_an_empty_driver_are_explained_where_the_definitions_say(env: Environment) -> None:
    refreshed(env)
    env.run(Case("catalog_keyless", api="keyless"))
    env.run(Case("catalog_nohook_again", api="nohook"))
    client = send(env.gateway, "GET", "/nodriver/anything", {}, b"")
    # What the reason says the gateway does with an empty driver: 500, and no plugin called.
    assert client.status == 500, (client.status, client.body)
    assert not any(call[0].spec.get("APIID") == "nodriver" for call in env.plugin.calls)

    def counted() -> dict[str, dict[str, Any]] | None:
        apis = apis_by_id(env)
        return apis if apis["nohook"]["calls"] and apis["keyless"]["calls"] else None

    apis = deadline_wait(counted, 10, "the calls counted in /api/apis")
    nohook = {h["name"]: h for h in apis["nohook"]["hooks"]}
    assert codes(nohook["nohook_pre"]["reasons"]) == ["hook-disabled"] and nohook["nohook_pre"]["fires"] is False
    assert nohook["nohook_pre"]["calls"] == 0 and nohook["nohook_pre"]["disabled"] is True
    assert nohook["nohook_post"]["reasons"] == [] and nohook["nohook_post"]["fires"] is True
    assert apis["nohook"]["reasons"] == []

    nodriver = apis["nodriver"]
    assert codes(nodriver["reasons"]) == ["driver-empty"] and nodriver["driver"] == ""
    assert nodriver["calls"] == 0
    assert [(h["fires"], h["reasons"]) for h in nodriver["hooks"]] == [(False, [])]

    for hook in apis["keyless"]["hooks"]:
        assert hook["fires"] is True and hook["reasons"] == [] and hook["calls"] >= 1, hook
    # No other API shows a reason its definition does not give.
    for api_id, api in apis.items():
        if api_id != "nodriver":
            assert api["reasons"] == [], (api_id, api["reasons"])
        for hook in api["hooks"]:
            allowed = {"hook-disabled"} if hook["name"] == "nohook_pre" else {"no-traffic"}
            assert set(codes(hook["reasons"])) <= allowed, (api_id, hook)


@pytest.mark.parametrize(
    "case",
    [
        Case("catalog_order_keyless", api="keyless"),
        Case("catalog_order_auth", api="auth", headers={"Authorization": "key-1"}, hooks={"auth": edit(allow())}),
        Case("catalog_order_oas", api="oas"),
    ],
    ids=lambda case: case.api,
)
def test_the_hooks_of_a_real_request_arrive_in_the_catalogs_order(env: Environment, case: Case) -> None:
    refreshed(env)
    result = env.run(case)
    assert not result.mismatches, result.mismatches
    seen = [(s["hook_type"], s["hook_name"]) for s in sorted(result.summaries, key=lambda s: s["id"])]
    configured = [(h["hook_type"], h["name"]) for h in apis_by_id(env)[case.api]["hooks"]]
    assert seen == configured


def test_a_wrong_secret_is_said_clearly(env: Environment) -> None:
    async def read() -> dict[str, Any]:
        reader = GatewayCatalog((env.gateway.url,), "not-the-secret")
        await reader.refresh()
        state: dict[str, Any] = reader.status()["gateways"][0]
        return state

    state = asyncio.run(read())
    assert state["ok"] is False and "refused the secret" in state["error"], state
    assert TykVersion.parse(state["version"]) == TykVersion.parse(env.version)  # /hello needs no secret
