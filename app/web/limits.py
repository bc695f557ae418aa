"""How many bytes a request may send, per route, refused before they are read.

A route that reads its whole body first and checks it afterwards lets anyone who can reach the
port make the process hold that body: three 400 MB posts to the login form took it to 2 GB. Each
route therefore has a cap, checked against Content-Length before the route runs and counted
while a body without one (chunked) arrives; past it the request is a 413 that names the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

KiB = 1024
MiB = 1024 * KiB

LOGIN_BODY_BYTES = 8 * KiB
"""The login form holds one token; even a long one, percent-encoded, fits many times over."""
DEFAULT_BODY_BYTES = 64 * KiB
"""Every other route takes no body or a small JSON one; a route that takes more names its limit in route_limits."""

DRAIN_BYTES = 1024 * KiB
DRAIN_SECONDS = 2.0
"""A refused body is read on (and dropped) up to this much, so a client still sending sees the 413."""

_REPLAY = re.compile(r"/api/captures/[^/]+/replay")
_HELD_EDIT = re.compile(r"/api/held/[^/]+/(continue|respond)")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    bytes: int
    what: str

    def refusal(self, declared: int | None = None) -> str:
        size = f"of {declared} bytes " if declared is not None else ""
        return f"{self.what} {size}is larger than its {self.bytes}-byte limit"


def route_limits(settings: Settings) -> dict[str, BodyLimit]:
    """The body limit of each route that takes a body larger than the default."""
    return {
        "/login": BodyLimit(LOGIN_BODY_BYTES, "a login form"),
        "/logout": BodyLimit(LOGIN_BODY_BYTES, "a logout form"),
        "/api/import": BodyLimit(settings.max_import_bytes, "an import"),
        # An edited Object as protobuf JSON: base64 bodies grow by a third, names and quotes add more.
        "replay": BodyLimit(settings.max_message_bytes * 3 // 2 + MiB, "an edited Object to replay"),
        "held": BodyLimit(settings.max_message_bytes * 3 // 2 + MiB, "an edited Object for a held call"),
        "/api/outcome/preview": BodyLimit(settings.max_message_bytes * 3 + MiB, "a sent Object and a candidate reply"),
    }


class BodyLimits:
    """Refuses a request body past its route's limit, before reading it when its length is declared."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limits = route_limits(settings)
        self.default = BodyLimit(DEFAULT_BODY_BYTES, "a request body")

    def limit_for(self, path: str) -> BodyLimit:
        if _REPLAY.fullmatch(path):
            return self.limits["replay"]
        if _HELD_EDIT.fullmatch(path):
            return self.limits["held"]
        if path.startswith("/api/import"):  # every import format (/api/import/...) shares the import limit
            return self.limits["/api/import"]
        return self.limits.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit.bytes:
            body = json.dumps({"detail": limit.refusal(declared)}).encode()
            if declared <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            # Answered without reading the rest: the server closes the connection rather than parse it.
            await send({"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_BYTES)
                    # Raised inside the route, so it answers like any HTTPException: a JSON 413.
                    # `Connection: close`: the server drops the connection instead of parsing the rest.
                    raise HTTPException(413, limit.refusal(), headers={"connection": "close"})
            return message

        await self.app(scope, counted, send)


async def _drain(receive: Receive, most: int) -> None:
    """Read and drop up to `most` bytes of the body, for at most DRAIN_SECONDS.

    A client that is still sending when the connection closes may get a reset instead of the 413;
    a body only somewhat too large is read to its end first, so the client sees the answer.
    """
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= most:
                message = await receive()
                drained += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
