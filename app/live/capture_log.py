"""The console view of captures: readable at any rate, never in the gateway's way.

It is just another broadcast subscriber, so it runs after the gateway has its
answer and sees captures a batch at a time. Writing (and, in json mode, decoding
and converting) happens in a worker thread: a slow terminal can only make it
skip captures, never stall the event loop.

Modes: "auto" logs a line per capture up to a rate, then a summary a second of
what it did not log one by one; "line" logs a line for every capture; "json" also
logs each request as protobuf JSON, for low rates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeVar

from app.capture.record import Capture
from app.config import CaptureLog
from app.formats.document import decode
from app.live.broadcast import CLOSED, Batch, Broadcaster, Subscription
from app.redaction.redact import Redactor

log = logging.getLogger("tyk_inspector.captures")

SUMMARY_SECONDS = 1.0
SUMMARY_TOP = 3
"""Hooks, APIs and statuses named in a summary; the rest are counted as others."""

# C0 and C1 controls (newline, ESC, ...), and the invisible characters that reorder or hide
# text (bidi overrides, zero-width, line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """Text that stays on one console line and cannot drive the terminal: controls escaped (\\n, \\x1b)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def capture_line(capture: Capture, redactor: Redactor, api_name: str | None = None) -> str:
    """'Pre MyPreHook api=b84f... GET /orders #12' in Tyk's words; captured text escaped, query secrets hidden.

    `api_name`: the API's name and listen path from the gateway's catalog, shown after its ID."""
    if capture.kind == "event":
        parts = ["event", capture.hook_type or "(unrecognised payload)", f"handler={capture.hook_name}"]
    else:
        parts = [capture.hook_type, capture.hook_name or "(no hook name)"]
    if capture.api_id:
        parts.append(f"api={capture.api_id}" + (f" ({api_name})" if api_name else ""))
    if capture.method:
        parts.append(capture.method)
    if capture.path:
        parts.append(redactor.url(capture.path))
    if capture.status is not None:
        parts.append(f"status={capture.status}")
    if capture.error:
        parts.append(f"error={capture.error!r}")
    parts.append(f"#{capture.id}")
    return printable(" ".join(parts))


def _hook(kind: str, hook_type: str, hook_name: str) -> str:
    if kind == "event":
        return f"event {hook_type or '(unrecognised)'}"
    return f"{hook_type} {hook_name}".strip() or "(no hook)"


# Tallying runs for every capture at any rate, so it is done a batch at a time with C-level
# helpers (attrgetter, Counter.update); names are formatted once, when a summary is written.
_HOOK_OF = attrgetter("kind", "hook_type", "hook_name")
_API_OF = attrgetter("api_id")
_STATUS_OF = attrgetter("status")
_ERROR_OF = attrgetter("error")
_DURATION_OF = attrgetter("duration_ns")


@dataclass
class Summary:
    """What the console saw over a period in which it did not log every capture."""

    started: float
    captures: int = 0
    logged: int = 0
    errors: int = 0
    slowest: Capture | None = None
    _hooks: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _apis: Counter[str] = field(default_factory=Counter)
    _statuses: Counter[int | None] = field(default_factory=Counter)

    def add(self, captures: Sequence[Capture]) -> None:
        if not captures:
            return
        self.captures += len(captures)
        self._hooks.update(map(_HOOK_OF, captures))
        self._apis.update(map(_API_OF, captures))
        self._statuses.update(map(_STATUS_OF, captures))
        self.errors += len(captures) - list(map(_ERROR_OF, captures)).count(None)
        slowest = max(captures, key=_DURATION_OF)
        if self.slowest is None or slowest.duration_ns > self.slowest.duration_ns:
            self.slowest = slowest

    @property
    def hooks(self) -> Counter[str]:
        return _named(self._hooks, lambda key: _hook(*key))

    @property
    def apis(self) -> Counter[str]:
        return _named(self._apis, lambda key: key or "(none)")

    @property
    def statuses(self) -> Counter[str]:
        """Response hooks' upstream status codes; "-" for the other hooks."""
        return _named(self._statuses, lambda key: "-" if key is None else str(key))

    def text(self, now: float) -> str:
        seconds = max(now - self.started, 0.001)
        parts = [
            f"{self.captures:,} captures in {seconds:.1f} s ({self.captures / seconds:,.0f}/s), "
            f"{self.logged} logged one by one (--capture-log line logs every one)",
            "hooks " + _top(self.hooks),
            "APIs " + _top(self.apis),
            "status " + _top(self.statuses),
        ]
        if self.errors:
            parts.append(f"errors {self.errors:,}")
        if self.slowest is not None:
            s = self.slowest
            parts.append(f"slowest #{s.id} {_hook(*_HOOK_OF(s))} {s.duration_ns / 1e6:.3f} ms")
        return printable(" | ".join(parts))

    def fields(self) -> dict[str, Any]:
        """The same as structured fields, for --log-format json."""
        return {
            "captures": self.captures,
            "logged": self.logged,
            "errors": self.errors,
            "hooks": dict(self.hooks),
            "apis": dict(self.apis),
            "statuses": dict(self.statuses),
            "slowest_id": self.slowest.id if self.slowest else None,
            "slowest_ms": round(self.slowest.duration_ns / 1e6, 3) if self.slowest else None,
        }


K = TypeVar("K")


def _named(counts: Counter[K], name: Callable[[K], str]) -> Counter[str]:
    named: Counter[str] = Counter()
    for key, count in counts.items():
        named[name(key)] += count
    return named


def _top(counts: Counter[str]) -> str:
    named = counts.most_common(SUMMARY_TOP)
    text = ", ".join(f"{name} {count:,}" for name, count in named)
    others = sum(counts.values()) - sum(count for _, count in named)
    return f"{text}, {others:,} others" if others else text


class RateLimiter:
    """Which captures the console logs one by one: a bucket of `rate` lines refilled `rate` a second,
    and a summary of every period of a second in which some were not logged.

    Pure and clock-driven (pass `now`), so it is decided on the loop without any I/O.
    """

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._refilled = now
        self._period: Summary | None = None

    def select(self, captures: Sequence[Capture], now: float) -> Sequence[Capture]:
        """The captures to log one by one; every capture also counts towards the period's summary."""
        if not captures:
            return ()
        self._tokens = min(float(self.rate), self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._period is None:
            self._period = Summary(started=now)
        self._period.add(captures)
        chosen = captures[: int(self._tokens)]
        self._tokens -= len(chosen)
        self._period.logged += len(chosen)
        return chosen

    def due_in(self, now: float) -> float | None:
        """Seconds until the current period ends; None when there is no period."""
        return None if self._period is None else max(0.0, self._period.started + SUMMARY_SECONDS - now)

    def summary(self, now: float, final: bool = False) -> Summary | None:
        """The period's summary when it is over (or `final`) and some captures were not logged one by one."""
        period = self._period
        if period is None or (not final and now < period.started + SUMMARY_SECONDS):
            return None
        self._period = None
        return period if period.logged < period.captures else None


Write = Callable[[], None]


ApiNames = Callable[[str], str | None]
"""An API ID's name and listen path from the gateway's catalog, or None."""


def _line_writer(captures: Sequence[Capture], redactor: Redactor, names: dict[str, str] | None = None) -> Write:
    names = names or {}

    def write() -> None:
        for capture in captures:
            log.info("%s", capture_line(capture, redactor, names.get(capture.api_id)), extra=_fields(capture))

    return write


def _json_writer(captures: list[Capture], redactor: Redactor, names: dict[str, str] | None = None) -> Write:
    names = names or {}

    def write() -> None:
        for capture in captures:
            # The one decoder, as the detail and the export use it; it only reads the
            # capture's immutable bytes, so it is safe in this worker thread.
            request = decode(capture, redactor).request
            line = capture_line(capture, redactor, names.get(capture.api_id))
            log.info("%s\n%s", line, json.dumps(request, indent=2), extra=_fields(capture))

    return write


def _fields(capture: Capture) -> dict[str, Any]:
    return {"capture_id": capture.id, "kind": capture.kind, "hook_type": capture.hook_type}


class ConsoleLog:
    """Turns batches of captures into console writes, as the mode says."""

    def __init__(
        self,
        mode: CaptureLog,
        redactor: Redactor,
        rate: int,
        clock: Callable[[], float] = time.monotonic,
        api_names: ApiNames | None = None,
    ) -> None:
        self.mode = mode
        self.api_names = api_names
        self.redactor = redactor
        self.clock = clock
        self.limiter = RateLimiter(rate, clock()) if mode == "auto" else None

    def writes(self, captures: tuple[Capture, ...]) -> list[Write]:
        now = self.clock()
        if self.mode == "json":
            return [_json_writer(list(captures), self.redactor, self._names(captures))]
        if self.limiter is None:
            return [_line_writer(list(captures), self.redactor, self._names(captures))]
        writes = []
        chosen = self.limiter.select(captures, now)
        if chosen:
            writes.append(_line_writer(chosen, self.redactor, self._names(chosen)))
        return writes + self.summary_writes()

    def _names(self, captures: Sequence[Capture]) -> dict[str, str] | None:
        """The API names of these captures, read here on the loop (the writes run in a thread)."""
        if self.api_names is None:
            return None
        names = {}
        for api_id in {c.api_id for c in captures}:
            name = self.api_names(api_id)
            if name:
                names[api_id] = name
        return names

    def summary_writes(self, final: bool = False) -> list[Write]:
        summary = self.limiter.summary(self.clock(), final) if self.limiter else None
        if summary is None:
            return []
        text, fields = summary.text(self.clock()), summary.fields()
        return [lambda: log.info("%s", text, extra=fields)]

    def due_in(self) -> float | None:
        return self.limiter.due_in(self.clock()) if self.limiter else None


async def _next(subscription: Subscription, within: float | None) -> object:
    """The next message, or None when `within` seconds pass first (a summary is due)."""
    if within is None:
        return await subscription.get()
    try:
        return await asyncio.wait_for(subscription.get(), within)
    except TimeoutError:
        return None


async def run_capture_log(
    broadcaster: Broadcaster,
    mode: CaptureLog,
    redactor: Redactor,
    rate: int = 20,
    api_names: ApiNames | None = None,
    subscription: Subscription | None = None,
) -> None:
    """Log captures until the broadcaster closes; from `subscription` when it was made earlier (at start,
    so no capture published before this task first runs is missed), else from a new one."""
    if mode == "off":
        return
    console = ConsoleLog(mode, redactor, rate, api_names=api_names)
    subscription = subscription or broadcaster.subscribe(browser=False)
    try:
        while True:
            message = await _next(subscription, console.due_in())
            writes: list[Write] = []
            if subscription.lagging:
                writes.append(_lag_warning(subscription.dropped))
                subscription.dropped = 0
                subscription.resync()
            if message is CLOSED:
                writes += console.summary_writes(final=True)
            elif isinstance(message, Batch):
                writes += console.writes(message.captures)
            else:
                writes += console.summary_writes()
            if writes:
                await asyncio.to_thread(_run_all, writes)
            if message is CLOSED:
                return
    finally:
        broadcaster.unsubscribe(subscription)


def _lag_warning(dropped: int) -> Write:
    return lambda: log.warning("console too slow: %d captures were not logged", dropped)


def _run_all(writes: list[Write]) -> None:
    for write in writes:
        write()
