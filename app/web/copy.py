"""Act on a capture: copy it as a command or a test, download one of its bodies, reveal one redacted value."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from app.capture.inflate import Outcome, is_gzip
from app.capture.inflate import inflate as inflate_gzip
from app.capture.record import Capture
from app.formats import copy_as
from app.formats.compare import compare
from app.formats.document import decode, snapshot
from app.formats.views import body_view
from app.journeys.journey import HOOK_ORDER
from app.redaction.redact import Redactor
from app.store.pins import PinError, pinned_document
from app.web.api import get_capture
from app.web.context import Context, WebContext

router = APIRouter(prefix="/api", tags=["copy"])
log = logging.getLogger("tyk_inspector")
SHOW_ALL = Redactor(enabled=False)

Format = Literal["curl", "send", "grpcurl", "pytest"]
Which = Literal["request", "response", "reply.request", "reply.response"]
EXTENSIONS = {
    "application/json": "json", "text/html": "html", "application/xml": "xml", "image/svg+xml": "svg",
    "text/plain": "txt", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
}  # fmt: skip


@router.get("/captures/{capture_id}/copy", response_class=PlainTextResponse)
async def copy_capture(
    context: Context,
    request: Request,
    capture_id: int,
    as_: Annotated[Format, Query(alias="as", description="curl, send, grpcurl or pytest")],
    gateway: Annotated[str | None, Query(description="gateway base URL for curl (default: --gateway-url)")] = None,
    to: Annotated[str | None, Query(description="HOST:PORT for send, grpcurl and pytest")] = None,
    secrets: Annotated[bool, Query(description="with the real credentials (logged; off with --redact-strict)")] = False,
) -> PlainTextResponse:
    """The capture as a command or a test, redacted like everything the inspector shows unless `secrets`."""
    capture = get_capture(context, capture_id)
    redactor = context.redactor
    if secrets and redactor.enabled:
        _may_reveal(context)
        log.info("capture %d copied as %s with its secrets, for %s", capture_id, as_, _client(request))
        redactor = SHOW_ALL
    target = to or capture.upstream or "localhost:50051"
    if as_ == "curl":
        url = _gateway_url(gateway or context.settings.gateway_url)
        return PlainTextResponse(await _curl(context, capture, url, redactor))
    if as_ == "pytest" and capture.kind == "event":
        raise HTTPException(400, "a pytest skeleton is for Dispatch captures; events have no reply to assert")
    # Decoding and printing a large capture takes long: in a worker thread, from a snapshot.
    text = await asyncio.to_thread(_copy_text, snapshot(capture), as_, target, redactor)
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


async def _curl(context: WebContext, capture: Capture, gateway_url: str, redactor: Redactor) -> str:
    """curl of the client's request: the first hook of the journey (the request before any plugin changed it)."""
    if capture.kind != "dispatch":
        raise HTTPException(400, "copy as curl is for Dispatch captures (an event's request is in its payload)")
    await context.journeys.catch_up()
    first = capture
    journey = context.journeys.journey_of(capture.id)
    if journey is not None:
        members = [c for c in (context.store.get(i) for i in journey.captures) if c is not None]
        first = min(members, key=lambda c: (HOOK_ORDER.get(c.hook_type, 9), c.id), default=capture)
    text = await asyncio.to_thread(_curl_text, snapshot(first), gateway_url, redactor)
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


class RevealRequest(BaseModel):
    """Where the value is: a path in the protobuf JSON of the Object (`request`) or of its reply."""

    which: Literal["request", "reply"] = "request"
    path: list[Annotated[str, Field(max_length=256)] | int] = Field(min_length=1, max_length=16)


@router.post("/captures/{capture_id}/reveal")
async def reveal_value(context: Context, capture_id: int, body: RevealRequest, request: Request) -> dict[str, Any]:
    """One redacted value as captured, e.g. `{"path": ["request", "headers", "Authorization"]}`; logged without it."""
    _may_reveal(context)
    capture = get_capture(context, capture_id)
    value = await asyncio.to_thread(_value_at, snapshot(capture), body.which, body.path)
    if value is None:
        raise HTTPException(404, f"capture {capture_id} has no value at {body.which} {_path_text(body.path)}")
    log.info("capture %d: %s %s revealed for %s", capture_id, body.which, _path_text(body.path), _client(request))
    return {"value": value}


def _may_reveal(context: WebContext) -> None:
    if context.settings.redact_strict:
        raise HTTPException(403, "redacted values stay redacted here (--redact-strict)")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _path_text(path: list[str | int]) -> str:
    """The path for a log line: printable, short (it comes from the browser)."""
    text = ".".join(str(part) for part in path)
    return repr(text[:200])


def _value_at(capture: Capture, which: str, path: list[str | int]) -> str | None:
    decoded = decode(capture, SHOW_ALL)
    node: Any = decoded.reply if which == "reply" else decoded.request
    if which == "reply" and node is None and capture.reply is capture.request:
        node = decoded.request  # an echo: the reply is the request
    for part in path:
        if isinstance(node, dict) and isinstance(part, str):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return None
    if node is None or isinstance(node, dict | list):
        return None
    return node if isinstance(node, str) else str(node)


@router.get("/compare")
async def compare_captures(
    context: Context,
    a: Annotated[int, Query(description="the first capture's id")],
    b: Annotated[int, Query(description="the second capture's id")],
) -> dict[str, Any]:
    """Two captures side by side in Tyk's terms: the differences between what the gateway sent each
    (bodies by JSON field), what each reply changed, and each outcome; redacted like the detail."""
    first, second = get_capture(context, a), get_capture(context, b)
    if first.kind != second.kind:
        raise HTTPException(400, f"capture {a} is a {first.kind} and {b} a {second.kind}: compare two of a kind")
    size = first.size + second.size  # large ones compare in a worker process, off the loop's interpreter lock
    snapshots = snapshot(first), snapshot(second)
    return await context.offloader.run(size, compare, *snapshots, context.redactor, context.gateway)


class PinRequest(BaseModel):
    note: Annotated[str, Field(max_length=2000)] = ""
    mark: Annotated[str, Field(max_length=20)] = ""


@router.put("/captures/{capture_id}/pin")
async def pin_capture(context: Context, capture_id: int, body: PinRequest) -> dict[str, Any]:
    """Pin a capture (or change its note and mark): kept while pinned, whatever the buffer evicts."""
    capture = get_capture(context, capture_id)
    try:
        pin = context.pins.pin(capture, body.note, body.mark)
    except PinError as exc:
        raise HTTPException(409 if "at most" in str(exc) else 400, str(exc)) from None
    return {**pin.as_json(), "limits": context.pins.limits()}


@router.delete("/captures/{capture_id}/pin")
async def unpin_capture(context: Context, capture_id: int) -> dict[str, Any]:
    """Unpin a capture: the buffer's bounds apply to it again (evicted at once if it is gone from it)."""
    if not context.pins.unpin(capture_id):
        raise HTTPException(404, f"capture {capture_id} is not pinned")
    return {"limits": context.pins.limits()}


@router.get("/pins")
async def list_pins(context: Context) -> dict[str, Any]:
    """The pinned captures with their notes and marks, and the bounds (items, bytes)."""
    items = []
    for pin in context.pins.all():
        item = pin.as_json()
        item["in_buffer"] = context.store.get(pin.capture.id) is not None
        items.append(item)
    return {"items": items, "limits": context.pins.limits()}


@router.get("/pins/export")
async def export_pins(context: Context) -> Response:
    """The pinned captures as an export document (it imports back), each record with its note and mark."""
    pins = context.pins.all()
    captures = [snapshot(pin.capture) for pin in pins]
    notes = {pin.capture.id: (pin.note, pin.mark) for pin in pins}
    now_us = time.time_ns() // 1000
    size = sum(c.size for c in captures)
    data = await context.offloader.run(size, pinned_document, captures, notes, now_us, context.redactor)
    name = f"tyk-inspector-pinned-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now_us / 1e6))}.json"
    return Response(
        data, media_type="application/json", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
