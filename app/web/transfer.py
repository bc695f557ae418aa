"""Export captures as a JSON document, import one back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.capture import duplicates
from app.capture.document import snapshot
from app.capture.export import EXPORT_FOOTER, ImportFormatError, export_header, export_records, parse_document
from app.capture.har import HAR_FOOTER, JourneyCaptures, har_entries, har_header
from app.capture.har_import import is_har, parse_har
from app.capture.journey import Journey
from app.capture.record import Capture
from app.capture.redact import Redactor
from app.capture.store import StoreUnavailable
from app.tyk.outcome import Gateway
from app.web.api import first_matches, get_capture
from app.web.context import Context, WebContext
from app.web.filtering import CaptureQuery

router = APIRouter(prefix="/api", tags=["export"])

# Imported captures are stored this many at a time, with the loop free in between.
IMPORT_BATCH_RECORDS = 500


@router.get("/export")
async def export_captures(
    context: Context,
    matcher: CaptureQuery,
    format: Annotated[
        Literal["json", "har"], Query(description="json: an export document; har: HAR 1.2, one entry per API request")
    ] = "json",
) -> StreamingResponse:
    """Every buffered capture matching `q`, oldest first, as a download."""
    # Matched before the response starts, so a query that fails is still a 400.
    captures = await first_matches(matcher, context.store.oldest_first(), context.store.stats().count)
    if format == "har":
        return await _har_download(captures, context)
    return _download(captures, "tyk-inspector", context)


async def _har_download(captures: list[Capture], context: WebContext) -> StreamingResponse:
    """The journeys of the matching captures, each in full (every hook of the request), oldest first."""
    await context.journeys.catch_up()
    seen: dict[int, Journey] = {}
    for capture in captures:
        journey = context.journeys.journey_of(capture.id)
        if journey is not None and journey.id not in seen:
            seen[journey.id] = journey
    journeys = [seen[i] for i in sorted(seen)]
    filename = f"tyk-inspector-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.har"
    return StreamingResponse(
        _har_stream(journeys, context),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _har_stream(journeys: list[Journey], context: WebContext) -> AsyncIterator[bytes]:
    yield har_header().encode("utf-8")
    items = (_journey_captures(journey, context) for journey in journeys)
    convert = partial(har_piece, context.redactor, context.gateway)
    async for piece in context.offloader.batches((item for item in items if item.captures), convert):
        yield piece
    yield HAR_FOOTER.encode("utf-8")


def _journey_captures(journey: Journey, context: WebContext) -> JourneyCaptures:
    captures = [snapshot(c) for c in (context.store.get(i) for i in journey.captures) if c is not None]
    return JourneyCaptures(journey.id, journey.by, journey.confidence, captures)


def har_piece(redactor: Redactor, gateway: Gateway, batch: list[JourneyCaptures], first: bool) -> bytes:
    return har_entries(batch, redactor, gateway, first).encode("utf-8")


@router.get("/captures/{capture_id}/export")
async def export_capture(context: Context, capture_id: int) -> StreamingResponse:
    """One capture as an export document."""
    return _download([get_capture(context, capture_id)], f"tyk-inspector-capture-{capture_id}", context)


def _download(captures: Iterable[Capture], stem: str, context: WebContext) -> StreamingResponse:
    now_us = time.time_ns() // 1000
    filename = f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now_us / 1e6))}.json"
    return StreamingResponse(
        _export_stream(captures, now_us, context),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def export_piece(redactor: Redactor, batch: list[Capture], first: bool) -> bytes:
    return export_records(batch, redactor, first).encode("utf-8")


async def _export_stream(captures: Iterable[Capture], now_us: int, context: WebContext) -> AsyncIterator[bytes]:
    yield export_header(now_us, context.redactor).encode("utf-8")
    convert = partial(export_piece, context.redactor)
    async for piece in context.offloader.batches((snapshot(c) for c in captures), convert):
        yield piece
    yield EXPORT_FOOTER.encode("utf-8")


async def _buffered(context: WebContext) -> list[Capture]:
    """The buffer's captures, read on the loop a slice at a time (the comparing happens in a thread)."""
    held: list[Capture] = []
    for capture in context.store.oldest_first():
        held.append(capture)
        if len(held) % 1000 == 0:
            await asyncio.sleep(0)  # the gateway's calls get their turn
    return held


@router.post("/import", status_code=201, response_model=None)
async def import_captures(
    context: Context,
    request: Request,
    duplicates_: Annotated[
        Literal["keep", "skip", "check"],
        Query(
            alias="duplicates",
            description="captures the buffer holds already (same kind, time and bytes): keep them (import all), "
            "skip them, or check: a 409 saying how many, nothing imported",
        ),
    ] = "keep",
) -> dict[str, Any] | JSONResponse:
    """Load an export document or a HAR file (the request body). All or nothing: a bad record rejects the file."""
    limit = context.settings.max_import_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"import of {declared} bytes is larger than the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"import is larger than the {limit}-byte limit")
    if not body:
        raise HTTPException(400, "empty body: send an export document (application/json)")
    try:
        if is_har(body):  # one json.loads of the whole file: in a worker process when it is large
            captures = await context.offloader.run(len(body), parse_har, bytes(body))
        else:
            captures = await asyncio.to_thread(parse_document, body)
    except ImportFormatError as exc:
        raise HTTPException(400, f"cannot import: {exc}") from None
    present = await asyncio.to_thread(duplicates.present_in, captures, await _buffered(context))
    if present and duplicates_ == "check":
        return JSONResponse(
            {
                "detail": f"{len(present)} of the {len(captures)} captures are here already (imported before?)",
                "duplicates": len(present),
                "total": len(captures),
            },
            status_code=409,
        )
    if duplicates_ == "skip":
        captures = [c for position, c in enumerate(captures) if position not in present]
    added: list[Capture] = []
    try:
        for start in range(0, len(captures), IMPORT_BATCH_RECORDS):
            if start:
                await asyncio.sleep(0)  # the gateway's calls get their turn between batches
            added += await context.add(captures[start : start + IMPORT_BATCH_RECORDS])
    except StoreUnavailable as exc:
        raise HTTPException(503, f"cannot import: {exc}") from None
    skipped = len(present) if duplicates_ == "skip" else 0
    return {"imported": len(added), "ids": [c.id for c in added], "duplicates": len(present), "skipped": skipped}
