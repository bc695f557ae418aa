"""Export captures as a JSON document, import one back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from app.capture.export import ImportFormatError, export_chunks, parse_document
from app.capture.record import Capture
from app.web.api import first_matches, get_capture
from app.web.context import Context, WebContext
from app.web.filtering import CaptureQuery

router = APIRouter(prefix="/api", tags=["export"])

# Records per chunk of a streamed export: the loop gets a turn between chunks,
# so a large export never holds up the gRPC handlers for long.
EXPORT_CHUNK_RECORDS = 50


@router.get("/export")
async def export_captures(context: Context, matcher: CaptureQuery) -> StreamingResponse:
    """Every buffered capture matching `q`, oldest first, as a download."""
    # Matched before the response starts, so a query that fails is still a 400.
    captures = await first_matches(matcher, context.store.oldest_first(), context.store.stats().count)
    return _download(captures, "tyk-inspector", context)


@router.get("/captures/{capture_id}/export")
def export_capture(context: Context, capture_id: int) -> StreamingResponse:
    """One capture as an export document."""
    return _download([get_capture(context, capture_id)], f"tyk-inspector-capture-{capture_id}", context)


def _download(captures: Iterable[Capture], stem: str, context: WebContext) -> StreamingResponse:
    now_us = time.time_ns() // 1000
    filename = f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now_us / 1e6))}.json"
    return StreamingResponse(
        _in_chunks(export_chunks(captures, now_us, context.redactor)),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _in_chunks(pieces: Iterable[str]) -> AsyncIterator[bytes]:
    # An async generator runs on the event loop, where the store lives; a sync
    # one would be iterated in a worker thread while captures are being added.
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) >= EXPORT_CHUNK_RECORDS:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    yield "".join(batch).encode("utf-8")


@router.post("/import", status_code=201)
async def import_captures(context: Context, request: Request) -> dict[str, Any]:
    """Load an export document (the request body). All or nothing: a bad record rejects the file."""
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
        captures = parse_document(bytes(body))
    except ImportFormatError as exc:
        raise HTTPException(400, f"cannot import: {exc}") from None
    added = context.add(captures)
    return {"imported": len(added), "ids": [c.id for c in added]}
