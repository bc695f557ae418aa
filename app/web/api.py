"""JSON API: list, inspect and clear captures; buffer stats."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field

from app.capture.record import Capture
from app.formats.document import snapshot
from app.formats.views import summary_json
from app.proxy.replay import ReplayError, ReplayRefused
from app.query.loop_share import Slices
from app.query.matcher import Matcher
from app.redaction.redact import Redactor
from app.store.buffer import StoreUnavailable
from app.tyk.diff import diff_objects
from app.tyk.protocol import Object
from app.web.context import Context, WebContext
from app.web.filtering import CaptureQuery

router = APIRouter(prefix="/api", tags=["captures"])
JSON = "application/json"


def get_capture(context: Context, capture_id: int) -> Capture:
    capture = context.store.get(capture_id) or context.pins.get(capture_id)  # a pinned one stays after eviction
    if capture is None:
        raise HTTPException(404, f"capture {capture_id} is not in the buffer (never captured, evicted or cleared)")
    return capture


@router.get("/captures")
async def list_captures(
    context: Context,
    matcher: CaptureQuery,
    before: Annotated[int | None, Query(ge=1, description="newest first, ids below this one")] = None,
    after: Annotated[int | None, Query(ge=0, description="oldest first, ids above this one")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    fields: Annotated[
        Literal["summary", "id"], Query(description="`id`: the matching ids only, as numbers (no summaries)")
    ] = "summary",
) -> Response:
    """Capture summaries matching `q`, newest first (or oldest first with `after`), `limit` at a time."""
    if before is not None and after is not None:
        raise HTTPException(400, "use either before (newest first) or after (oldest first), not both")
    source = context.store.oldest_first(after) if after is not None else context.store.newest_first(before)
    page = await first_matches(matcher, source, limit + 1)
    more = len(page) > limit
    if fields == "id":
        # What a filter matches, without encoding (or sending) a summary the page already has.
        items = ",".join(str(c.id) for c in page[:limit]).encode()
    else:
        items = await encoded_summaries(context, page[:limit])
    cursor_name = "next_after" if after is not None else "next_before"
    cursor = page[limit - 1].id if more else None
    rest = json.dumps({cursor_name: cursor, "last_id": context.store.last_id}, separators=(",", ":"))
    return Response(b'{"items":[%s],%s' % (items, rest[1:].encode()), media_type="application/json")


# Summaries encoded for the first time between two turns of the loop: encoding costs 10-50 µs
# each, so a first page of 10,000 would otherwise hold the gRPC calls (and the page's own
# module requests) for a good part of a second.
ENCODE_BATCH = 200


async def encoded_summaries(context: WebContext, captures: list[Capture]) -> bytes:
    """The summaries joined as a JSON array's items; each is encoded once and shared with the stream."""
    await context.verdicts(captures)  # a large capture's, in a worker process
    parts: list[bytes] = []
    fresh = 0
    slices = Slices(context.share)
    for capture in captures:
        if capture.summary_json is None:
            fresh += 1
            if fresh % ENCODE_BATCH == 0:
                await slices.pause()  # paid from the loop time every request shares
        parts.append(summary_json(capture, context.redactor, context.gateway))
    slices.close()
    return b",".join(parts)


async def first_matches(matcher: Matcher, captures: Iterable[Capture], count: int) -> list[Capture]:
    """Up to `count` matching captures, the loop getting turns while the buffer is walked."""
    found: list[Capture] = []
    if count <= 0:
        return found
    async with aclosing(matcher.filter(captures)) as matching:
        async for capture in matching:
            found.append(capture)
            if len(found) >= count:
                break
    return found


@router.get("/captures/{capture_id}", response_class=Response, responses={200: {"content": {JSON: {}}}})
async def capture_detail(context: Context, capture_id: int) -> Response:
    """One capture in full: protobuf JSON of request and reply, decoded bodies, event payload."""
    chunks = await context.detail(get_capture(context, capture_id))
    if len(chunks) == 1:
        return Response(chunks[0], media_type=JSON)
    return StreamingResponse(_each(chunks), media_type=JSON)


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@router.delete("/captures")
async def clear_captures(context: Context) -> dict[str, int]:
    """Empty the buffer (with --store redis://: for every replica). Ids keep counting up."""
    try:
        cleared = await context.clear()
    except StoreUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return {"cleared": cleared, "last_id": context.store.last_id}


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
        "store": "shared" if context.store.shared else "memory",
        "dropped": s.dropped,
        "queued": s.queued,
        "first_id": s.first_id,
        "last_id": s.last_id,
        "subscribers": context.broadcaster.subscriber_count,
        "subscriber_lags": context.broadcaster.lag_count,
        "uptime_seconds": round(time.time() - context.started_at, 3),
        "tasks": len(asyncio.all_tasks()),
        "grpc_address": context.settings.grpc_address,
        "grpc_port": context.grpc_port,
        "grpc_unix_socket": context.settings.grpc_unix_socket,
        "health": context.health(),
    }


class ReplayRequest(BaseModel):
    to: str | None = Field(None, description="HOST:PORT of a Dispatcher; default: the capture's upstream or rule")
    object: dict[str, Any] | None = Field(None, description="an edited Object (protobuf JSON) to send instead")


@router.post(
    "/captures/{capture_id}/replay", status_code=201, response_class=Response, responses={201: {"content": {JSON: {}}}}
)
async def replay_capture(context: Context, capture_id: int, body: ReplayRequest | None = None) -> Response:
    """Send a captured Object again (optionally edited) to a plugin server; the result is a new capture."""
    original = get_capture(context, capture_id)
    if context.replayer is None:
        raise HTTPException(503, "replay is not available")
    body = body or ReplayRequest(to=None, object=None)
    try:
        result = await context.replayer.replay(original, body.to, body.object, context.redactor)
    except ReplayRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except ReplayError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        result = await context.settled(result)
    except StoreUnavailable as exc:
        raise HTTPException(503, f"replayed, but {exc}") from None
    detail = b"".join(await context.detail(result))
    changes = await asyncio.to_thread(_against_original, snapshot(original), snapshot(result), context.redactor)
    # The detail is JSON already: spliced in, not parsed and printed again on the loop.
    document = b'{"id":%d,"capture":%b,"changes_vs_original":%b}' % (result.id, detail, json.dumps(changes).encode())
    return Response(document, status_code=201, media_type=JSON)


def _against_original(original: Capture, result: Capture, redactor: Redactor) -> list[dict[str, Any]] | None:
    """How the new reply differs from the reply the original call got, both as shown (redacted)."""
    if result.reply is None or original.reply is None or result.kind != "dispatch":
        return None  # an event's reply is empty: the gateway ignores it
    try:
        before, after = Object.FromString(original.reply), Object.FromString(result.reply)
    except DecodeError:
        return None
    redactor.object(before)
    redactor.object(after)
    return diff_objects(before, after)
