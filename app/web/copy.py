"""Act on a capture: copy it as a command or a test, download one of its bodies."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response

from app.capture.inflate import Outcome, is_gzip
from app.capture.inflate import inflate as inflate_gzip
from app.capture.record import Capture
from app.formats import copy_as
from app.formats.document import decode, snapshot
from app.formats.views import body_view
from app.journeys.journey import HOOK_ORDER
from app.redaction.redact import Redactor
from app.web.api import get_capture
from app.web.context import Context, WebContext

router = APIRouter(prefix="/api", tags=["copy"])

Format = Literal["curl", "send", "grpcurl", "pytest"]
Which = Literal["request", "response", "reply.request", "reply.response"]
EXTENSIONS = {
    "application/json": "json", "text/html": "html", "application/xml": "xml", "image/svg+xml": "svg",
    "text/plain": "txt", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
}  # fmt: skip


@router.get("/captures/{capture_id}/copy", response_class=PlainTextResponse)
async def copy_capture(
    context: Context,
    capture_id: int,
    as_: Annotated[Format, Query(alias="as", description="curl, send, grpcurl or pytest")],
    gateway: Annotated[str | None, Query(description="gateway base URL for curl (default: --gateway-url)")] = None,
    to: Annotated[str | None, Query(description="HOST:PORT for send, grpcurl and pytest")] = None,
) -> PlainTextResponse:
    """The capture as a command or a test, redacted like everything the inspector shows."""
    capture = get_capture(context, capture_id)
    target = to or capture.upstream or "localhost:50051"
    if as_ == "curl":
        return PlainTextResponse(await _curl(context, capture, _gateway_url(gateway or context.settings.gateway_url)))
    if as_ == "pytest" and capture.kind == "event":
        raise HTTPException(400, "a pytest skeleton is for Dispatch captures; events have no reply to assert")
    # Decoding and printing a large capture takes long: in a worker thread, from a snapshot.
    text = await asyncio.to_thread(_copy_text, snapshot(capture), as_, target, context.redactor)
    if text is None:
        raise HTTPException(400, f"capture {capture_id} is not a decodable message: nothing to copy")
    return PlainTextResponse(text)


def _copy_text(capture: Capture, as_: Format, target: str, redactor: Redactor) -> str | None:
    decoded = decode(capture, redactor)
    if decoded.request is None:
        return None
    event = capture.kind == "event"
    if as_ == "send":
        return copy_as.send(decoded.request, capture.id, target, event)
    if as_ == "grpcurl":
        return copy_as.grpcurl(decoded.request, target, event)
    reply = decoded.reply if decoded.reply is not None else decoded.request
    about = f"{capture.hook_type} hook {capture.hook_name} of API {capture.api_id}"
    return copy_as.pytest_test(decoded.request, reply, capture.id, target, about)


def _gateway_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HTTPException(400, f"gateway {url!r} is not an http(s) base URL, e.g. http://localhost:8080")
    return url


async def _curl(context: WebContext, capture: Capture, gateway_url: str) -> str:
    """curl of the client's request: the first hook of the journey (the request before any plugin changed it)."""
    if capture.kind != "dispatch":
        raise HTTPException(400, "copy as curl is for Dispatch captures (an event's request is in its payload)")
    await context.journeys.catch_up()
    first = capture
    journey = context.journeys.journey_of(capture.id)
    if journey is not None:
        members = [c for c in (context.store.get(i) for i in journey.captures) if c is not None]
        first = min(members, key=lambda c: (HOOK_ORDER.get(c.hook_type, 9), c.id), default=capture)
    text = await asyncio.to_thread(_curl_text, snapshot(first), gateway_url, context.redactor)
    if text is None:
        raise HTTPException(400, f"capture {capture.id} is not a decodable Object: nothing to copy")
    return text


def _curl_text(first: Capture, gateway_url: str, redactor: Redactor) -> str | None:
    decoded = decode(first, redactor)
    if decoded.request is None or decoded.request_object is None:
        return None
    return copy_as.curl(decoded.request.get("request", {}), gateway_url, bytes(decoded.request_object.request.raw_body))


@router.get("/captures/{capture_id}/body/{which}")
async def download_body(
    context: Context,
    capture_id: int,
    which: Which,
    decoded: Annotated[bool, Query(description="inflate a gzip body")] = False,
) -> Response:
    """A body as a file download (never shown inline), with a name and extension from its content."""
    capture = get_capture(context, capture_id)
    if capture.kind != "dispatch":
        raise HTTPException(400, "only Dispatch captures carry bodies")
    # Decoding, inflating and sniffing a large body takes long: in a worker thread, from a snapshot.
    data, media, suffix = await asyncio.to_thread(_body_of, snapshot(capture), which, decoded, context.redactor)
    extension = EXTENSIONS.get(media, "bin") + suffix
    name = f"capture-{capture_id}-{which.replace('.', '-')}-body.{extension}"
    return Response(
        data,
        # Always a download: a body is attacker-controlled and must never render in the page's origin.
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Media-Type": media},
    )


def _body_of(capture: Capture, which: Which, inflate: bool, redactor: Redactor) -> tuple[bytes, str, str]:
    """The body's bytes (inflated when asked), its media type and a file suffix; HTTPException when there is none."""
    messages = decode(capture, redactor)
    source = messages.reply_object if which.startswith("reply.") else messages.request_object
    if which.startswith("reply.") and source is None and capture.reply is capture.request:
        source = messages.request_object  # an echo: the reply is the request
    if source is None:
        raise HTTPException(404, f"capture {capture.id} has no {which} (undecodable, or no reply)")
    part = which.removeprefix("reply.")
    data = bytes(source.request.raw_body if part == "request" else source.response.raw_body)
    if not data:
        raise HTTPException(404, f"capture {capture.id} has an empty {which} body")
    suffix = ""
    if inflate and is_gzip(data):
        inflated = inflate_gzip(data)
        if inflated.outcome is Outcome.NOT_GZIP:
            raise HTTPException(400, "the body starts like gzip but does not inflate")
        if inflated.outcome is Outcome.TOO_LARGE:
            raise HTTPException(413, f"the body inflates to more than {inflated.limit} bytes")
        if inflated.outcome is Outcome.CUT_SHORT:
            raise HTTPException(400, "the gzip body is cut short: download it as it came (without decoded=1)")
        data = inflated.data
    elif is_gzip(data):
        suffix = ".gz"
    return data, body_view(data)["media_type"], suffix  # the media type of the content, inflated when gzip
