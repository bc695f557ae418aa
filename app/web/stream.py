"""GET /api/stream: new captures as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from sse_starlette import EventSourceResponse

from app.capture.record import Capture
from app.formats.views import summary_json
from app.live.broadcast import CLOSED, Batch, Cleared, Notice, Subscription
from app.query.matcher import SLICE_SECONDS, Budget, Matcher, QueryTooSlow, compile_query
from app.query.search import SearchView
from app.redaction.redact import Redactor
from app.store.buffer import CaptureStore
from app.tyk.outcome import Gateway
from app.web.context import Context, WebContext
from app.web.filtering import CaptureQuery

router = APIRouter(prefix="/api", tags=["stream"])

# A burst of captures goes out as one write of up to this many bytes instead of
# one write per event: far fewer syscalls when the gateway is busy.
MAX_CHUNK_BYTES = 256 * 1024
RECONNECT_MS = 1000
MAX_ID_DIGITS = 19  # any capture id fits in a signed 64-bit integer


@router.get("/stream")
async def stream(
    context: Context,
    matcher: CaptureQuery,
    after: Annotated[int | None, Query(ge=0, description="send buffered captures after this id first")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Events, each with the id of the newest capture it covers (what Last-Event-ID resumes after):
    `captures` (data = JSON array of summaries, oldest first), `tail` (more captures arrived than a
    page can show: data = {"skipped": {"from", "to", "count"}, "items": [the newest summaries]};
    the skipped ones are in the buffer, GET /api/captures?after= reads them), `gap` (captures
    evicted before they could be sent), `clear` (buffer emptied), `ready` (caught up; live from here),
    `error` (the query went over its time limit; the stream ends). With `q`, only matching captures
    are sent (and never as a tail)."""
    resume_from = _resume_point(last_event_id, after, context.store.last_id)
    settings = context.settings
    return EventSourceResponse(
        capture_events(context, resume_from, matcher),
        ping=settings.sse_ping_seconds,
        # A browser that stops reading would otherwise block its send forever.
        send_timeout=settings.sse_send_timeout_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_point(last_event_id: str | None, after: int | None, newest: int) -> int:
    # The browser sends Last-Event-ID by itself when it reconnects; it wins over `after`,
    # which the page uses on its first connect. Neither: live captures only.
    # An empty one names no event (browsers then send none): as if it were not there.
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        # str.isdigit() also takes '²' or '٣', and int() refuses over 4,300 digits: both were 500s.
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
            raise HTTPException(400, "Last-Event-ID must be a capture id: up to 19 ASCII digits")
        return int(text)
    return newest if after is None else after


def captures_event(summaries: list[bytes], last_id: int) -> bytes:
    """One `captures` event: summaries already encoded as JSON, joined into an array."""
    return b"event: captures\nid: %d\ndata: [%s]\n\n" % (last_id, b",".join(summaries))


def tail_event(batch: Batch, items: int, redactor: Redactor, gateway: Gateway | None = None) -> bytes:
    """One `tail` event: the newest `items` summaries of a batch, and the range of the others."""
    shown = batch.captures[-items:]
    skipped = {"from": batch.first_id, "to": shown[0].id - 1, "count": shown[0].id - batch.first_id}
    return b'event: tail\nid: %d\ndata: {"skipped":%s,"items":[%s]}\n\n' % (
        batch.last_id,
        json.dumps(skipped, separators=(",", ":")).encode(),
        b",".join(summary_json(c, redactor, gateway) for c in shown),
    )


def batch_event(batch: Batch, tail_after: int, redactor: Redactor, gateway: Gateway | None = None) -> bytes:
    """A live batch as one event, made once for every stream: in full up to `tail_after` captures,
    else as a tail. Captures in a skipped range are never encoded unless someone lists them."""
    event = batch.encoded.get("sse")
    if event is None:
        if len(batch) > tail_after:
            event = tail_event(batch, tail_after, redactor, gateway)
        else:
            event = captures_event([summary_json(c, redactor, gateway) for c in batch.captures], batch.last_id)
        batch.encoded["sse"] = event
    return event


def named_event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class _Outbox:
    """Events waiting for the next write, and the id of the newest capture queued.

    Ids are consecutive, so a jump in them is a gap the client is told about.
    """

    def __init__(
        self,
        sent: int,
        tail_after: int,
        redactor: Redactor,
        gateway: Gateway | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        self.sent = sent
        self.matcher = matcher or compile_query("")
        self.budget = Budget()
        """Regex time for the captures being gathered; renewed for each catch-up and each drain."""
        self.tail_after = tail_after
        self.redactor = redactor
        self.gateway = gateway
        self._parts: list[bytes] = []
        self._size = 0
        self._summaries: list[bytes] = []
        self._newest_gathered = sent
        """Summaries of the `captures` event being gathered (catching up from the store)."""

    def add(self, event: bytes) -> None:
        self._end_captures()
        self._parts.append(event)
        self._size += len(event)

    async def view_for(self, capture: Capture) -> SearchView | None:
        """The search view of a large capture this stream's query needs, built in a worker thread."""
        if capture.id <= self.sent or self.matcher.everything:
            return None
        return await self.matcher.view_for(capture, self.budget)

    async def views_for(self, batch: Batch) -> dict[int, SearchView]:
        views: dict[int, SearchView] = {}
        if batch.last_id > self.sent and not self.matcher.everything:
            for capture in batch.captures:
                if (view := await self.view_for(capture)) is not None:
                    views[capture.id] = view
        return views

    def add_capture(self, capture: Capture, view: SearchView | None = None) -> None:
        """One capture read from the store (catching up): gathered with its neighbours into one event."""
        if capture.id <= self.sent:
            return  # already sent
        if capture.id > self.sent + 1:
            self._gap_before(capture.id)
        if self.matcher.matches(capture, self.budget, view):
            summary = summary_json(capture, self.redactor, self.gateway)
            self._summaries.append(summary)
            self._size += len(summary) + 1
            self._newest_gathered = capture.id
        self.sent = capture.id  # a capture the query skips is passed over, not missed

    def add_batch(self, batch: Batch, views: dict[int, SearchView] | None = None) -> None:
        """A live batch: the event every stream shares, unless this one already sent part of it."""
        if batch.last_id <= self.sent:
            return
        if batch.first_id <= self.sent or not self.matcher.everything:
            # Caught up from the store meanwhile (only the rest), or filtered: this stream's own event.
            for capture in batch.captures:
                self.add_capture(capture, (views or {}).get(capture.id))
            return
        if batch.first_id > self.sent + 1:
            self._gap_before(batch.first_id)
        self.add(batch_event(batch, self.tail_after, self.redactor, self.gateway))
        self.sent = batch.last_id

    def _gap_before(self, capture_id: int) -> None:
        missed = {"from": self.sent + 1, "to": capture_id - 1, "missed": capture_id - 1 - self.sent}
        self.add(named_event("gap", missed))

    def _end_captures(self) -> None:
        if self._summaries:
            # The event's id is its newest capture's (a filtered stream resumes after it and
            # looks again at the captures it skipped: they still do not match).
            self._parts.append(captures_event(self._summaries, self._newest_gathered))
            self._summaries = []

    @property
    def full(self) -> bool:
        return self._size >= MAX_CHUNK_BYTES

    def take(self) -> bytes:
        self._end_captures()
        chunk = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return chunk


async def _catch_up(store: CaptureStore, outbox: _Outbox) -> AsyncIterator[bytes]:
    outbox.budget = Budget()
    slice_end = time.perf_counter() + SLICE_SECONDS
    for capture in store.oldest_first(outbox.sent):
        outbox.add_capture(capture, await outbox.view_for(capture))
        if outbox.full:
            yield outbox.take()
        elif time.perf_counter() > slice_end:
            await asyncio.sleep(0)  # a query that skips most captures must still let the loop breathe
            slice_end = time.perf_counter() + SLICE_SECONDS


async def capture_events(context: WebContext, sent: int, matcher: Matcher | None = None) -> AsyncIterator[bytes]:
    """Catch up from the store, then follow the broadcaster; resync from the store when lagging."""
    try:
        async for chunk in _events(context, sent, matcher):
            yield chunk
    except QueryTooSlow as exc:
        yield named_event("error", {"detail": f"invalid query: {exc}", "query_error": exc.as_json()})


async def _events(context: WebContext, sent: int, matcher: Matcher | None) -> AsyncIterator[bytes]:
    store, subscription = context.store, context.broadcaster.subscribe()
    intercept = context.interceptor
    if intercept is not None:
        intercept.page_opened()  # when the last page closes, held calls continue
    outbox = _Outbox(sent, context.settings.sse_tail_after, context.redactor, context.gateway, matcher)
    # Browsers wait 3 s before reconnecting unless told otherwise; a second is plenty.
    outbox.add(f"retry: {RECONNECT_MS}\n\n".encode())
    try:
        if sent > store.last_id:
            # The client saw ids from an earlier run of the inspector: start it afresh.
            outbox.add(named_event("clear", {"last_id": store.last_id}))
            outbox.sent = 0
        async for chunk in _catch_up(store, outbox):
            yield chunk
        outbox.add(named_event("ready", {"last_id": outbox.sent}))
        yield outbox.take()
        while True:
            # The broadcaster gathers captures into batches, so this wakes once per batch.
            message = await subscription.get()
            closed = await _drain(subscription, message, outbox)
            if subscription.lagging:
                cleared = subscription.resync()
                if cleared is not None:
                    # A Clear happened while this stream lagged: the page drops its rows, and the
                    # captures after it follow without a gap (they were cleared, not missed).
                    outbox.add(named_event("clear", {"last_id": cleared}))
                    outbox.sent = max(outbox.sent, cleared)
                async for chunk in _catch_up(store, outbox):
                    yield chunk
            chunk = outbox.take()
            if chunk:
                yield chunk
            if closed:
                return
    finally:
        context.broadcaster.unsubscribe(subscription)
        if intercept is not None:
            intercept.page_closed()


async def _drain(subscription: Subscription, first: object, outbox: _Outbox) -> bool:
    """Move every message already queued into the outbox; True when the stream is closing."""
    outbox.budget = Budget()
    message = first
    while True:
        if message is CLOSED:
            return True
        if isinstance(message, Cleared):
            outbox.add(named_event("clear", {"last_id": message.last_id}))
            outbox.sent = max(outbox.sent, message.last_id)  # what follows comes after the Clear: no gap
        elif isinstance(message, Batch):
            outbox.add_batch(message, await outbox.views_for(message))
        elif isinstance(message, Notice):
            outbox.add(named_event(message.name, message.data))
        if outbox.full:
            return False  # the rest waits for the next write
        message = subscription.get_nowait()
        if message is None:
            return False
