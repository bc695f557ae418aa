"""The real parts of the conformance suite: Tyk Gateway, a recording upstream, a plugin, the inspector.

Everything runs on loopback ports chosen by the OS: Debian's redis-server, the gateway binary
with a generated tyk.conf and API definitions, an HTTP upstream that records what it receives
and answers what the case says, a gRPC plugin written in the test (its behaviour per hook name
set by each case), and the inspector as a user runs it (`main.py serve --upstream <plugin>`)
between the gateway and the plugin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx

from protogen import coprocess_object_pb2 as pb
from protogen import coprocess_object_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VERSION = "5.14.0"
REFUSED = "refused by the Go module proxy"
"""The one reason a gateway test may skip under CI=true (docs/conformance.md)."""
SECRET = "conformance-secret"
ORG_ID = "default"
LISTENING = re.compile(r"gRPC Dispatcher on \S+:(\d+), dashboard at (http://\S+)")

Behaviour = Callable[[pb.Object], pb.Object]


def deadline_wait(predicate: Callable[[], Any], within: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `within` seconds."""
    end = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.01)  # polling interval of a deadline wait, not a synchronisation


# --- which gateway --------------------------------------------------------------------------------


def end_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(15)


@dataclass(frozen=True)
class GatewayBinary:
    version: str
    path: Path | None
    templates: Path | None
    reason: str = ""
    """Why there is no binary (path None): one line naming what to do."""


def find_gateway() -> GatewayBinary:
    """TYK_GATEWAY_BIN, else the one `make gateway` built for TYK_VERSION; or the reason there is none."""
    version = os.environ.get("TYK_VERSION", DEFAULT_VERSION)
    given = os.environ.get("TYK_GATEWAY_BIN")
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tyk-inspector" / "gateway"
    cache = Path(os.environ.get("TYK_GATEWAY_CACHE", cache_root)) / version
    binary = Path(given) if given else cache / "tyk"
    how = "run `make gateway`, or TYK_GATEWAY_BIN=/path/to/tyk TYK_VERSION=X.Y.Z make conformance"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        note = cache / "unavailable"
        if not given and note.is_file():
            refused = note.read_text().strip()
            how = "run the suite with TYK_GATEWAY_BIN=/path/to/tyk TYK_VERSION=X.Y.Z make conformance"
            return GatewayBinary(version, None, None, f"Tyk Gateway {version}: {refused}; {how}")
        where = f"TYK_GATEWAY_BIN={given} is not an executable" if given else f"no Tyk Gateway {version} in {cache}"
        return GatewayBinary(version, None, None, f"{where}; {how}")
    templates = Path(os.environ.get("TYK_GATEWAY_TEMPLATES", binary.parent / "templates"))
    if not (templates / "error.json").is_file():
        return GatewayBinary(
            version, None, None,
            f"no error templates at {templates} (the gateway's templates/ directory): set TYK_GATEWAY_TEMPLATES",
        )  # fmt: skip
    return GatewayBinary(version, binary, templates)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the upstream -----------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "application/json")])
    body: bytes = b'{"upstream": true}'


class Upstream:
    """An HTTP/1.1 server that records every request and answers with `answer`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer = Answer()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                upstream.received.append(Received(self.command, self.path, list(self.headers.items()), body))
                answer = upstream.answer
                self.send_response_only(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                if not any(n.lower() == "content-length" for n, _ in answer.headers):
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the plugin -----------------------------------------------------------------------------------


class Plugin(pb_grpc.DispatcherServicer):
    """The plugin server behind the inspector: each hook name answered by the case's behaviour (echo by default)."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self.calls: list[tuple[pb.Object, pb.Object | None]] = []
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        pb_grpc.add_DispatcherServicer_to_server(self, self.server)  # type: ignore[no-untyped-call]
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def reset(self, behaviours: dict[str, Behaviour] | None = None) -> None:
        with self.lock:
            self.behaviours = dict(behaviours or {})
            self.calls = []
            self.events = []

    def Dispatch(self, request: pb.Object, context: grpc.ServicerContext) -> pb.Object:
        sent = pb.Object()
        sent.CopyFrom(request)
        behaviour = self.behaviours.get(request.hook_name)
        try:
            reply = behaviour(request) if behaviour else request
        except Exception:
            with self.lock:
                self.calls.append((sent, None))
            raise
        with self.lock:
            self.calls.append((sent, reply))
        return reply

    def DispatchEvent(self, request: pb.Event, context: grpc.ServicerContext) -> pb.EventReply:
        with self.lock:
            self.events.append(request.payload)
        return pb.EventReply()


# --- the inspector ----------------------------------------------------------------------------------


class InspectorProcess:
    """`main.py serve` as a user starts it, in front of the plugin (--upstream), redaction on (the default)."""

    def __init__(
        self,
        plugin_port: int,
        tyk_version: str,
        log_path: Path,
        gateway_url: str | None = None,
        options: list[str] | None = None,
    ) -> None:
        """`options`: more `serve` options, e.g. `--otel-endpoint URL`."""
        self.log_path = log_path
        self.log = log_path.open("w+b")
        command = [
            sys.executable, str(ROOT / "main.py"), "serve", "--grpc-address", "127.0.0.1:0", "--http-port", "0",
            "--upstream", f"127.0.0.1:{plugin_port}", "--tyk-version", tyk_version, "--capture-log", "off",
        ]  # fmt: skip
        command += options or []
        environment = dict(os.environ)
        if gateway_url is not None:
            # The gateway's catalog (API names, hooks, /hello), its secret from the environment as a user would.
            command += ["--gateway-url", gateway_url]
            environment["TYK_INSPECTOR_GATEWAY_SECRET"] = SECRET
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log, cwd=ROOT, env=environment)
        match = deadline_wait(self._listening, 30, "the inspector to listen")
        self.grpc_port, self.url = int(match.group(1)), match.group(2)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def _listening(self) -> re.Match[str] | None:
        if self.process.poll() is not None:
            raise AssertionError("the inspector exited: " + self.log_path.read_text())
        return LISTENING.search(self.log_path.read_text(errors="replace"))

    def newest_id(self) -> int:
        items = self.http.get("/api/captures", params={"limit": 1}).json()["items"]
        return int(items[0]["id"]) if items else 0

    def captures_after(self, after: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.http.get("/api/captures", params={"after": after, "limit": 100}).json()[
            "items"
        ]
        return items

    def detail(self, capture_id: int) -> dict[str, Any]:
        detail: dict[str, Any] = self.http.get(f"/api/captures/{capture_id}").json()
        return detail

    def stop(self) -> None:
        self.http.close()
        end_process(self.process)
        self.log.close()


# --- the gateway ------------------------------------------------------------------------------------


def _middleware(prefix: str, *, pre: bool = True, post: bool = True, response: bool = True) -> dict[str, Any]:
    definition: dict[str, Any] = {"driver": "grpc"}
    if pre:
        definition["pre"] = [{"name": f"{prefix}_pre"}]
    if post:
        definition["post"] = [{"name": f"{prefix}_post"}]
    if response:
        definition["response"] = [{"name": f"{prefix}_response"}]
    return definition


def classic_api(
    api_id: str,
    upstream_port: int,
    *,
    keyless: bool = True,
    extended: dict[str, Any] | None = None,
    middleware: dict[str, Any] | None = None,
    events: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Tyk Classic API definition with gRPC hooks named `<api_id>_<hook>`; listen path /<api_id>/."""
    api: dict[str, Any] = {
        "name": api_id,
        "api_id": api_id,
        "org_id": ORG_ID,
        "active": True,
        "use_keyless": keyless,
        "version_data": {
            "not_versioned": True,
            "default_version": "Default",
            "versions": {"Default": {"name": "Default", "use_extended_paths": True, "extended_paths": extended or {}}},
        },
        # The Host the client sent reaches the upstream, as the Object shows it (docs/conformance.md).
        "proxy": {
            "listen_path": f"/{api_id}/",
            "target_url": f"http://127.0.0.1:{upstream_port}",
            "strip_listen_path": False,
            "preserve_host_header": True,
        },
        "custom_middleware": middleware or _middleware(api_id),
        "event_handlers": {"events": events or {}},
    }
    api.update(extra or {})
    return api


def auth_api(api_id: str, upstream_port: int, *, id_extractor: bool = False) -> dict[str, Any]:
    """Custom auth with the gRPC driver: auth_check, post_key_auth, post and response hooks, coprocess events."""
    middleware = _middleware(api_id)
    middleware["auth_check"] = {"name": f"{api_id}_auth"}
    middleware["post_key_auth"] = [{"name": f"{api_id}_postauth"}]
    if id_extractor:
        middleware["id_extractor"] = {
            "extract_from": "header",
            "extract_with": "value",
            "extractor_config": {"header_name": "Authorization"},
        }
    handler = [{"handler_name": "cp_dynamic_handler", "handler_meta": {"name": f"{api_id}_event"}}]
    events = {name: handler for name in ("AuthFailure", "KeyExpired", "RatelimitExceeded")}
    return classic_api(
        api_id,
        upstream_port,
        keyless=False,
        middleware=middleware,
        events=events,
        extra={"custom_plugin_auth_enabled": True, "enable_coprocess_auth": True},
    )


def oas_api(api_id: str, upstream_port: int) -> dict[str, Any]:
    """A Tyk OAS API definition with gRPC Pre, Post and Response plugins named `<api_id>_<hook>`."""
    return {
        "openapi": "3.0.3",
        "info": {"title": api_id, "version": "1.0.0"},
        "paths": {},
        "x-tyk-api-gateway": {
            "info": {"id": api_id, "name": api_id, "orgId": ORG_ID, "state": {"active": True}},
            "upstream": {"url": f"http://127.0.0.1:{upstream_port}", "preserveHostHeader": {"enabled": True}},
            "server": {"listenPath": {"value": f"/{api_id}/", "strip": False}},
            "middleware": {
                "global": {
                    "pluginConfig": {"driver": "grpc"},
                    "prePlugins": [{"enabled": True, "functionName": f"{api_id}_pre", "path": ""}],
                    "postPlugins": [{"enabled": True, "functionName": f"{api_id}_post", "path": ""}],
                    "responsePlugins": [{"enabled": True, "functionName": f"{api_id}_response", "path": ""}],
                }
            },
        },
    }


class Gateway:
    """The Tyk Gateway binary with a generated tyk.conf; Classic API definitions from `apis` (files in app_path),
    Tyk OAS ones from `oas` (created through the gateway's API, as its files need the gateway's own split);
    `conf` adds or replaces top-level tyk.conf settings (e.g. `opentelemetry`)."""

    def __init__(
        self,
        binary: GatewayBinary,
        directory: Path,
        redis_port: int,
        grpc_port: int,
        apis: list[dict[str, Any]],
        oas: list[dict[str, Any]] | None = None,
        port: int | None = None,
        conf: dict[str, Any] | None = None,
    ) -> None:
        assert binary.path is not None and binary.templates is not None
        self.port = port or free_port()
        apps = directory / "apps"
        apps.mkdir(parents=True, exist_ok=True)
        for api in apis:
            (apps / f"{api['api_id']}.json").write_text(json.dumps(api, indent=2))
        (directory / "middleware").mkdir(exist_ok=True)
        (directory / "policies").mkdir(exist_ok=True)
        (directory / "policies" / "policies.json").write_text("{}")
        settings = {
            "listen_address": "127.0.0.1",
            "listen_port": self.port,
            "secret": SECRET,
            "node_secret": SECRET,
            "template_path": str(binary.templates),
            "use_db_app_configs": False,
            "app_path": str(apps),
            "middleware_path": str(directory / "middleware"),
            "policies": {"policy_source": "file", "policy_record_name": str(directory / "policies" / "policies.json")},
            "storage": {"type": "redis", "host": "127.0.0.1", "port": redis_port, "database": 0},
            "enable_analytics": False,
            "enable_coprocess": True,
            "coprocess_options": {"enable_coprocess": True, "coprocess_grpc_server": f"tcp://127.0.0.1:{grpc_port}"},
            "enable_bundle_downloader": False,
            "hash_keys": True,
            "health_check": {"enable_health_checks": False},
            "pid_file_location": str(directory / "tyk.pid"),
            "log_level": "info",
        }
        settings.update(conf or {})
        (directory / "tyk.conf").write_text(json.dumps(settings, indent=2))
        self.log_path = directory / "gateway.log"
        self.log = self.log_path.open("w+b")
        self.process = subprocess.Popen(
            [str(binary.path), "--conf", str(directory / "tyk.conf")],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=directory,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline_wait(lambda: self._ready([api["api_id"] for api in apis]), 60, "the gateway and its APIs")
        admin = {"x-tyk-authorization": SECRET}
        oas = oas or []
        for definition in oas:
            created = self.client.post("/tyk/apis/oas", json=definition, headers=admin)
            assert created.status_code == 200, created.text
        if oas:
            self.client.get("/tyk/reload/group", headers=admin)
            ids = [api["api_id"] for api in apis] + [d["x-tyk-api-gateway"]["info"]["id"] for d in oas]
            deadline_wait(lambda: self._ready(ids), 60, "the Tyk OAS APIs")

    def _ready(self, api_ids: list[str]) -> bool:
        if self.process.poll() is not None:
            raise AssertionError("the gateway exited: " + self.log_path.read_text(errors="replace")[-4000:])
        try:
            found = self.client.get("/tyk/apis", headers={"x-tyk-authorization": SECRET})
        except httpx.TransportError:
            return False
        if found.status_code != 200:
            return False
        loaded = {api.get("api_id") for api in found.json()}
        return all(api_id in loaded for api_id in api_ids)

    def stop(self) -> None:
        self.client.close()
        end_process(self.process)
        self.log.close()


# --- one request through it all ---------------------------------------------------------------------


@dataclass
class ClientSaw:
    """What the client received; `dropped` when the connection closed with no response."""

    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    dropped: bool = False


def send(gateway: Gateway, method: str, path: str, headers: dict[str, str], body: bytes) -> ClientSaw:
    """One request, the raw response bytes kept (no decoding of Content-Encoding)."""
    gateway.client.cookies.clear()  # each request as its own client: no cookies from earlier Set-Cookie
    try:
        with gateway.client.stream(method, path, headers=headers, content=body or None) as response:
            raw = b"".join(response.iter_raw())
            pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
            return ClientSaw(response.status_code, pairs, raw)
    except httpx.RemoteProtocolError:
        return ClientSaw(None, [], b"", dropped=True)
