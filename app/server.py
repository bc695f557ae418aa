"""Run the gRPC Dispatcher and the web app on one event loop; stop both cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from grpc_health.v1 import health_pb2
from redis.exceptions import RedisError

from app.capture.record import Capture, Recorder
from app.config import Settings
from app.grpc_service import BindError, DispatcherService, GrpcListener, create_grpc_server
from app.health import HealthCollector
from app.live.broadcast import Broadcaster, Subscription
from app.live.capture_log import run_capture_log
from app.live.wiring import wire
from app.metrics import CallMetrics, create_registry
from app.proxy.intercept import InterceptCollector, Interceptor
from app.proxy.intercept_shared import SharedQuery
from app.proxy.replay import Replayer
from app.proxy.rules import Rule, Rules, RulesError, load_rules, proxy_all
from app.proxy.shadow import Shadow, ShadowCollector, ShadowConfig
from app.proxy.targets import ReplayTargets
from app.proxy.upstream import UpstreamPool
from app.store.buffer import CaptureStore, RingBuffer
from app.store.redis_keys import RedisStoreConfig, StoreError
from app.store.redis_store import RedisStore
from app.supervisor import Supervisor
from app.tyk.outcome import Gateway
from app.tyk.protocol import SERVICE_NAME
from app.tyk.version import TykVersion
from app.web import create_app
from app.web.connections import ConnectionGuard
from app.web.context import WebContext

if TYPE_CHECKING:
    from app.telemetry import Telemetry
SWITCH_INTERVAL_SECONDS = 0.001
"""How long a worker thread may keep the interpreter lock while the loop waits for it."""

log = logging.getLogger("tyk_inspector")


class _UvicornServer(uvicorn.Server):
    """uvicorn.Server that leaves the signals to us.

    Server.serve() installs its own SIGINT/SIGTERM handlers and re-raises the signal
    after it returns, which would kill the process before our cleanup runs.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Inspector:
    """The whole inspector: capture store, broadcaster, gRPC server and web server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor = Supervisor()
        """Owns every long-lived piece: the Redis reader and writer, the rules watcher, the console log (tasks),
        the broadcaster and the worker-process pool (closed at shutdown)."""
        self.broadcaster = Broadcaster(
            settings.sse_queue_size,
            settings.sse_batch_seconds,
            flood_rate=settings.sse_flood_rate,
            flood_batch_seconds=settings.sse_flood_batch_seconds,
        )
        self.redis_store = create_redis_store(settings)
        self.store: CaptureStore = self.redis_store or RingBuffer(settings.buffer_items, settings.buffer_bytes)
        wire(self.store, self.broadcaster)
        self.upstreams = UpstreamPool(settings.max_message_bytes)
        self.calls = CallMetrics()
        self.metrics = create_registry(self.calls, self.store, self.broadcaster)
        self.service = DispatcherService(
            self.record,
            initial_rules(settings),
            self.upstreams,
            max_inflight_bytes=settings.max_inflight_bytes,
            tag_requests=settings.tag_requests,
        )
        self.interceptor = create_interceptor(settings, self.broadcaster, self.service)
        self.metrics.register(InterceptCollector(self.interceptor))
        self.shared_intercept: SharedQuery | None = None
        """With --store redis://: the intercept query every replica applies."""
        if self.redis_store is not None:
            key = self.redis_store.config.key("intercept")
            self.shared_intercept = SharedQuery(self.redis_store.config.url, key, self.interceptor)
            self.interceptor.share = self.shared_intercept.publish
        self.telemetry = create_telemetry(settings)
        if self.telemetry is not None:
            from app.telemetry import TelemetryCollector

            self.metrics.register(TelemetryCollector(self.telemetry))
        self.shadow = create_shadow(settings, self.upstreams, self.record)
        if self.shadow is not None:
            self.service.shadow = self.shadow
            self.metrics.register(ShadowCollector(self.shadow))
        targets = ReplayTargets(settings.upstream, settings.replay_allow, settings.replay_anywhere)
        self.replayer = Replayer(self.upstreams, self.record, self.service.rules, targets)
        self.metrics.register(
            HealthCollector(
                self.supervisor,
                lambda: self.service.rule_errors,
                lambda: self.redis_store.unreadable if self.redis_store is not None else 0,
            )
        )
        self.rules_status = RulesStatus(settings.rules_file)
        self.grpc: GrpcListener | None = None
        self.http_port = 0
        self._http: _UvicornServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.connections: ConnectionGuard | None = None
        self.web: WebContext | None = None

    def record(self, capture: Capture) -> None:
        """Keep a capture (the store tells the live views once it has its id). On the Dispatch path: never blocks."""
        if capture.replay_of is None:  # calls from the gateway, not replays made from the page
            self.calls.observe(capture)
        self.store.add(capture)
        if self.telemetry is not None:
            self.telemetry.observe(capture)

    @property
    def grpc_port(self) -> int | None:
        return self.grpc.port if self.grpc else None

    @property
    def http_url(self) -> str:
        host = self.settings.http_host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.settings.tls_cert else "http"
        return f"{scheme}://{host}:{self.http_port}"

    async def start(self) -> None:
        """Bind both listeners and start serving. Raises BindError or StoreError naming the setting to change."""
        settings = self.settings
        _check_tls(settings)  # before anything listens or says where the dashboard is
        if self.redis_store is not None:
            await self.redis_store.start(self.supervisor)
        if self.shared_intercept is not None:
            await self._share_intercept(self.shared_intercept)
        http_socket = _listen_http(settings.http_host, settings.http_port)
        self.http_port = http_socket.getsockname()[1]
        try:
            self.grpc = create_grpc_server(settings, self.service)
            await self.grpc.server.start()
            if settings.grpc_unix_socket:
                # Only this user may talk to the Dispatcher (or send it anything) through the socket.
                os.chmod(settings.grpc_unix_socket, 0o600)
            for service in ("", SERVICE_NAME):
                await self.grpc.health.set(service, health_pb2.HealthCheckResponse.SERVING)
            self.web = context = WebContext(
                self.store,
                self.broadcaster,
                settings,
                grpc_port=self.grpc.port,
                replayer=self.replayer,
                metrics=self.metrics,
                health=self.health,
                offloader=self.service.offloader,  # one pool for large Dispatch reads and the page's work
                interceptor=self.interceptor,
            )
            self.interceptor.searcher.apis = context.catalog  # `api:` by name, as in the search
            self.interceptor.shown_path = context.redactor.url
            self.interceptor.configure(self.interceptor.query, self.interceptor.points)
            if self.shadow is not None:
                self.shadow.offload = context.offloader.run
            self.connections = ConnectionGuard(settings.http_header_timeout_seconds, _connection_cap(settings))
            config = uvicorn.Config(
                create_app(context),
                http=self.connections.protocol_class(),
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=settings.http_keep_alive_seconds,
                timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
                ssl_certfile=settings.tls_cert,
                ssl_keyfile=settings.tls_key,
            )
            config.load()  # what uvicorn would do in serve(): any error shows here, not after the banner
        except BaseException:
            # Nothing may stay bound when start fails: the caller exits or tries again.
            http_socket.close()
            if self.grpc is not None:
                await self.grpc.server.stop(None)
                self.grpc = None
            raise
        self._http = _UvicornServer(config)
        # The socket is already listening, so connections made before uvicorn's
        # first turn simply wait in the backlog.
        self._http_task = asyncio.create_task(self._http.serve(sockets=[http_socket]), name="http")
        redactor = context.redactor
        api_names = context.catalog.name_of
        # Subscribed now, not when the task first runs: captures recorded meanwhile are logged too.
        first: list[Subscription] = [] if settings.capture_log == "off" else [self.broadcaster.subscribe(browser=False)]
        self.supervisor.start(
            "console-log",
            lambda: run_capture_log(
                self.broadcaster,
                settings.capture_log,
                redactor,
                settings.capture_log_rate,
                api_names=api_names,
                subscription=first.pop() if first else None,  # a restart after a crash subscribes anew
            ),
            # It ends by itself once the broadcaster is closed, after writing the last batch: not cancelled mid-write.
            stop=self.broadcaster.close,
        )
        self.supervisor.on_stop("broadcaster", _soon(self.broadcaster.close))
        offloader = context.offloader
        self.supervisor.on_stop("offload-pool", offloader.aclose)
        if context.catalog.configured:
            self.supervisor.start("gateway-catalog", context.catalog.run)  # reads --gateway-url's catalog
        if settings.rules_file:
            self.rules_status.mtime = await asyncio.to_thread(_mtime, settings.rules_file)
            self.supervisor.start("rules-watcher", lambda: self._watch_rules(settings.rules_file or ""))
        if self.shadow is not None:
            for name in self.shadow.worker_names():
                self.supervisor.start(name, self.shadow.run_worker)
        if self.telemetry is not None:
            self.supervisor.start("otel-spans", self.telemetry.run)
        where = f"{settings.grpc_address.rsplit(':', 1)[0]}:{self.grpc.port}" if self.grpc.port else ""
        if settings.grpc_unix_socket:
            where = " and ".join(filter(None, [where, f"unix://{settings.grpc_unix_socket}"]))
        log.info("Tyk Inspector: gRPC Dispatcher on %s, dashboard at %s", where, self.http_url)
        if not settings.http_is_loopback and not settings.auth_token:
            log.warning(
                "SECURITY: the dashboard on %s has NO access token (--no-auth): anyone who can reach it sees "
                "every captured key, session and body. Set --auth-token unless this network is yours alone.",
                self.http_url,
            )
        if not settings.redact:
            log.warning("credentials are shown unredacted in the page, the API and exports (--no-redact)")
        if settings.auth_token and not settings.http_is_loopback and not settings.tls_cert:
            log.warning(
                "SECURITY: the access token and the captures cross the network in clear text (no --tls-cert): "
                "serve over HTTPS (--tls-cert/--tls-key) or behind a TLS-terminating proxy."
            )

    async def _share_intercept(self, shared: SharedQuery) -> None:
        """--intercept given: every replica takes it; else this one takes what the others share."""
        if self.settings.intercept:
            try:
                await shared.publish(self.interceptor.query, sorted(self.interceptor.points))
            except (RedisError, OSError) as exc:
                log.warning("--intercept applies to this replica only for now: Redis is not answering (%s)", exc)
        self.supervisor.start("intercept-sync", shared.run, stop=shared.stop)
        self.supervisor.on_stop("intercept-redis", shared.close)

    async def _watch_rules(self, path: str) -> None:
        """Reload the rules when the file changes; a bad edit is logged (and shown) and the old rules stay.

        The file's last seen state lives in `rules_status`, so a restarted watcher goes on from it.
        """
        status = self.rules_status
        while True:
            await asyncio.sleep(self.settings.rules_poll_seconds)
            current = await asyncio.to_thread(_mtime, path)
            if current == status.mtime:
                continue
            status.mtime = current
            try:
                rules = await asyncio.to_thread(load_rules, path, self.settings.upstream)
            except RulesError as exc:
                status.error = str(exc)
                log.error("rules not reloaded, the previous rules stay: %s", exc)
                continue
            except Exception as exc:
                # Not a problem of the file's that the checks know: said, then the supervisor logs it
                # with its traceback and starts the watcher again (from this edit on).
                status.error = f"the rules file could not be read: {type(exc).__name__}: {exc}"
                raise
            status.error = None
            status.reloads += 1
            self.service.rules = self.replayer.rules = rules
            log.info("rules reloaded from %s: %d rules, default %s", path, len(rules.rules), _describe(rules.default))

    def health(self) -> dict[str, Any]:
        """Degraded or not, each background task, and the rules file's state: for /api/stats and the page."""
        status = self.rules_status
        rules = None if status.file is None else {"file": status.file, "error": status.error, "reloads": status.reloads}
        return {**self.supervisor.health(), "rules": rules, "rule_errors": self.service.rule_errors}

    async def wait_http_closed(self) -> None:
        if self._http_task is not None:
            await self._http_task

    async def stop(self) -> None:
        """Stop taking calls, let in-flight ones finish, end SSE streams, close both servers."""
        self.service.stopping = True
        # Held calls go on before the grace period starts: it is for finishing calls, not for waiting on people.
        self.interceptor.configure("", self.interceptor.points)
        self.interceptor.release_all("continued: the inspector is stopping")
        if self.grpc is not None:
            await self.grpc.health.enter_graceful_shutdown()
            # New calls are refused from here; calls already in a handler finish and are captured.
            await self.grpc.server.stop(self.settings.shutdown_grace_seconds)
            # Handlers cut off at the end of the grace period record their calls as they unwind,
            # after stop() returns: let them, so the live views and the store hear of every call.
            await self.service.wait_idle(1.0)
        if self.shadow is not None:
            # Before the store stops: what the shadow holds is recorded, as dropped.
            await self.supervisor.stop(*self.shadow.worker_names())
            self.shadow.drain()
        if self.telemetry is not None:
            await self.supervisor.stop("otel-spans")
            await self.telemetry.stop()  # the last spans, then the export thread (bounded by its timeout)
        if self.redis_store is not None:
            await self.redis_store.stop(self.settings.shutdown_grace_seconds)
        # Ending the streams lets uvicorn's graceful shutdown find idle connections (and ends the console log).
        await self.supervisor.close("broadcaster")
        if self._http is not None:
            self._http.should_exit = True
        if self.web is not None:
            await self.web.catalog.stop()  # a read the page started too
        await self.supervisor.stop()  # the rest of the tasks (rules watcher, console log), each within its bound
        if self._http_task is not None:
            await self._http_task
        await self.upstreams.close()
        await self.supervisor.close()  # the worker processes, once no request can use them
        if self.settings.grpc_unix_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.settings.grpc_unix_socket)


class InterceptSettingError(ValueError):
    """--intercept is not a query the intercept can use."""


def create_interceptor(settings: Settings, broadcaster: Broadcaster, service: DispatcherService) -> Interceptor:
    """The intercept (app.proxy.intercept): its events go to live pages, its query switches the Dispatcher's hold."""
    interceptor = Interceptor(
        settings.intercept_timeout_seconds, settings.intercept_max, notify=broadcaster.publish_notice
    )

    def switch(active: Interceptor | None) -> None:
        service.intercept = active

    interceptor.on_change = switch
    try:
        interceptor.configure(settings.intercept, settings.intercept_points)
    except ValueError as exc:  # QueryError too
        raise InterceptSettingError(f"--intercept / TYK_INSPECTOR_INTERCEPT: {exc}") from None
    return interceptor


def create_redis_store(settings: Settings) -> RedisStore | None:
    """The shared store --store names, or None for the in-memory buffer."""
    if settings.redis_url is None:
        return None
    config = RedisStoreConfig(
        url=settings.redis_url,
        prefix=settings.store_prefix,
        max_items=settings.buffer_items,
        max_bytes=settings.buffer_bytes,
        queue_items=settings.store_queue_items,
        queue_bytes=settings.store_queue_bytes,
    )
    return RedisStore(config)


def create_shadow(settings: Settings, pool: UpstreamPool, record: Recorder) -> Shadow | None:
    """The --shadow plugin server (and those rules name), judged by the --tyk-version gateway model."""
    if not settings.shadow and not settings.rules_file:
        return None
    gateway = Gateway(version=TykVersion.parse(settings.tyk_version))
    config = ShadowConfig(settings.shadow, settings.shadow_deadline_seconds, settings.shadow_queue_items)
    return Shadow(config, pool, record, gateway)


def create_telemetry(settings: Settings) -> Telemetry | None:
    """The OpenTelemetry export --otel-endpoint asks for (the extra is imported only then)."""
    if not settings.otel_endpoint:
        return None
    from app.telemetry import Telemetry, TelemetryConfig

    config = TelemetryConfig(settings.otel_endpoint, export_seconds=settings.otel_export_seconds)
    return Telemetry(config, Gateway(version=TykVersion.parse(settings.tyk_version)))


def initial_rules(settings: Settings) -> Rules | None:
    """The routing at start: rules file, or proxy everything to --upstream, or None (echo)."""
    if settings.rules_file:
        return load_rules(settings.rules_file, settings.upstream)
    return proxy_all(settings.upstream) if settings.upstream else None


@dataclass
class RulesStatus:
    """The rules file as the watcher last saw it."""

    file: str | None
    mtime: int | None = None
    error: str | None = None
    """Why the last edit was refused (the previous rules stay); None when the file in use is the file on disk."""
    reloads: int = 0


def _soon(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """A synchronous close as the supervisor's closers are: awaitable."""

    async def closing() -> None:
        close()

    return closing


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _describe(rule: Rule) -> str:
    return rule.upstream or rule.action


def _check_tls(settings: Settings) -> None:
    """Load the certificate and key now: uvicorn would fail only after the start was announced."""
    if not settings.tls_cert or not settings.tls_key:
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BindError(
            f"cannot serve HTTPS with --tls-cert {settings.tls_cert} and --tls-key {settings.tls_key}: {reason} "
            "(TYK_INSPECTOR_TLS_CERT / TYK_INSPECTOR_TLS_KEY: a PEM certificate chain and its private key)"
        ) from None


def _connection_cap(settings: Settings) -> int:
    """--http-max-connections, kept below the open-files limit so accept() itself never fails."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return settings.http_max_connections
    if soft == resource.RLIM_INFINITY:
        return settings.http_max_connections
    # The rest is for gRPC connections, upstream channels, files and the loop itself.
    return max(16, min(settings.http_max_connections, soft // 2))


def _listen_http(host: str, port: int) -> socket.socket:
    setting = "--http-host / --http-port (TYK_INSPECTOR_HTTP_HOST / TYK_INSPECTOR_HTTP_PORT)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise BindError(f"cannot listen for HTTP on {host}:{port} ({exc}); change {setting}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen for HTTP on {host}:{port} ({exc.strerror}); change {setting}") from None
    sock.setblocking(False)
    return sock


async def serve(settings: Settings) -> int:
    """Run until SIGINT or SIGTERM; return the process exit code."""
    try:
        inspector = Inspector(settings)
    except RulesError as exc:
        log.error("%s (fix it or change --rules / TYK_INSPECTOR_RULES)", exc)
        return 2
    except InterceptSettingError as exc:
        log.error("%s", exc)
        return 2
    try:
        await inspector.start()
    except (BindError, StoreError) as exc:
        log.error("%s", exc)
        await inspector.stop()
        return 2
    # What is alive now (the libraries, the app) lives as long as the process: leave it out of
    # later collections, so a full collection, which runs on whatever thread allocates (the loop
    # too), costs what the captures hold, not what the libraries do.
    gc.freeze()
    # Worker threads (searches, views, exports) hold the interpreter lock until they are asked to
    # let go: every 5 ms by default, which a gateway call waiting for the loop pays each time.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    http_closed = asyncio.ensure_future(inspector.wait_http_closed())
    waiter = asyncio.ensure_future(stop_requested.wait())
    await asyncio.wait({waiter, http_closed}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    log.info("shutting down: finishing in-flight calls (up to %ss)", settings.shutdown_grace_seconds)
    await inspector.stop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    stats = inspector.store.stats()
    log.info("Tyk Inspector stopped after %d capture%s", stats.total, "" if stats.total == 1 else "s")
    return 0
