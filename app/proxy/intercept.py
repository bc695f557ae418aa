"""Intercept: hold a live Dispatch call the intercept query matches until someone lets it go.

Like an HTTP debugger's breakpoints: a call is held "before" the plugin (proxy mode: what goes
to the upstream plugin server can be edited, or answered without it) or "after" it (the reply
the gateway will get can be edited). A viewer continues it (as is or edited), responds with a
preset, or fails it with a gRPC error.

The gateway sets no deadline on Dispatch, so a held call waits as long as this module lets it:
every held call continues by itself after `timeout` seconds, at most `max_held` are held at
once (past that, calls pass through unheld and are counted), all continue when the last page
closes, and all continue when the inspector stops. A call the gateway cancels while held is
marked abandoned and leaves the list.

Only Dispatch calls from the gateway reach here: events are fire-and-forget, replays do not go
through the Dispatcher, and `tyk-inspector send` marks its calls (SEND_MARK) so they pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
from google.protobuf import json_format
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.capture.record import Capture
from app.proxy.mock import mock_reply
from app.query.matcher import REQUEST_FIELDS, Budget, Matcher, Searcher, compile_query
from app.tyk.diff import diff_objects
from protogen import coprocess_object_pb2 as pb

Point = Literal["before", "after"]
POINTS: tuple[Point, ...] = ("before", "after")
SEND_MARK = "x-tyk-inspector-send"
"""Metadata `tyk-inspector send` puts on its calls: the inspector's own calls are never held."""
MATCH_SECONDS = 0.02
"""What one intercept match may spend on regexes: the gateway's call pays for it."""
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_HELD = 50

Action = Literal["continue", "respond", "fail"]
Notify = Callable[[str, dict[str, Any]], None]


class InterceptError(ValueError):
    """An action a held call cannot take (HTTP 400; the call stays held)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """How a held call goes on."""

    action: Action
    message: bytes | None = None
    """continue: the edited Object (None: as it was); respond: the reply the gateway gets."""
    code: grpc.StatusCode | None = None
    details: str = ""
    how: str = "continued"
    """In words, for the capture and the page: "continued as edited", "responded deny-401", ..."""
    by: str | None = None
    """Who acted (the viewer's address), or None when a bound let the call go."""
    edit: str | None = None
    """The edit as a diff in Tyk's terms, one change a line."""


@dataclass(eq=False)
class Held:
    """One held call."""

    id: int
    capture: Capture
    point: Point
    message: bytes
    """The Object held: what goes to the upstream (before) or back to the gateway (after)."""
    expires_at: float
    since: float = field(default_factory=time.time)
    future: asyncio.Future[Decision] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def as_dict(self, shown_path: Callable[[str], str] = str) -> dict[str, Any]:
        c = self.capture
        return {
            "id": self.id,
            "point": self.point,
            "since": self.since,
            "expires_at": self.expires_at,
            "kind": c.kind,
            "hook_type": c.hook_type,
            "hook_name": c.hook_name,
            "api_id": c.api_id,
            "method": c.method,
            "path": shown_path(c.path),
            "answered_by": c.answered_by,
            "size": len(self.message),
        }


class Interceptor:
    """The intercept query and the held calls; lives on the event loop."""

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        max_held: int = DEFAULT_MAX_HELD,
        searcher: Searcher | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_held = max_held
        self.searcher = searcher or Searcher(request_only=True)
        """Real values (nothing is redacted for a decision), the status a Response hook carries."""
        self.notify: Notify = notify or (lambda name, data: None)
        self.on_change: Callable[[Interceptor | None], None] = lambda active: None
        """Told the interceptor when a query is set, None when cleared: the Dispatcher checks one attribute."""
        self.query = ""
        self.points: frozenset[Point] = frozenset(POINTS)
        self.matcher: Matcher | None = None
        self.held: dict[int, Held] = {}
        self._next_id = 0
        self.passed_over = 0
        """Matching calls not held: the cap was reached, or holding them would pass --max-inflight-bytes."""
        self.match_errors = 0
        self.held_total = 0
        self.share: Callable[[str, list[str]], Awaitable[None]] | None = None
        """With a shared store: hands a query set here to every replica (app.proxy.intercept_shared)."""
        self.shown_path: Callable[[str], str] = str
        """How a path is shown to pages (credentials in its query redacted)."""
        self.pages = 0
        """Live streams open (pages watching); when the last closes, every held call continues."""

    # -- the query ----------------------------------------------------------------------------------

    def configure(self, query: str, points: Iterable[str] = POINTS) -> None:
        """Set the intercept query ("" turns intercept off). Raises QueryError or InterceptError."""
        given = frozenset(points)
        chosen = frozenset(p for p in POINTS if p in given)
        if given != chosen or not chosen:
            raise InterceptError(f"points must be a non-empty list of {', '.join(POINTS)}")
        matcher = compile_query(query, self.searcher, fields=REQUEST_FIELDS) if query.strip() else None
        self.query, self.points, self.matcher = query.strip(), chosen, matcher
        self.on_change(self if matcher is not None else None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "q": self.query,
            "points": [p for p in POINTS if p in self.points],
            "active": self.matcher is not None,
            "timeout_seconds": self.timeout,
            "max_held": self.max_held,
            "held": len(self.held),
            "held_total": self.held_total,
            "passed_over": self.passed_over,
            "match_errors": self.match_errors,
        }

    def matches(self, capture: Capture) -> bool:
        """Whether the gateway's call is one to hold; on the Dispatch path, bounded, never raises."""
        matcher = self.matcher
        if matcher is None or any(k == SEND_MARK for k, _ in capture.metadata):
            return False
        try:
            return matcher.matches(capture, Budget(MATCH_SECONDS))
        except Exception:  # a regex over its time: the call goes on unheld
            self.match_errors += 1
            return False

    # -- holding ------------------------------------------------------------------------------------

    async def hold(self, capture: Capture, point: Point, message: bytes) -> Decision | None:
        """Hold the call until an action, the timeout, the last page closing or shutdown; None: not held."""
        if len(self.held) >= self.max_held:
            self.passed_over += 1
            return None
        self._next_id += 1
        self.held_total += 1
        held = Held(self._next_id, capture, point, message, time.time() + self.timeout)
        self.held[held.id] = held
        self.notify("held", held.as_dict(self.shown_path))
        began = time.monotonic()
        try:
            try:
                decision = await asyncio.wait_for(held.future, self.timeout)
            except TimeoutError:
                decision = Decision("continue", how=f"continued after {self.timeout:g} s (--intercept-timeout)")
        except asyncio.CancelledError:
            note = f"held {_seconds(began)} {point} the plugin: abandoned by the gateway"
            capture.intercepted = f"{capture.intercepted}; {note}" if capture.intercepted else note
            self.notify("released", {"id": held.id, "how": "abandoned by the gateway"})
            raise
        finally:
            self.held.pop(held.id, None)
        by = f" by {decision.by}" if decision.by else ""
        note = f"held {_seconds(began)} {point} the plugin: {decision.how}{by}"
        capture.intercepted = f"{capture.intercepted}; {note}" if capture.intercepted else note
        if decision.edit:
            capture.intercept_edit = decision.edit
        self.notify("released", {"id": held.id, "how": decision.how, "by": decision.by})
        return decision

    def resolve(self, held_id: int, decision: Decision) -> None:
        """Let a held call go; KeyError when it is not held (any more): the first action wins."""
        held = self.held.get(held_id)
        if held is None or held.future.done():
            raise KeyError(held_id)
        held.future.set_result(decision)

    def release_all(self, how: str, by: str | None = None) -> int:
        """Continue every held call as it is; how many."""
        count = 0
        for held in list(self.held.values()):
            if not held.future.done():
                held.future.set_result(Decision("continue", how=how, by=by))
                count += 1
        return count

    def page_opened(self) -> None:
        self.pages += 1

    def page_closed(self) -> None:
        self.pages -= 1
        if self.pages <= 0:
            self.pages = 0
            # A closed laptop must not hang an API.
            self.release_all("continued: the last page closed")


def _seconds(began: float) -> str:
    return f"{time.monotonic() - began:.1f} s"


# -- what an action makes of a held call -------------------------------------------------------------


def edited(held: Held, edit: dict[str, Any], hide: Callable[[pb.Object], object]) -> tuple[bytes, str]:
    """The edited Object's bytes and the edit as a diff; InterceptError naming the field when it is wrong.

    `hide` redacts a message in place: the diff is kept and shown, so it is made of what may be shown.
    """
    message = parse_object(edit)
    data = message.SerializeToString()
    before = pb.Object.FromString(held.message)
    hide(before)
    hide(message)
    return data, diff_text(before, message)


def parse_object(edit: Any, where: str = "object") -> pb.Object:
    if not isinstance(edit, dict):
        raise InterceptError(f"{where} must be a coprocess.Object in protobuf JSON (an object)")
    try:
        return json_format.ParseDict(edit, pb.Object())
    except json_format.ParseError as exc:
        raise InterceptError(f"{where}: {exc}") from None


def diff_text(before: pb.Object, after: pb.Object) -> str:
    lines = []
    for change in diff_objects(before, after):
        what = f"{change.get('kind', '')} {change.get('what', '')}".strip()
        value = f": {change.get('before')!r} -> {change.get('after')!r}"
        lines.append(what + value)
    return "\n".join(lines)


STATUS_TEXT = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}
PRESETS = ("allow", "deny-401", "deny-403", "override-503")


def preset_reply(held: Held, preset: str) -> bytes:
    """The reply a preset makes from the Object the gateway sent, as real return_overrides (or a session)."""
    sent = held.capture.request
    if held.capture.hook_type == "Response":
        raise InterceptError("presets answer request hooks; edit the Response hook's response and Continue")
    if preset == "allow":
        if held.capture.hook_type != "CustomKeyCheck":
            raise InterceptError("allow answers a CustomKeyCheck (auth) hook; other hooks: Continue")
        obj = pb.Object.FromString(sent)
        credential = next((v for k, v in obj.request.headers.items() if k.lower() == "authorization"), "")
        spec: dict[str, Any] = {
            "session": {"rate": 1000, "per": 60, "quota_max": -1, "org_id": obj.spec.get("OrgID", "")},
            "metadata": {"token": credential or "intercept-allowed"},
        }
        return mock_reply(sent, spec)
    codes = {"deny-401": 401, "deny-403": 403, "override-503": 503}
    code = codes.get(preset)
    if code is None:
        raise InterceptError(f"preset must be one of {', '.join(PRESETS)}")
    # Through the gateway's error template, as Tyk's own refusals are.
    return mock_reply(sent, {"return_overrides": {"response_code": code, "response_error": STATUS_TEXT[code]}})


def fail_code(name: Any) -> grpc.StatusCode:
    if not isinstance(name, str):
        raise InterceptError("code must be a gRPC status name such as UNAVAILABLE")
    code = grpc.StatusCode.__members__.get(name.upper())
    if code is None or code is grpc.StatusCode.OK:
        names = ", ".join(n for n in grpc.StatusCode.__members__ if n != "OK")
        raise InterceptError(f"code {name!r} is not a gRPC error status ({names})")
    return code


class InterceptCollector(Collector):
    """The intercept's counts, read when Prometheus scrapes /metrics."""

    def __init__(self, interceptor: Interceptor) -> None:
        self.interceptor = interceptor

    def collect(self) -> Iterator[Metric]:
        i = self.interceptor
        yield GaugeMetricFamily("tyk_inspector_intercept_held", "calls held by the intercept now", len(i.held))
        yield CounterMetricFamily("tyk_inspector_intercept_held_calls", "calls the intercept held", i.held_total)
        yield CounterMetricFamily(
            "tyk_inspector_intercept_passed_over",
            "calls the intercept query matched but did not hold (--intercept-max or --max-inflight-bytes reached)",
            i.passed_over,
        )
