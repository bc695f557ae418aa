"""GET /api/stream: new captures as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.broadcast import CLOSED, Cleared
from app.store import Capture
from app.web.context import Context, WebContext

router = APIRouter(prefix="/api", tags=["stream"])


def summary_json(capture: Capture) -> str:
    # Cached on the capture: with N browsers open it is still encoded once.
    if capture.summary_json is None:
        capture.summary_json = json.dumps(capture.summary(), separators=(",", ":"))
    return capture.summary_json


@router.get("/stream")
async def stream(
    context: Context,
    after: Annotated[int | None, Query(ge=0, description="send buffered captures after this id first")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Events: `capture` (id = capture id, data = summary), `gap` (captures evicted before they
    could be sent), `clear` (buffer emptied), `ready` (caught up; live from here)."""
    resume_from = _resume_point(last_event_id, after, context.store.last_id)
    settings = context.settings
    return EventSourceResponse(
        capture_events(context, resume_from),
        ping=settings.sse_ping_seconds,
        # A browser that stops reading would otherwise block its send forever.
        send_timeout=settings.sse_send_timeout_seconds,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_point(last_event_id: str | None, after: int | None, newest: int) -> int:
    # The browser sends Last-Event-ID by itself when it reconnects; it wins over `after`,
    # which the page uses on its first connect. Neither: live captures only.
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id)
    return newest if after is None else after


async def capture_events(context: WebContext, sent: int) -> AsyncIterator[ServerSentEvent]:
    """Catch up from the store, then follow the broadcaster; resync from the store when lagging.

    Ids are consecutive, so any jump in them is a gap the client is told about.
    """
    store, subscription = context.store, context.broadcaster.subscribe()
    try:
        if sent > store.last_id:
            # The client saw ids from an earlier run of the inspector: start it afresh.
            yield _json_event("clear", {"last_id": store.last_id})
            sent = 0
        for capture in store.oldest_first(sent):
            for event in _capture_events(capture, sent):
                yield event
            sent = capture.id
        yield _json_event("ready", {"last_id": sent})
        while True:
            message = await subscription.get()
            if message is CLOSED:
                return
            if subscription.lagging:
                subscription.resync()
                for capture in store.oldest_first(sent):
                    for event in _capture_events(capture, sent):
                        yield event
                    sent = capture.id
            elif isinstance(message, Cleared):
                yield _json_event("clear", {"last_id": message.last_id})
            elif isinstance(message, Capture) and message.id > sent:
                for event in _capture_events(message, sent):
                    yield event
                sent = message.id
    finally:
        context.broadcaster.unsubscribe(subscription)


def _capture_events(capture: Capture, sent: int) -> list[ServerSentEvent]:
    events = []
    if capture.id > sent + 1:
        events.append(_json_event("gap", {"from": sent + 1, "to": capture.id - 1, "missed": capture.id - 1 - sent}))
    events.append(ServerSentEvent(data=summary_json(capture), event="capture", id=str(capture.id)))
    return events


def _json_event(name: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), event=name)
