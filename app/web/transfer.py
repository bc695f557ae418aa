"""Export captures as a JSON document, import one back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.capture.record import Capture
from app.formats import duplicates
from app.formats.document import snapshot
from app.formats.export import EXPORT_FOOTER, ImportFormatError, export_header, export_records, parse_document
from app.formats.har import HAR_FOOTER, JourneyCaptures, har_entries, har_header
from app.formats.har_import import is_har, parse_har
from app.journeys.journey import Journey
from app.redaction.redact import Redactor
from app.store.buffer import StoreUnavailable
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
        Literal["json", "har", "verify"],
        Query(
            description="json: an export document; har: HAR 1.2, one entry per API request; verify: an export "
            "document of the Dispatch calls alone, what `tyk-inspector verify` checks a plugin build against"
        ),
    ] = "json",
) -> StreamingResponse:
    """Every buffered capture matching `q`, oldest first, as a download."""
    buffered: Iterable[Capture] = context.store.oldest_first()
    if format == "verify":
        buffered = (c for c in buffered if c.kind == "dispatch")  # events have no reply to verify
    # Matched before the response starts, so a query that fails is still a 400.
    captures = await first_matches(matcher, buffered, context.store.stats().count)
    if format == "har":
        return await _har_download(captures, context)
    return _download(captures, "tyk-inspector-verify" if format == "verify" else "tyk-inspector", context)


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
    api = context.catalog.lookup(captures[0].api_id) if captures else None
    name, listen_path = (api.name, api.listen_path) if api is not None else ("", "")
    return JourneyCaptures(journey.id, journey.by, journey.confidence, captures, name, listen_path)


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
            description="captures the buffer holds already (same kind, original id, time and messages): "
            "keep them (import all), skip them, or check: a 409 saying how many, nothing imported",
        ),
    ] = "keep",
) -> dict[str, Any] | JSONResponse:
    """Load an export document or a HAR file (the request body). All or nothing: a bad record rejects the file."""
    body = bytearray()
    async for chunk in request.stream():  # at most max_import_bytes: see app/web/limits.py
        body += chunk
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
    try:
        added = await _store_linked(context, captures)
    except StoreUnavailable as exc:
        raise HTTPException(503, f"cannot import: {exc}") from None
    skipped = len(present) if duplicates_ == "skip" else 0
    return {"imported": len(added), "ids": [c.id for c in added], "duplicates": len(present), "skipped": skipped}


async def _store_linked(context: WebContext, captures: list[Capture]) -> list[Capture]:
    """Store imported captures in batches, each replay linked to its original's new id.

    A capture arrives with its id in the export; `replay_of` names an id of that export. Once
    the original is stored, the link takes its new id; a replay of a capture the file does not
    hold loses the link (it would name whatever capture has that id here).
    """
    added: list[Capture] = []
    new_ids: dict[int, int] = {}
    batch: list[Capture] = []
    exported: list[int] = []
    in_batch: set[int] = set()

    async def store() -> None:
        if added:
            await asyncio.sleep(0)  # the gateway's calls get their turn between batches
        stored = await context.add(batch)
        new_ids.update((old, capture.id) for old, capture in zip(exported, stored, strict=True) if old)
        added.extend(stored)
        batch.clear()
        exported.clear()
        in_batch.clear()

    for capture in captures:
        original = capture.replay_of
        if len(batch) >= IMPORT_BATCH_RECORDS or original in in_batch:
            await store()  # the original first, so its new id is known
        capture.replay_of = new_ids.get(original) if original is not None else None
        exported.append(capture.id)
        in_batch.add(capture.id)
        capture.id = 0
        batch.append(capture)
    if batch:
        await store()
    return added
