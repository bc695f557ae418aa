"""Request journeys over HTTP: the journey of a capture, and journeys newest first."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from app.capture.analysis import has_effect_of, outcome_status_of, warnings_of
from app.formats.document import iso_time
from app.journeys.journey import HOOK_ORDER, Journey
from app.query.matcher import SLICE_SECONDS, Budget
from app.web.api import get_capture
from app.web.context import Context, WebContext
from app.web.filtering import CaptureQuery

router = APIRouter(prefix="/api", tags=["journeys"])


def journey_json(context: WebContext, journey: Journey, steps: bool = True) -> dict[str, Any]:
    """A journey as the API shows it: its steps in hook order, its events, its confidence."""
    store = context.store
    captures = [c for c in (store.get(i) for i in journey.captures) if c is not None]
    captures.sort(key=lambda c: (HOOK_ORDER.get(c.hook_type, 9), c.id))
    events = [c for c in (store.get(i) for i in journey.events) if c is not None]
    statuses = [outcome_status_of(c, context.gateway) for c in captures]
    final = next((s for s in reversed(statuses) if s is not None and s != "continue"), None)
    started = min((c.received_us for c in (*captures, *events)), default=journey.first_us)
    ended = max((c.received_us + c.duration_ns // 1000 for c in (*captures, *events)), default=journey.last_us)
    doc: dict[str, Any] = {
        "id": journey.id,
        "by": journey.by,
        "key": journey.shown_key(context.redactor),
        "confidence": journey.confidence,
        "api_id": journey.api_id,
        "method": journey.method,
        "path": context.redactor.url(journey.path),
        "started_at": started / 1e6,
        "started_at_iso": iso_time(started),
        "duration_ms": round((ended - started) / 1000, 3),
        "status": final,
        "hooks": [c.hook_type for c in captures],
        "capture_ids": [c.id for c in captures],
        "event_ids": [c.id for c in events],
    }
    if steps:
        doc["steps"] = [
            {
                "id": c.id,
                "hook_type": c.hook_type,
                "hook_name": c.hook_name,
                "received_at": c.received_us / 1e6,
                "offset_ms": round((c.received_us - started) / 1000, 3),
                "duration_ms": round(c.duration_ns / 1e6, 3),
                "outcome_status": status,
                "answered_by": c.answered_by,
                "modified": has_effect_of(c, context.gateway),
                "warnings": [w["code"] for w in warnings_of(c, context.gateway)],
                "error": c.error,
                "confidence": journey.step_confidence.get(c.id, journey.confidence),
            }
            for c, status in zip(captures, statuses, strict=True)
        ]
        doc["events"] = [
            {
                "id": e.id,
                "type": e.hook_type,
                "received_at": e.received_us / 1e6,
                "offset_ms": round((e.received_us - started) / 1000, 3),
                "confidence": journey.step_confidence.get(e.id, "low"),
            }
            for e in events
        ]
    return doc


@router.get("/captures/{capture_id}/journey")
async def capture_journey(context: Context, capture_id: int) -> dict[str, Any]:
    """The request journey this capture belongs to: every hook call of that API request, in order."""
    capture = get_capture(context, capture_id)
    await context.journeys.catch_up()
    journey = context.journeys.journey_of(capture.id)
    if journey is None:
        why = "an event with no request seen" if capture.kind == "event" else "not a decodable hook call"
        raise HTTPException(404, f"capture {capture_id} belongs to no journey ({why})")
    return journey_json(context, journey)


@router.get("/journeys")
async def list_journeys(
    context: Context,
    matcher: CaptureQuery,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    steps: Annotated[bool, Query(description="include each journey's steps and events")] = False,
) -> dict[str, Any]:
    """Journeys newest first, one row per API request; with `q`, those with a matching capture."""
    await context.journeys.catch_up()
    budget = Budget()
    items: list[dict[str, Any]] = []
    slice_end = time.perf_counter() + SLICE_SECONDS
    for journey in context.journeys.newest_first():
        if time.perf_counter() > slice_end:
            await asyncio.sleep(0)  # the gateway's calls get the loop between slices
            slice_end = time.perf_counter() + SLICE_SECONDS
        if not matcher.everything and not any(
            (c := context.store.get(i)) is not None and matcher.matches(c, budget)
            for i in (*journey.captures, *journey.events)
        ):
            continue
        items.append(journey_json(context, journey, steps))
        if len(items) >= limit:
            break
    return {"items": items, "count": len(context.journeys)}
