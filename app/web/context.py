"""What every route needs, handed to the app once instead of living in module globals."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.capture.broadcast import Broadcaster
from app.capture.record import Capture
from app.capture.redact import Redactor
from app.capture.search import SearchViews
from app.capture.store import CaptureStore
from app.capture.views import DetailCache
from app.config import Settings
from app.proxy.replay import Replayer
from app.tyk.outcome import Gateway
from app.tyk.version import TykVersion


@dataclass
class WebContext:
    store: CaptureStore
    broadcaster: Broadcaster
    settings: Settings
    grpc_port: int | None = None
    replayer: Replayer | None = None
    started_at: float = field(default_factory=time.time)
    redactor: Redactor = field(init=False)
    details: DetailCache = field(init=False)
    search_views: SearchViews = field(init=False)
    gateway: Gateway = field(init=False)
    """The gateway model (--tyk-version) every verdict on a capture follows."""

    def __post_init__(self) -> None:
        s = self.settings
        self.redactor = Redactor(s.redact, s.redact_headers, s.redact_metadata, s.redact_query, s.redact_body)
        self.gateway = Gateway(version=TykVersion.parse(s.tyk_version))
        self.details = DetailCache(self.redactor, gateway=self.gateway)
        self.search_views = SearchViews(self.redactor)

    def add(self, captures: list[Capture]) -> list[Capture]:
        """Store captures (e.g. imported ones) and tell live subscribers."""
        added = self.store.add_many(captures)
        for capture in added:
            self.broadcaster.publish(capture)
        return added

    def clear(self) -> int:
        removed = self.store.clear()
        self.details.clear()
        self.search_views.clear()
        self.broadcaster.publish_cleared(self.store.last_id)
        return removed


def _context(request: Request) -> WebContext:
    context: WebContext = request.app.state.inspector
    return context


Context = Annotated[WebContext, Depends(_context)]
