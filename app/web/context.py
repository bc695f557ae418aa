"""What every route needs, handed to the app once instead of living in module globals."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client.registry import CollectorRegistry

from app.capture.record import Analysis, Capture
from app.config import Settings
from app.formats.analysis import analyze_in_worker, needs_worker
from app.formats.document import snapshot
from app.formats.offload import Offloader
from app.formats.views import DetailCache, build_detail
from app.gateway.catalog import GatewayCatalog, VersionChoice
from app.journeys.journey import JourneyIndex
from app.journeys.tokens import SharedTokens
from app.live.broadcast import Broadcaster
from app.proxy.intercept import Interceptor
from app.proxy.replay import Replayer
from app.query.loop_share import LoopShare
from app.query.search import SearchViews
from app.redaction.redact import Redactor
from app.store.buffer import CaptureStore
from app.store.pins import PinBoard
from app.tyk.outcome import Gateway
from app.tyk.version import LATEST_VERSION, TykVersion
from app.web.auth import Authenticator

VERDICT_WAIT_SECONDS = 1.0
"""How long a list waits for the verdicts of its large captures before it shows them provisional."""
MAX_JUDGING = 8
"""Verdicts of large captures queued for the worker processes at once (a list of many shows the rest provisional)."""


@dataclass
class WebContext:
    store: CaptureStore
    broadcaster: Broadcaster
    settings: Settings
    grpc_port: int | None = None
    replayer: Replayer | None = None
    metrics: CollectorRegistry | None = None
    health: Callable[[], dict[str, Any]] = lambda: {"degraded": False, "tasks": [], "rules": None, "rule_errors": 0}
    """The process's health (app.supervisor): degraded or not, each background task, the rules file."""
    interceptor: Interceptor | None = None
    """The intercept query and the held calls (app.proxy.intercept)."""
    started_at: float = field(default_factory=time.time)
    auth: Authenticator = field(init=False)
    redactor: Redactor = field(init=False)
    details: DetailCache = field(init=False)
    search_views: SearchViews = field(init=False)
    journeys: JourneyIndex = field(init=False)
    tokens: SharedTokens = field(init=False)
    """CustomKeyCheck tokens returned for several credentials (the `auth-shared-token` warning)."""
    gateway: Gateway = field(init=False)
    """The gateway model (--tyk-version) every verdict on a capture follows."""
    pins: PinBoard = field(default_factory=PinBoard)
    """Captures kept while pinned, with a note and a mark, whatever the buffer evicts."""
    share: LoopShare = field(default_factory=LoopShare)
    """The loop time every request's work (queries, journeys, details, exports) shares."""
    offloader: Offloader = field(default_factory=Offloader)
    """Where large details are built: a worker process, so the loop keeps its turns."""
    catalog: GatewayCatalog = field(init=False)
    """The gateways' API definitions and version (--gateway-url), read in the background."""
    _building: dict[int, asyncio.Future[tuple[list[bytes], Analysis | None]]] = field(init=False, default_factory=dict)
    _judging: dict[int, asyncio.Future[Analysis]] = field(init=False, default_factory=dict)
    """Verdicts of large captures being computed in a worker process, by capture id (one each)."""

    def __post_init__(self) -> None:
        s = self.settings
        self.auth = Authenticator(s.auth_token, s.session_seconds)
        self.redactor = Redactor(s.redact, s.redact_headers, s.redact_metadata, s.redact_query, s.redact_body)
        self.gateway = Gateway(version=TykVersion.parse(s.tyk_version))
        # A version other than the default was asked for, on the command line or by whoever built the settings.
        given = s.tyk_version_given or self.gateway.version != LATEST_VERSION
        self.catalog = GatewayCatalog(
            s.gateway_urls,
            s.gateway_secret,
            version=VersionChoice(str(self.gateway.version), "--tyk-version" if given else "default"),
            version_fixed=given,
            on_version=self.use_tyk_version,
            off_loop=self.offloader.run,
        )
        self.details = DetailCache(s.detail_cache_bytes)
        self.search_views = SearchViews(self.redactor)
        self.journeys = JourneyIndex(self.store, self.share)
        self.tokens = SharedTokens(self.store, self.redactor.rules, self.share)

    def use_tyk_version(self, version: TykVersion) -> None:
        """Follow the version a gateway reported (no --tyk-version given): new verdicts use it."""
        self.gateway = dataclasses.replace(self.gateway, version=version)
        self.details.clear()

    async def detail(self, capture: Capture) -> list[bytes]:
        """A capture's detail document (JSON, in chunks of about a megabyte): cached, or built off the loop.

        Decoding a large capture takes long enough to delay the gateway's calls, so only the
        snapshot is taken on the loop (the build runs in a thread, or a process when large).
        Browsers asking for the same capture share one build.
        """
        await self.share.turn()  # queued with the other requests' work, not ahead of it
        await self.tokens.catch_up()
        shared = self.tokens.warnings(capture, self.gateway)  # a later capture can add one
        cached = self.details.get(capture.id, shared)
        if cached is not None:
            return cached
        building = self._building.get(capture.id)
        if building is not None:
            return (await asyncio.shield(building))[0]
        reply = capture.reply
        size = len(capture.request) + (0 if reply is None or reply is capture.request else len(reply))
        # A large message is parsed in a process: a thread would hold the interpreter lock the
        # gateway's calls need for as long as the parse of a million headers takes.
        args = (build_detail, snapshot(capture), self.redactor, self.gateway, shared)
        future = asyncio.ensure_future(
            self.offloader.in_process(*args) if capture.large else self.offloader.run(size, *args)
        )
        self._building[capture.id] = future
        try:
            document, analysis = await asyncio.shield(future)
        finally:
            self._building.pop(capture.id, None)
        if capture.analysis is None or (analysis is not None and capture.analysis.version != analysis.version):
            capture.analysis = analysis  # the verdict the worker computed, kept for the list
            capture.summary_json = None  # a large capture's summary had only the provisional verdict
        self.details.put(capture.id, document, shared)
        return document

    async def verdicts(self, captures: list[Capture]) -> None:
        """Judge each large capture not judged yet in a worker process, waiting at most VERDICT_WAIT_SECONDS.

        On the loop a large capture has only a provisional verdict (app.formats.analysis.analyze).
        A verdict that takes longer (the lint of a million headers) is kept when it arrives, and
        the list shows it from then on: a request does not wait for it, nor start it again.
        """
        waiting: list[asyncio.Future[Analysis]] = []
        for capture in captures:
            analysis = capture.analysis
            if not needs_worker(capture) or (analysis is not None and analysis.version == str(self.gateway.version)):
                continue
            judging = self._judging.get(capture.id)
            if judging is None and len(self._judging) >= MAX_JUDGING:
                continue  # shown provisional this time: the workers' queue stays short
            if judging is None:
                judging = asyncio.ensure_future(
                    self.offloader.in_process(analyze_in_worker, snapshot(capture), self.gateway)
                )
                self._judging[capture.id] = judging
                judging.add_done_callback(functools.partial(self._judged, capture))
            waiting.append(judging)
        if waiting:
            await asyncio.wait(waiting, timeout=VERDICT_WAIT_SECONDS)

    def _judged(self, capture: Capture, judging: asyncio.Future[Analysis]) -> None:
        self._judging.pop(capture.id, None)
        if judging.cancelled() or judging.exception() is not None:
            return  # the worker pool stopped: the next list asks again
        capture.analysis = judging.result()
        capture.summary_json = None  # it was encoded with the provisional verdict

    async def add(self, captures: list[Capture]) -> list[Capture]:
        """Store captures (e.g. imported ones) and tell live subscribers.

        Raises StoreUnavailable when a shared store does not take them.
        """
        return await self.store.append(captures)  # the store tells the subscribers

    async def clear(self) -> int:
        """Empty the store (for every replica, when shared) and tell live subscribers."""
        removed = await self.store.clear_all()  # the store tells the subscribers
        self.details.clear()
        self.search_views.clear()
        self.tokens.clear()
        return removed

    async def settled(self, capture: Capture) -> Capture:
        """The capture once the store shows it with its id (at once for the memory store)."""
        await self.store.settle_capture(capture)
        return capture


async def _context(request: Request) -> WebContext:
    context: WebContext = request.app.state.inspector
    return context


Context = Annotated[WebContext, Depends(_context)]
