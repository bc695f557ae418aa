"""The gateway's catalog: its version (`GET /hello`) and API definitions (`GET /tyk/apis`), re-read
in the background and on demand, never on the gateway's path.

A gateway that cannot be read keeps its last good catalog, marked stale with its age; the reason
(unreachable, wrong secret, no Gateway API on that port) is said in the page and the log once
per change. The secret goes in the `x-tyk-authorization` header and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from app.gateway.apidef import ApiDefinition, ApiList, CatalogError, parse_api_list, parse_hello
from app.tyk.version import TykVersion

log = logging.getLogger("tyk_inspector.gateway")
T = TypeVar("T")

REFRESH_SECONDS = 30.0
TIMEOUT_SECONDS = 5.0
READ_SECONDS = 20.0
# A catalog of thousands of APIs is a few MiB; anything far larger is not one.
MAX_CATALOG_BYTES = 64 * 1024 * 1024
MAX_HELLO_BYTES = 64 * 1024
# From this version MCP APIs are listed only when asked for.
MCP_LISTED_FROM = TykVersion.parse("5.12.0")
SECRET_HEADER = "x-tyk-authorization"

OffLoop = Callable[..., Awaitable[Any]]


async def _in_thread(size: int, function: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(function, *args)


@dataclass
class GatewaySource:
    """What is known of one gateway (one --gateway-url)."""

    url: str
    version: str | None = None
    apis: ApiList | None = None
    fetched_at: float | None = None
    """When the catalog was last read successfully."""
    tried_at: float | None = None
    raw: bytes = b""
    """The catalog as last read, so an unchanged one is not parsed again."""
    error: str | None = None
    """Why the last read failed; None when it worked."""

    def as_json(self, now: float) -> dict[str, Any]:
        age = None if self.fetched_at is None else round(now - self.fetched_at, 1)
        return {
            "url": self.url,
            "version": self.version,
            "ok": self.error is None and self.fetched_at is not None,
            "error": self.error,
            "stale": self.error is not None and self.apis is not None,
            "fetched_at": self.fetched_at,
            "age_seconds": age,
            "api_count": len(self.apis.apis) if self.apis else 0,
            "cut": self.apis.cut if self.apis else 0,
        }


@dataclass
class VersionChoice:
    """The Tyk version the gateway model follows and where it came from."""

    version: str
    source: str
    """"--tyk-version", "/hello at URL", or "default (latest known)"."""


@dataclass
class GatewayCatalog:
    """Every configured gateway's catalog, merged by API ID."""

    urls: tuple[str, ...]
    secret: str | None = field(default=None, repr=False)
    version: VersionChoice = field(default_factory=lambda: VersionChoice("", "default"))
    version_fixed: bool = False
    """--tyk-version was given: /hello only informs, it does not change the model."""
    on_version: Callable[[TykVersion], None] | None = None
    off_loop: OffLoop = _in_thread
    refresh_seconds: float = REFRESH_SECONDS
    timeout_seconds: float = TIMEOUT_SECONDS
    """For each step of a request (connect, each read)."""
    read_seconds: float = READ_SECONDS
    """For reading one gateway's version and catalog, all told."""
    sources: list[GatewaySource] = field(init=False)
    _by_id: dict[str, tuple[ApiDefinition, str]] = field(init=False, default_factory=dict)
    _refreshing: asyncio.Future[None] | None = field(init=False, default=None)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _client: httpx.AsyncClient | None = field(init=False, default=None)
    _stopped: bool = field(init=False, default=False)
    _merged_from: tuple[ApiList | None, ...] = field(init=False, default=())
    refreshes: int = field(init=False, default=0)
    revision: int = field(init=False, default=0)
    """Counts the changes of the merged catalog: a page that has this one need not read the names again."""
    failures: int = field(init=False, default=0)
    """Reads that failed in an unforeseen way (logged with their traceback)."""

    def __post_init__(self) -> None:
        self.sources = [GatewaySource(url.rstrip("/")) for url in self.urls]

    @property
    def configured(self) -> bool:
        return bool(self.sources)

    def lookup(self, api_id: str) -> ApiDefinition | None:
        """The API's definition, from whichever gateway knows it."""
        found = self._by_id.get(api_id)
        return found[0] if found else None

    def apis(self) -> list[tuple[ApiDefinition, str]]:
        return list(self._by_id.values())

    def name_of(self, api_id: str) -> str | None:
        """'Orders API /orders/' for an API the catalog knows by name; None otherwise."""
        api = self.lookup(api_id)
        if api is None or not api.name:
            return None
        return f"{api.name} {api.listen_path}".strip()

    def status(self) -> dict[str, Any]:
        """The catalog's state for the page: each gateway, the version and where it came from (no secret)."""
        now = time.time()
        return {
            "configured": self.configured,
            "secret": self.secret is not None,
            "refresh_seconds": self.refresh_seconds,
            "revision": self.revision,
            "tyk_version": {"version": self.version.version, "source": self.version.source},
            "gateways": [s.as_json(now) for s in self.sources],
        }

    # --- reading the gateways -------------------------------------------------------------

    async def refresh(self) -> None:
        """Read every gateway now; callers at the same moment share one read. Nothing once stopped."""
        if self._stopped:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_all())
            # A caller that goes away (a closed page) leaves the read running; its outcome is
            # then nobody's to collect, and asyncio would complain of it at exit.
            self._refreshing.add_done_callback(_collected)
        await asyncio.shield(self._refreshing)

    async def _refresh_all(self) -> None:
        client = self._client or httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False)
        try:
            await asyncio.gather(*(self._read(client, source) for source in self.sources))
        finally:
            if client is not self._client:
                await client.aclose()
        lists = tuple(source.apis for source in self.sources)
        # An unchanged catalog is not parsed again, so the same lists mean the same APIs.
        if len(lists) != len(self._merged_from) or any(
            a is not b for a, b in zip(lists, self._merged_from, strict=False)
        ):
            merged: dict[str, tuple[ApiDefinition, str]] = {}
            for source in self.sources:  # the first gateway named wins an ID several know
                for api in source.apis.apis if source.apis else ():
                    merged.setdefault(api.api_id, (api, source.url))
            self._by_id = merged
            self._merged_from = lists
            self.revision += 1
        self.refreshes += 1
        self._choose_version()

    async def _read(self, client: httpx.AsyncClient, source: GatewaySource) -> None:
        source.tried_at = time.time()
        try:
            # Each request has a timeout per step; a gateway sending a byte now and then would still
            # hold the read forever without this bound on the whole.
            async with asyncio.timeout(self.read_seconds):
                await self._read_source(client, source)
        except TimeoutError:
            self._failed(source, f"{source.url} did not send its version and catalog within {self.read_seconds:g} s")
            return
        except (CatalogError, httpx.HTTPError, OSError) as exc:
            error = _unreachable(source.url, exc) if isinstance(exc, httpx.HTTPError | OSError) else str(exc)
            self._failed(source, error)
            return
        assert source.apis is not None
        if source.error is not None or source.fetched_at is None:
            log.info(
                "gateway catalog read from %s: %d APIs, version %s",
                source.url,
                len(source.apis.apis),
                source.version or "unknown",
            )
        source.error = None
        source.fetched_at = time.time()

    def _failed(self, source: GatewaySource, error: str) -> None:
        if error != source.error:  # said once per change, not every 30 s
            stale = " (its last good catalog stays, marked stale)" if source.apis else ""
            log.warning("gateway catalog not read: %s%s", error, stale)
        source.error = error

    async def _read_source(self, client: httpx.AsyncClient, source: GatewaySource) -> None:
        hello = await self._get(client, source.url + "/hello", MAX_HELLO_BYTES, auth=False)
        if hello[0] == 200:
            source.version = await self.off_loop(len(hello[1]), parse_hello, hello[1])
        path = "/tyk/apis"
        if source.version and _parsed(source.version) >= MCP_LISTED_FROM:
            path += "?include_types=mcp"
        status, body = await self._get(client, source.url + path, MAX_CATALOG_BYTES, auth=True)
        if status != 200:
            raise CatalogError(_refusal(source.url, status, self.secret is not None))
        if body != source.raw or source.apis is None:  # most reads find the catalog unchanged
            source.apis = await self.off_loop(len(body), parse_api_list, body)
            source.raw = body

    async def _get(self, client: httpx.AsyncClient, url: str, limit: int, auth: bool) -> tuple[int, bytes]:
        # Uncompressed, so the byte limit counts what is parsed.
        headers = {"accept-encoding": "identity"}
        if auth and self.secret is not None:
            headers[SECRET_HEADER] = self.secret
        async with client.stream("GET", url, headers=headers) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > limit:
                    raise CatalogError(f"{url} answered more than {limit} bytes: not read")
                chunks.append(chunk)
            if response.headers.get("content-encoding", "identity") not in ("identity", ""):
                raise CatalogError(f"{url} answered compressed ({response.headers['content-encoding']}): not read")
            return response.status_code, b"".join(chunks)

    def _choose_version(self) -> None:
        if self.version_fixed:
            return
        for source in self.sources:
            if source.version is None:
                continue
            try:
                version = TykVersion.parse(source.version)
            except ValueError:
                continue
            choice = VersionChoice(str(version), f"/hello at {source.url}")
            if (choice.version, choice.source) != (self.version.version, self.version.source):
                self.version = choice
                if self.on_version is not None:
                    self.on_version(version)
            return

    # --- the background task --------------------------------------------------------------

    def request_refresh(self) -> None:
        """Ask the background task for a read now (the page's button)."""
        self._wake.set()

    async def run(self) -> None:
        """Read the gateways now and every `refresh_seconds`, or when asked; until cancelled."""
        self._client = httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False)
        try:
            while True:
                self._wake.clear()
                try:
                    await self.refresh()
                except Exception:
                    # A read that fails in an unforeseen way is logged and tried again at the next
                    # turn: the names are a help, never a reason for the inspector to stop.
                    log.exception("gateway catalog read failed; trying again in %g s", self.refresh_seconds)
                    self.failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.refresh_seconds)
        finally:
            client, self._client = self._client, None
            await client.aclose()

    def start(self) -> None:
        """Start the background reads (nothing to do without a --gateway-url)."""
        if self.configured and self._task is None:
            self._task = asyncio.create_task(self.run(), name="gateway-catalog")

    async def stop(self, grace: float = 2.0) -> None:
        """Stop the background reads within `grace` seconds."""
        self._stopped = True
        task, self._task = self._task, None
        reading, self._refreshing = self._refreshing, None
        pending = [t for t in (task, reading) if t is not None and not t.done()]
        if not pending:
            return
        for running in pending:
            running.cancel()
        try:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), grace)
        except TimeoutError:
            log.warning("gateway catalog reads did not stop within %.1f s", grace)


def _collected(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _parsed(version: str) -> TykVersion:
    try:
        return TykVersion.parse(version)
    except ValueError:
        return TykVersion.parse("0.0.0")


def _refusal(url: str, status: int, has_secret: bool) -> str:
    if status in (401, 403):
        if not has_secret:
            return (
                f"{url}/tyk/apis answered {status}: the Gateway API needs the gateway's secret "
                "(--gateway-secret, --gateway-secret-file or TYK_INSPECTOR_GATEWAY_SECRET)"
            )
        return (
            f"{url}/tyk/apis answered {status}: the gateway refused the secret (check --gateway-secret: "
            "it is `secret` in tyk.conf, TYK_GW_SECRET)"
        )
    if status == 404:
        return (
            f"{url} has no /tyk/apis (404): a data-plane gateway (slave_options) has no Gateway API, and "
            "with control_api_port set the API is on that port: point --gateway-url there"
        )
    return f"{url}/tyk/apis answered HTTP {status}"


def _unreachable(url: str, exc: Exception) -> str:
    reason = type(exc).__name__ if not str(exc) else str(exc)
    where = urlsplit(url)
    return (
        f"cannot reach the gateway at {url} ({reason}): is it running, and is {where.netloc or url} its "
        "Gateway API (listen_port, or control_api_port when set)?"
    )
