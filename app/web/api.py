"""JSON API: list, inspect and clear captures; buffer stats."""

from __future__ import annotations

import asyncio
import json
import time
from itertools import islice
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field

from app.capture.filters import CaptureFilter
from app.capture.record import Capture
from app.capture.redact import Redactor
from app.capture.views import summary_json
from app.proxy.replay import ReplayError
from app.tyk.diff import diff_objects
from app.tyk.protocol import Object
from app.web.context import Context

router = APIRouter(prefix="/api", tags=["captures"])


def capture_filter(
    context: Context,
    kind: Annotated[Literal["dispatch", "event"] | None, Query(description="dispatch or event")] = None,
    hook_type: Annotated[str | None, Query(description="Pre, CustomKeyCheck, PostKeyAuth, Post, Response")] = None,
    hook_name: Annotated[str | None, Query()] = None,
    api_id: Annotated[str | None, Query()] = None,
    method: Annotated[str | None, Query()] = None,
    status: Annotated[int | None, Query(description="Response hook upstream status")] = None,
    modified: Annotated[bool | None, Query(description="only replies that differ (true) or echoes (false)")] = None,
    errors: Annotated[bool | None, Query(description="only failed calls (true) or successful ones (false)")] = None,
    warnings: Annotated[bool | None, Query(description="only replies with lint warnings (true) or without")] = None,
    answered_by: Annotated[
        Literal["echo", "upstream", "mock", "fallback"] | None, Query(description="who answered the gateway")
    ] = None,
    q: Annotated[str | None, Query(max_length=1000, description="text in any field, header or body")] = None,
) -> CaptureFilter:
    return CaptureFilter(
        kind=kind,
        hook_type=hook_type,
        hook_name=hook_name,
        api_id=api_id,
        method=method,
        status=status,
        modified=modified,
        errors=errors,
        warnings=warnings,
        answered_by=answered_by,
        text=q,
        redactor=context.redactor,
    )


Filter = Annotated[CaptureFilter, Depends(capture_filter)]


def get_capture(context: Context, capture_id: int) -> Capture:
    capture = context.store.get(capture_id)
    if capture is None:
        raise HTTPException(404, f"capture {capture_id} is not in the buffer (never captured, evicted or cleared)")
    return capture


@router.get("/captures")
def list_captures(
    context: Context,
    capture_filter: Filter,
    before: Annotated[int | None, Query(ge=1, description="newest first, ids below this one")] = None,
    after: Annotated[int | None, Query(ge=0, description="oldest first, ids above this one")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    """Capture summaries, newest first (or oldest first with `after`), `limit` at a time."""
    if before is not None and after is not None:
        raise HTTPException(400, "use either before (newest first) or after (oldest first), not both")
    source = context.store.oldest_first(after) if after is not None else context.store.newest_first(before)
    page = list(islice(capture_filter.apply(source), limit + 1))
    more = len(page) > limit
    # Each summary is encoded once and shared with the stream: a page of 10,000 is a join.
    items = b",".join(summary_json(c, context.redactor, context.gateway) for c in page[:limit])
    cursor_name = "next_after" if after is not None else "next_before"
    cursor = page[limit - 1].id if more else None
    rest = json.dumps({cursor_name: cursor, "last_id": context.store.last_id}, separators=(",", ":"))
    return Response(b'{"items":[%s],%s' % (items, rest[1:].encode()), media_type="application/json")


@router.get("/captures/{capture_id}")
def capture_detail(context: Context, capture_id: int) -> dict[str, Any]:
    """One capture in full: protobuf JSON of request and reply, decoded bodies, event payload."""
    return context.details.get(get_capture(context, capture_id))


@router.delete("/captures")
def clear_captures(context: Context) -> dict[str, int]:
    """Empty the buffer. Ids keep counting up."""
    return {"cleared": context.clear(), "last_id": context.store.last_id}


@router.get("/stats")
async def stats(context: Context) -> dict[str, Any]:
    s = context.store.stats()
    return {
        "count": s.count,
        "bytes": s.bytes,
        "max_items": s.max_items,
        "max_bytes": s.max_bytes,
        "total": s.total,
        "evicted": s.evicted,
        "first_id": s.first_id,
        "last_id": s.last_id,
        "subscribers": context.broadcaster.subscriber_count,
        "subscriber_lags": context.broadcaster.lag_count,
        "uptime_seconds": round(time.time() - context.started_at, 3),
        "tasks": len(asyncio.all_tasks()),
        "grpc_address": context.settings.grpc_address,
        "grpc_port": context.grpc_port,
        "grpc_unix_socket": context.settings.grpc_unix_socket,
    }


class ReplayRequest(BaseModel):
    to: str | None = Field(None, description="HOST:PORT of a Dispatcher; default: the capture's upstream or rule")
    object: dict[str, Any] | None = Field(None, description="an edited Object (protobuf JSON) to send instead")


@router.post("/captures/{capture_id}/replay", status_code=201)
async def replay_capture(context: Context, capture_id: int, body: ReplayRequest | None = None) -> dict[str, Any]:
    """Send a captured Object again (optionally edited) to a plugin server; the result is a new capture."""
    original = get_capture(context, capture_id)
    if context.replayer is None:
        raise HTTPException(503, "replay is not available")
    body = body or ReplayRequest(to=None, object=None)
    try:
        result = await context.replayer.replay(original, body.to, body.object, context.redactor)
    except ReplayError as exc:
        raise HTTPException(400, str(exc)) from None
    detail = context.details.get(result)
    changes = _against_original(original, result, context.redactor)
    return {"id": result.id, "capture": detail, "changes_vs_original": changes}


def _against_original(original: Capture, result: Capture, redactor: Redactor) -> list[dict[str, Any]] | None:
    """How the new reply differs from the reply the original call got, both as shown (redacted)."""
    if result.reply is None or original.reply is None:
        return None
    try:
        before, after = Object.FromString(original.reply), Object.FromString(result.reply)
    except DecodeError:
        return None
    redactor.object(before)
    redactor.object(after)
    return diff_objects(before, after)
