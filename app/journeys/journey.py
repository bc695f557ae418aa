"""Request journeys: the Dispatch calls (and events) that one API request made, correlated.

The gateway calls the plugin server once per hook of a request (Pre, CustomKeyCheck,
PostKeyAuth, Post, Response) and says nothing that ties those calls together. In order of
trust, a journey is found by:

1. the inspector's own tag (`--tag-requests`: a header the Pre hook's reply sets, which every
   later hook sees in `request.headers`),
2. the W3C trace id of the `traceparent` gRPC metadata (Tyk 5.11+ with OpenTelemetry),
3. a request-id header (`X-Request-Id`, `X-Correlation-Id`, `Request-Id`, `X-Amzn-Trace-Id`),
   sent by the client or set by a Pre hook's reply,
4. else a heuristic: the same gateway connection (peer), API ID and method, hooks in the
   gateway's order, within a time window; the path must match for "medium" confidence.

Within one correlation id, a hook seen again or a hook earlier in the order starts a new
journey (a retry that reuses its request id). Events (AuthFailure, ...) join the journey of
their originating request: by its tag or request id, else by API ID and Meta.Path.

A journey's key (the tag, trace id or request id) is the value of a header or metadata key: it
leaves the process through `Journey.shown_key`, redacted when that name is redacted, so a
hidden request id is neither shown nor confirmed by a `journey:` search. Grouping uses the
real value.

Indexed lazily, when the API asks, over the captures added since the last time: never on the
Dispatch path, bounded by the store (evicted captures leave the index with it).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.query.indexing import BufferIndex
from app.redaction.redact import REDACTED, Redactor
from app.store.buffer import CaptureStore
from app.tyk.protocol import Event, Object

TAG_HEADER = "X-Tyk-Inspector-Request"
TRACEPARENT = "traceparent"
REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id", "request-id", "x-amzn-trace-id")
HOOK_ORDER = {"Pre": 0, "CustomKeyCheck": 1, "PostKeyAuth": 2, "Post": 3, "Response": 4}
# The longest a request's hooks are apart: the upstream's time sits between Post and Response.
WINDOW_US = 60_000_000
# Open heuristic journeys kept per (peer, API, method): concurrent requests of one route.
MAX_CANDIDATES = 64

By = Literal["tag", "traceparent", "request-id", "heuristic"]
Confidence = Literal["high", "medium", "low"]
_RANK = {"high": 2, "medium": 1, "low": 0}


@dataclass(eq=False)
class Journey:
    """One API request: its hook calls in order, and the events that belong to it."""

    id: int
    """The id of its first capture (stable while the journey lasts)."""
    by: By
    key: str | None
    api_id: str
    method: str
    path: str
    peer: str
    first_us: int
    last_us: int
    captures: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    confidence: Confidence = "high"
    step_confidence: dict[int, Confidence] = field(default_factory=dict)
    last_rank: int = -1
    hooks: set[tuple[str, str]] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    """The header (or gRPC metadata) names the key was read from, lower-cased."""

    def shown_key(self, redactor: Redactor) -> str | None:
        """The key as it may leave the process: hidden when a name it came from is redacted."""
        if self.key is not None and any(redactor.hides_header(name) for name in self.sources):
            return REDACTED
        return self.key

    def weaken(self, capture_id: int, confidence: Confidence) -> None:
        self.step_confidence[capture_id] = confidence
        if _RANK[confidence] < _RANK[self.confidence]:
            self.confidence = confidence

    def accepts(self, capture: Capture, rank: int) -> bool:
        """Whether the capture can be the next hook of this request."""
        return (
            rank >= self.last_rank
            and (capture.hook_type, capture.hook_name) not in self.hooks
            and 0 <= capture.received_us - self.last_us <= WINDOW_US
        )


@dataclass(frozen=True, slots=True)
class Correlation:
    by: By
    key: str
    source: str
    """The header or metadata name the key is the value of (lower-cased)."""


def correlation_of(capture: Capture, obj: Object | None, reply: Object | None) -> Correlation | None:
    """What ties a Dispatch capture to the other calls of its request, best first."""
    headers = {k.lower(): v for k, v in obj.request.headers.items()} if obj is not None else {}
    added = {k.lower(): v for k, v in reply.request.set_headers.items()} if reply is not None else {}
    tag = headers.get(TAG_HEADER.lower()) or added.get(TAG_HEADER.lower())
    if tag:
        return Correlation("tag", tag, TAG_HEADER.lower())
    for key, value in capture.metadata:
        if key == TRACEPARENT and isinstance(value, str):
            parts = value.split("-")
            if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
                return Correlation("traceparent", parts[1], TRACEPARENT)
    for name in REQUEST_ID_HEADERS:
        request_id = headers.get(name) or added.get(name)
        if request_id:
            return Correlation("request-id", request_id, name)
    return None


def _base_path(path: str) -> str:
    return path.split("?", 1)[0]


class JourneyIndex(BufferIndex):
    """Journeys of the buffered captures, brought up to date on demand."""

    def __init__(self, store: CaptureStore) -> None:
        super().__init__(store)
        self._journeys: dict[int, Journey] = {}
        """By id, oldest first (insertion order)."""
        self._by_capture: dict[int, Journey] = {}
        self._by_key: dict[tuple[By, str], Journey] = {}
        self._candidates: dict[tuple[str, str, str], deque[Journey]] = {}

    # --- lookups -------------------------------------------------------------------------------

    def journey_of(self, capture_id: int) -> Journey | None:
        return self._by_capture.get(capture_id)

    def journey_id(self, capture_id: int) -> int | None:
        journey = self._by_capture.get(capture_id)
        return None if journey is None else journey.id

    def journey_key(self, capture_id: int, redactor: Redactor) -> str | None:
        """The key of the capture's journey as shown (see Journey.shown_key)."""
        journey = self._by_capture.get(capture_id)
        return None if journey is None else journey.shown_key(redactor)

    def get(self, journey_id: int) -> Journey | None:
        return self._journeys.get(journey_id)

    def newest_first(self) -> Iterator[Journey]:
        return reversed(list(self._journeys.values()))

    def __len__(self) -> int:
        return len(self._journeys)

    # --- indexing ------------------------------------------------------------------------------

    def add(self, capture: Capture) -> None:
        """Index one capture (in id order)."""
        self._indexed = max(self._indexed, capture.id)
        if capture.kind == "event":
            self._add_event(capture)
            return
        rank = HOOK_ORDER.get(capture.hook_type)
        if rank is None:
            return  # undecodable, or not a hook call
        obj, reply = _objects(capture)
        correlation = correlation_of(capture, obj, reply)
        if correlation is not None:
            self._add_keyed(capture, rank, correlation)
        else:
            self._add_heuristic(capture, rank)

    def _new(self, capture: Capture, by: By, key: str | None) -> Journey:
        journey = Journey(
            id=capture.id, by=by, key=key, api_id=capture.api_id, method=capture.method, path=capture.path,
            peer=capture.peer, first_us=capture.received_us, last_us=capture.received_us,
        )  # fmt: skip
        self._journeys[journey.id] = journey
        return journey

    def _join(self, journey: Journey, capture: Capture, rank: int, confidence: Confidence) -> None:
        journey.captures.append(capture.id)
        journey.hooks.add((capture.hook_type, capture.hook_name))
        journey.last_rank = max(journey.last_rank, rank)
        journey.last_us = max(journey.last_us, capture.received_us)
        journey.weaken(capture.id, confidence)
        self._by_capture[capture.id] = journey

    def _add_keyed(self, capture: Capture, rank: int, correlation: Correlation) -> None:
        slot = (correlation.by, correlation.key)
        journey = self._by_key.get(slot)
        if journey is None or not journey.accepts(capture, rank):
            journey = self._new(capture, correlation.by, correlation.key)
            self._by_key[slot] = journey
        journey.sources.add(correlation.source)
        self._join(journey, capture, rank, "high")

    def _add_heuristic(self, capture: Capture, rank: int) -> None:
        slot = (capture.peer, capture.api_id, capture.method)
        candidates = self._candidates.setdefault(slot, deque(maxlen=MAX_CANDIDATES))
        open_ones = [j for j in candidates if j.accepts(capture, rank) and j.id in self._journeys]
        same_path = [j for j in open_ones if _base_path(j.path) == _base_path(capture.path)]
        if rank == 0 and not same_path:
            journey = None  # a Pre hook on a new path: a new request
        elif same_path:
            journey = same_path[0]  # the oldest open one: requests of one route finish in order
        elif open_ones and rank > 0:
            journey = open_ones[0]  # the URL was rewritten on the way
        else:
            journey = None
        if journey is None:
            journey = self._new(capture, "heuristic", None)
            candidates.append(journey)
            # A journey that starts after its first hook may have lost the calls before it.
            self._join(journey, capture, rank, "medium" if rank == 0 else "low")
            return
        several = len(same_path) > 1 or (not same_path and len(open_ones) > 1)
        self._join(journey, capture, rank, "low" if several or not same_path else "medium")

    def _add_event(self, capture: Capture) -> None:
        meta, dump = _event_meta(capture)
        journey: Journey | None = None
        confidence: Confidence = "low"
        headers = _dump_headers(dump)
        tag = headers.get(TAG_HEADER.lower())
        keys: list[tuple[By, str, str]] = [("tag", tag, TAG_HEADER.lower())] if tag else []
        keys += [("request-id", headers[name], name) for name in REQUEST_ID_HEADERS if headers.get(name)]
        for by, key, source in keys:
            journey = self._by_key.get((by, key))
            if journey is not None:
                journey.sources.add(source)  # the event's request carried the key under this name
                confidence = "high"
                break
        if journey is None:
            path = meta.get("Path") if isinstance(meta.get("Path"), str) else capture.path
            journey = self._recent(capture, _base_path(path or ""))
        if journey is None:
            return
        journey.events.append(capture.id)
        journey.step_confidence[capture.id] = confidence
        self._by_capture[capture.id] = journey

    def _recent(self, capture: Capture, path: str) -> Journey | None:
        """The newest journey on the event's API and path still within the window."""
        for journey in reversed(self._journeys.values()):
            if capture.received_us - journey.last_us > WINDOW_US:
                return None
            if journey.api_id == capture.api_id and _base_path(journey.path) == path:
                return journey
        return None

    def _prune(self) -> None:
        """Forget captures the store no longer has (evicted or cleared)."""
        first = self.store.first_id
        for journey in list(self._journeys.values()):
            if journey.id >= first:
                break  # journeys are in order of their first capture
            for capture_id in (*journey.captures, *journey.events):
                if capture_id < first:
                    self._by_capture.pop(capture_id, None)
            journey.captures = [c for c in journey.captures if c >= first]
            journey.events = [c for c in journey.events if c >= first]
            if journey.captures or journey.events:
                continue  # partly still buffered
            del self._journeys[journey.id]
            if journey.key is not None and self._by_key.get((journey.by, journey.key)) is journey:
                del self._by_key[(journey.by, journey.key)]
        for slot, candidates in list(self._candidates.items()):
            if all(j.id not in self._journeys for j in candidates):
                del self._candidates[slot]


def _objects(capture: Capture) -> tuple[Object | None, Object | None]:
    try:
        obj = Object.FromString(capture.request)
    except DecodeError:
        return None, None
    if capture.reply is None or capture.reply is capture.request or capture.hook_type != "Pre":
        return obj, None
    try:
        return obj, Object.FromString(capture.reply)
    except DecodeError:
        return obj, None


def _event_meta(capture: Capture) -> tuple[dict[str, Any], str]:
    try:
        doc = json.loads(Event.FromString(capture.request).payload)
        meta = doc["message"]["Meta"]
    except (DecodeError, ValueError, KeyError, TypeError, RecursionError):
        return {}, ""
    if not isinstance(meta, dict):
        return {}, ""
    encoded = meta.get("OriginatingRequest")
    try:
        dump = base64.b64decode(encoded, validate=True).decode("utf-8", "replace") if encoded else ""
    except (binascii.Error, ValueError, TypeError):
        dump = ""
    return meta, dump


def _dump_headers(dump: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in dump.split("\r\n\r\n", 1)[0].split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
