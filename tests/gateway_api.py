"""A small real HTTP server answering `GET /hello` and `GET /tyk/apis` as a Tyk Gateway does.

The documents are written from the gateway's `apidef` Go structs (APIDefinition, MiddlewareSection,
MiddlewareDefinition, ProxyConfig, HealthCheckResponse) of two releases: 5.8 and 5.14. 5.14 adds
`json_rpc_version` / `application_protocol` (MCP APIs, listed only with `?include_types=mcp`),
`security_requirements` and `error_overrides`. A wrong or missing `x-tyk-authorization` gets the
gateway's 403 document.

Checked against a real Tyk Gateway 5.14.0 (tests/conformance/test_catalog.py): `/hello` says
"5.14.0" with no `v` and no `details` while health checks are off; a hook section with no hooks is
`null`, as is an empty `id_extractor.extractor_config`; a Tyk OAS API arrives with
`custom_middleware_bundle_disabled: true` and its `auth_check` and `id_extractor` disabled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORDERS_ID = "b84fe1a04e5648927971c0557971565c"  # the API of examples/*.json
PAYMENTS_ID = "7d1c3f0e9a2b4c6d8e0f1a2b3c4d5e6f"
LEGACY_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
BUNDLE_ID = "aa11bb22cc33dd44ee55ff6677889900"
MCP_ID = "ccddeeff00112233445566778899aabb"


def hook(name: str, **flags: bool) -> dict[str, Any]:
    """A MiddlewareDefinition."""
    return {
        "disabled": flags.get("disabled", False),
        "name": name,
        "path": "",
        "require_session": flags.get("require_session", False),
        "raw_body_only": flags.get("raw_body_only", False),
    }


def middleware(driver: str = "grpc", **sections: Any) -> dict[str, Any]:
    """A MiddlewareSection; the auth_check is an (empty) object when there is none."""
    oas = sections.get("oas", False)  # a Tyk OAS API's, converted: no auth_check or id_extractor is disabled
    return {
        "pre": sections.get("pre") or None,  # a Go nil slice
        "post": sections.get("post") or None,
        "post_key_auth": sections.get("post_key_auth") or None,
        "auth_check": sections.get(
            "auth_check", {"disabled": oas, "name": "", "path": "", "require_session": False, "raw_body_only": False}
        ),
        "response": sections.get("response") or None,
        "driver": driver,
        "id_extractor": {"disabled": oas, "extract_from": "", "extract_with": "", "extractor_config": None},
    }


def api(api_id: str, name: str, listen_path: str, version: str = "5.14", **fields: Any) -> dict[str, Any]:
    """An APIDefinition as /tyk/apis lists it (the fields this release has, most at their zero value)."""
    document: dict[str, Any] = {
        "id": "",
        "name": name,
        "expiration": "",
        "slug": name.lower().replace(" ", "-"),
        "listen_port": 0,
        "protocol": "",
        "enable_proxy_protocol": False,
        "api_id": api_id,
        "org_id": "5e9d9544a1dcd60001d0ed20",
        "use_keyless": fields.pop("use_keyless", False),
        "use_oauth2": False,
        "use_openid": False,
        "use_standard_auth": not fields.get("custom_plugin_auth_enabled", False),
        "use_basic_auth": False,
        "use_mutual_tls_auth": False,
        "enable_jwt": False,
        "use_go_plugin_auth": False,
        "enable_coprocess_auth": False,
        "custom_plugin_auth_enabled": fields.pop("custom_plugin_auth_enabled", False),
        "custom_middleware": fields.pop("custom_middleware", middleware(pre=[])),
        "custom_middleware_bundle": fields.pop("custom_middleware_bundle", ""),
        "custom_middleware_bundle_disabled": fields.pop("custom_middleware_bundle_disabled", False),
        "active": fields.pop("active", True),
        "internal": False,
        "proxy": {
            "preserve_host_header": False,
            "listen_path": listen_path,
            "target_url": "http://upstream:8080/",
            "disable_strip_slash": False,
            "strip_listen_path": True,
            "enable_load_balancing": False,
            "target_list": [],
            "check_host_against_uptime_tests": False,
            "service_discovery": {
                "use_discovery_service": False,
                "query_endpoint": "",
                "use_nested_query": False,
                "parent_data_path": "",
                "data_path": "",
                "port_data_path": "",
                "target_path": "",
                "use_target_list": False,
                "cache_disabled": False,
                "cache_timeout": 0,
                "endpoint_returns_list": False,
            },
            "transport": {
                "ssl_insecure_skip_verify": False,
                "ssl_ciphers": None,
                "ssl_min_version": 0,
                "ssl_max_version": 0,
                "ssl_force_common_name_check": False,
                "proxy_url": "",
            },
        },
        "version_data": {"not_versioned": True, "default_version": "", "versions": {"Default": {"name": "Default"}}},
        "config_data": {},
        "config_data_disabled": False,
        "tags": [],
        "event_handlers": {"events": {}},
        "detailed_tracing": False,
    }
    if fields.pop("is_oas", False):
        document["is_oas"] = True  # `json:"is_oas,omitempty"`
        document["custom_middleware_bundle_disabled"] = True  # what the conversion sets when no bundle is named
    if version == "5.14":
        document["security_requirements"] = None
        document["error_overrides"] = None
        document["error_overrides_disabled"] = False
        if fields.pop("mcp", False):
            document["json_rpc_version"] = "2.0"
            document["application_protocol"] = "mcp"
    document.update(fields)
    return document


def catalog(version: str) -> list[dict[str, Any]]:
    """The APIs of a gateway of this release (5.8 or 5.14), one for each thing the hooks view explains."""
    apis = [
        api(
            ORDERS_ID,
            "Orders API",
            "/orders/",
            version,
            custom_plugin_auth_enabled=True,
            custom_middleware=middleware(
                pre=[hook("MyPreHook"), hook("SessionFirst", require_session=True)],
                auth_check=hook("MyAuthCheck"),
                post_key_auth=[hook("MyPostKeyAuthHook")],
                post=[hook("RetiredHook", disabled=True)],
                response=[hook("MyResponseHook", raw_body_only=True)],
            ),
        ),
        api(
            PAYMENTS_ID,
            "Payments",
            "/payments/",
            version,
            use_keyless=True,
            is_oas=True,
            custom_middleware=middleware(
                driver="",
                oas=True,
                pre=[hook("PayPre")],
                auth_check=hook("PayAuth"),
                post_key_auth=[hook("PayPostAuth")],
            ),
        ),
        api(
            LEGACY_ID,
            "Legacy Python",
            "/legacy/",
            version,
            active=False,
            custom_middleware=middleware(driver="python", pre=[hook("LegacyPre")]),
        ),
        api(
            BUNDLE_ID,
            "Bundled",
            "/bundled/",
            version,
            custom_middleware_bundle="bundle-v1.zip",
            custom_middleware=middleware(driver="grpc"),
        ),
    ]
    if version == "5.14":
        apis.append(
            api(MCP_ID, "Tools MCP", "/mcp/", version, mcp=True, custom_middleware=middleware(pre=[hook("McpPre")]))
        )
    return apis


def hello(version: str) -> dict[str, Any]:
    """A HealthCheckResponse. A 5.14.0 gateway says "5.14.0"; the 5.8 document spells it with a
    `v`, so that spelling stays read too."""
    return {
        "status": "pass",
        "version": f"v{version}.0" if version == "5.8" else f"{version}.0" if version.count(".") == 1 else version,
        "description": "Tyk GW",
        "details": {"redis": {"status": "pass", "componentType": "datastore", "time": "2026-12-07T12:00:00Z"}},
    }


@dataclass
class FakeGateway:
    """What the server answers; change it while it runs."""

    version: str = "5.14"
    secret: str = "gateway-secret-123"
    apis: list[dict[str, Any]] | None = None
    apis_status: int | None = None
    """Answer /tyk/apis with this status instead (404: no Gateway API on this port)."""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def listed(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        apis = self.apis if self.apis is not None else catalog(self.version)
        types = ",".join(query.get("include_types", [])).split(",")
        return [a for a in apis if a.get("application_protocol") != "mcp" or "mcp" in types]


@contextmanager
def fake_gateway(gateway: FakeGateway | None = None) -> Iterator[FakeGateway]:
    """Serve `gateway` on 127.0.0.1, on a free port, until the block ends."""
    state = gateway or FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if parts.path == "/hello":
                self._send(200, hello(state.version))
            elif parts.path == "/tyk/apis":
                if state.apis_status is not None:
                    self._send(state.apis_status, {"status": "error", "message": "Not Found"})
                elif self.headers.get("x-tyk-authorization") != state.secret:
                    refusal = "Attempted administrative access with invalid or missing key!"
                    self._send(403, {"status": "error", "message": refusal})
                else:
                    self._send(200, state.listed(parse_qs(parts.query)))
            else:
                self._send(404, {"status": "error", "message": "Not Found"})

        def _send(self, status: int, document: object) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what the tests assert

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-gateway", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
