"""Settings: one frozen value object, built by the CLI and passed down explicitly."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from app.tyk.version import LATEST, TykVersion

MiB = 1024 * 1024

LogFormat = Literal["text", "json"]
CaptureLog = Literal["off", "auto", "line", "json"]
EventLoop = Literal["auto", "asyncio", "uvloop"]

DEFAULT_GRPC_ADDRESS = "[::]:50051"
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GATEWAY_URL = "http://localhost:8080"
DEFAULT_BUFFER_ITEMS = 10_000
DEFAULT_BUFFER_BYTES = 256 * MiB
# Request and response bodies travel inside the Object, and tens of MiB happen;
# Tyk's own tests run with 100,000,000 bytes on both sides.
DEFAULT_MAX_MESSAGE_BYTES = 100_000_000
# Room for a few calls of the largest size waiting on slow plugin servers at once.
DEFAULT_MAX_INFLIGHT_BYTES = 256 * MiB
# An access token that can be guessed is no token: beyond loopback it must be at least this long.
MIN_TOKEN_CHARS = 16
DEFAULT_STORE_PREFIX = "tyk-inspector"
STORE_SETTING = "--store / TYK_INSPECTOR_STORE"
# What a rediss:// --store URL may say after "?" (redis-py reads them from the URL): the CA that
# signed the server's certificate, a client certificate, and how strictly to check.
STORE_TLS_FILES = {"ssl_ca_certs": "file", "ssl_certfile": "file", "ssl_keyfile": "file", "ssl_ca_path": "directory"}
STORE_TLS_OPTIONS = frozenset({*STORE_TLS_FILES, "ssl_cert_reqs", "ssl_check_hostname"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the inspector needs to run; defaults suit a developer's laptop."""

    grpc_address: str = DEFAULT_GRPC_ADDRESS
    """TCP address of the Dispatcher service; empty to listen on the unix socket only."""
    grpc_unix_socket: str | None = None
    """Optional unix socket path, for tyk.conf `coprocess_grpc_server: unix:///path`."""
    http_host: str = DEFAULT_HTTP_HOST
    http_port: int = DEFAULT_HTTP_PORT
    buffer_items: int = DEFAULT_BUFFER_ITEMS
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    capture_log: CaptureLog = "auto"
    """Console output: nothing; a line per capture up to `capture_log_rate` a second, then a summary a
    second ("auto"); a line for every capture ("line"); or every capture's full protobuf JSON ("json")."""
    capture_log_rate: int = 20
    """Lines a second the "auto" console log writes one by one before it summarises."""
    sse_queue_size: int = 1_000
    """Captures queued per browser before it is treated as lagging and resynced from the buffer."""
    sse_batch_seconds: float = 0.02
    """Captures arriving within this window after a batch go out together, to browsers and the console."""
    sse_flood_rate: int = 2_500
    """Captures a second past which batches go out every `sse_flood_batch_seconds` instead: a page
    draws new rows ten times a second, so each browser's stream (and the console) wakes as often."""
    sse_flood_batch_seconds: float = 0.1
    """The batching window in a flood."""
    sse_full_rate: int = 1_000
    """Captures a second the live stream sends in full; past it a batch sends its newest captures and
    the range of the others, which a page fetches through the API (a page shows a few dozen rows).
    A batch carries `sse_tail_after` in full, so in a flood (a batch every `sse_flood_batch_seconds`)
    the stream sends fewer in full: the newest 20 of each batch by default."""
    sse_ping_seconds: float = 15.0
    sse_send_timeout_seconds: float = 30.0
    shutdown_grace_seconds: float = 5.0
    event_loop: EventLoop = "auto"
    """uvloop when installed ("auto"), else asyncio's own loop; both servers share it either way."""
    max_import_bytes: int = 512 * MiB
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    """Message bytes of calls not answered yet; a call beyond it gets RESOURCE_EXHAUSTED."""
    detail_cache_bytes: int = 64 * MiB
    """Detail documents kept ready for the page, by total size."""
    auth_token: str | None = None
    """Required on every web request when set (cookie from /login, or `Authorization: Bearer`)."""
    session_seconds: float = 12 * 3600
    """How long a login (the session cookie) lasts."""
    allow_no_auth: bool = False
    """Explicitly accept serving captures without a token on a non-loopback address."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header values accepted besides localhost and the bind address; '*' accepts any."""
    redact: bool = True
    """Hide credentials in the page, the API and exports (never in what the gateway gets back)."""
    redact_strict: bool = False
    """No way around redaction from the page or API: no reveal of one value, no copy with secrets."""
    redact_headers: tuple[str, ...] = ()
    """Header names to redact besides Authorization, Cookie and Proxy-Authorization."""
    redact_metadata: tuple[str, ...] = ()
    """Object, session and gRPC call metadata keys to redact."""
    redact_query: tuple[str, ...] = ()
    """Query keys to redact (in url, request_uri and params) besides the built-in credential names."""
    redact_body: tuple[str, ...] = ()
    """JSON keys (anywhere) or dotted JSON paths from the root ('*' for any key) to redact in bodies."""
    http_header_timeout_seconds: float = 10.0
    """A connection whose request headers are not complete this long after its first byte is closed."""
    http_keep_alive_seconds: int = 5
    """An idle keep-alive connection is closed after this long."""
    http_max_connections: int = 1000
    """HTTP connections open at most; at the cap a new one pushes out the oldest idle one."""
    tls_cert: str | None = None
    tls_key: str | None = None
    upstream: str | None = None
    """Proxy mode: forward every call to this plugin server (HOST:PORT) unless rules say otherwise."""
    rules_file: str | None = None
    """Routing rules (YAML or JSON), reloaded when the file changes."""
    rules_poll_seconds: float = 1.0
    replay_allow: tuple[str, ...] = ()
    """Plugin servers (HOST:PORT) replay may reach besides --upstream, rule targets and loopback."""
    replay_anywhere: bool = False
    """Let replay reach any target it is given."""
    tyk_version: str = LATEST
    tag_requests: bool = False
    """Add X-Tyk-Inspector-Request through the reply of Pre hooks the inspector answers (echo or
    mock), so a request's journey is certain; changes the traffic the upstream sees."""
    tyk_version_given: bool = False
    """--tyk-version was set: a gateway's /hello informs but does not change the model."""
    gateway_url: str = DEFAULT_GATEWAY_URL
    """The gateway's base URL, for "copy as curl"."""
    gateway_urls: tuple[str, ...] = ()
    """Gateways whose /hello and /tyk/apis the inspector reads (API names, configured hooks, version)."""
    gateway_secret: str | None = field(default=None, repr=False)
    """The gateway's `secret`, sent as x-tyk-authorization to /tyk/apis; never logged or shown."""

    shadow: str | None = None
    """--shadow HOST:PORT: after the gateway has its answer, send the same Object there and compare outcomes."""
    shadow_deadline_seconds: float = 5.0
    """Each shadow call's own deadline."""
    otel_endpoint: str | None = None
    """OTLP/gRPC collector (http://HOST:4317) every call is exported to as a span (app.telemetry)."""
    otel_export_seconds: float = 1.0
    """How often spans are sent to the collector (sooner when a batch is full)."""
    shadow_queue_items: int = 1000
    """Answered calls waiting for the shadow at most; beyond it their shadow call is dropped and counted."""

    intercept: str = ""
    """--intercept QUERY: hold the gateway's Dispatch calls this filter matches (app.proxy.intercept); "" none."""
    intercept_points: tuple[str, ...] = ("before", "after")
    """Where calls are held: "before" the plugin (proxy mode) and "after" it."""
    intercept_timeout_seconds: float = 30.0
    """A held call continues by itself after this long."""
    intercept_max: int = 50
    """Calls held at most at once; past it matching calls pass through unheld (and are counted)."""

    store: str = "memory"
    """Where captures live: "memory" (this process), or a Redis URL shared by every replica."""
    store_prefix: str = DEFAULT_STORE_PREFIX
    """Redis keys are <prefix>:captures, <prefix>:sizes, ...: one prefix per group of replicas."""
    store_queue_items: int = 10_000
    """Captures waiting for Redis at most; beyond that (Redis slow or down) new ones are dropped and counted."""
    store_queue_bytes: int = 64 * MiB

    @property
    def sse_tail_after(self) -> int:
        """Captures a live batch carries in full; a larger batch is sent as its tail."""
        return max(1, round(self.sse_full_rate * self.sse_batch_seconds))

    @property
    def redis_url(self) -> str | None:
        return None if self.store == "memory" else self.store

    @property
    def http_is_loopback(self) -> bool:
        return is_loopback(self.http_host)

    def __post_init__(self) -> None:
        if not self.grpc_address and not self.grpc_unix_socket:
            raise ValueError("set --grpc-address or --grpc-unix: the Dispatcher needs somewhere to listen")
        check_store_url(self.store)
        if not self.store_prefix or any(c.isspace() for c in self.store_prefix):
            raise ValueError("--store-prefix must be a non-empty name without spaces")
        for name in (
            "buffer_items", "buffer_bytes", "max_message_bytes", "sse_queue_size", "sse_full_rate",
            "sse_flood_rate",
            "sse_flood_batch_seconds",
            "max_inflight_bytes",
            "detail_cache_bytes",
            "http_header_timeout_seconds",
            "http_keep_alive_seconds",
            "http_max_connections",
            "store_queue_items",
            "store_queue_bytes",
            "shadow_deadline_seconds",
            "shadow_queue_items",
            "intercept_timeout_seconds",
            "intercept_max",
        ):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")
        if not 0 <= self.http_port <= 65535:
            raise ValueError("http-port must be between 0 and 65535")
        TykVersion.parse(self.tyk_version)  # a ValueError names the expected form
        for url in self.gateway_urls:
            if "@" in urlsplit(url).netloc:
                raise ValueError(
                    f"--gateway-url {urlsplit(url).hostname}: no credentials in the URL (they would be shown "
                    "and logged); give the gateway's secret with --gateway-secret-file or TYK_INSPECTOR_GATEWAY_SECRET"
                )
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(
                    f"--gateway-url {url!r} is not an http:// or https:// URL (e.g. http://localhost:8080)"
                )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.auth_token is not None and not self.http_is_loopback and len(self.auth_token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"--auth-token has {len(self.auth_token)} characters: beyond loopback it needs at least "
                f"{MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)"
            )
        if not self.http_is_loopback and not self.auth_token and not self.allow_no_auth:
            raise ValueError(
                f"--http-host {self.http_host} would show captured traffic (keys, sessions, bodies) to anyone who "
                "can reach it: set --auth-token (TYK_INSPECTOR_AUTH_TOKEN), or pass --no-auth to accept that"
            )


def check_store_url(store: str) -> None:
    """Refuse a --store value that is neither "memory" nor a Redis URL, naming the setting."""
    if store == "memory":
        return
    try:
        parts = urlsplit(store)
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{STORE_SETTING}: {store!r} is not a URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"{STORE_SETTING}: {store!r} is neither memory nor a Redis URL (redis://HOST:PORT/DB, rediss://, unix://)"
        )
    _check_store_options(parts.scheme, parts.query)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{STORE_SETTING}: {store!r} names no socket path (unix:///path/redis.sock)")
        return
    if not parts.hostname:
        raise ValueError(f"{STORE_SETTING}: {store!r} names no host (redis://HOST:PORT/DB)")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f"{STORE_SETTING}: the database in {store!r} must be a number (redis://HOST:PORT/0)")


def _check_store_options(scheme: str, query: str) -> None:
    # An option redis-py does not know fails every connection with a TypeError; a CA file that is
    # not there fails them as if Redis were away. Either is a setting to fix, said at start.
    allowed = {"db", *(STORE_TLS_OPTIONS if scheme == "rediss" else ())}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            takes = "db; with rediss:// also " + ", ".join(sorted(STORE_TLS_OPTIONS))
            raise ValueError(f"{STORE_SETTING}: the URL option {name!r} is not one the store knows ({takes})")
        kind = STORE_TLS_FILES.get(name)
        if kind is not None and not (os.path.isdir(value) if kind == "directory" else os.path.isfile(value)):
            raise ValueError(f"{STORE_SETTING}: {name}={value} is not a {kind}")
        if name == "ssl_cert_reqs" and value not in ("none", "optional", "required"):
            raise ValueError(f"{STORE_SETTING}: ssl_cert_reqs must be none, optional or required")
        if name == "db" and not value.isdigit():
            raise ValueError(f"{STORE_SETTING}: db must be a number")


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
