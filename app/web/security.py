"""Who may use the web side: Host check (DNS rebinding), access token, same-origin writes.

Pure ASGI, so it guards the SSE stream and streamed exports like any other route.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.web.auth import COOKIE, Authenticator

OPEN_PATHS = ("/login", "/logout", "/static/")
# Read by programs (scripts, Prometheus), which get a 401 instead of the login page.
MACHINE_PATHS = ("/api/", "/metrics")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host_header: str) -> str:
    """'example.com:8000' -> 'example.com', '[::1]:8000' -> '::1'."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    detail: str
    retry_after: int | None = None


def throttled(wait: float) -> Refusal:
    seconds = math.ceil(wait)
    return Refusal(429, f"too many wrong access tokens from this address: try again in {seconds} s", seconds)


LOGIN = Refusal(401, "this inspector needs its access token: log in at /login or send 'Authorization: Bearer <token>'")


class AccessGuard:
    """Rejects requests for another Host, without the token (when one is set), or cross-site writes."""

    def __init__(self, app: ASGIApp, settings: Settings, auth: Authenticator) -> None:
        self.app = app
        self.token = settings.auth_token
        self.auth = auth
        extra = {h.lower() for h in settings.allowed_hosts}
        # With a token, a rebinding page cannot authenticate anyway; without one the Host
        # header is what tells this machine's browser tabs from a hostile site's.
        self.any_host = "*" in extra or (bool(self.token) and not extra)
        self.hosts = LOOPBACK_HOSTS | extra | {settings.http_host.strip("[]").lower()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        client = scope.get("client")
        refusal = self._check(scope["method"], path, headers, client[0] if client else "unknown")
        if refusal is None:
            await self.app(scope, receive, send)
        elif refusal is LOGIN and scope["method"] == "GET" and not path.startswith(MACHINE_PATHS):
            await _send(send, 303, b"", [(b"location", b"/login")])  # a person at the page: show the login
        else:
            body = json.dumps({"detail": refusal.detail}).encode()
            reply_headers = [(b"content-type", b"application/json")]
            if refusal.retry_after is not None:
                reply_headers.append((b"retry-after", str(refusal.retry_after).encode()))
            await _send(send, refusal.status, body, reply_headers)

    def _check(self, method: str, path: str, headers: dict[str, str], client: str) -> Refusal | None:
        host = host_name(headers.get("host", "")).lower()
        if not self.any_host and host not in self.hosts:
            return Refusal(403, f"Host {host!r} is not allowed (DNS rebinding protection); add it with --allowed-host")
        if self.token and not path.startswith(OPEN_PATHS):
            refusal = self._authenticated(headers, client)
            if refusal is not None:
                return refusal
        if method not in SAFE_METHODS and not _same_origin(headers):
            return Refusal(403, "cross-site request refused: change captures from the dashboard itself")
        return None

    def _authenticated(self, headers: dict[str, str], client: str) -> Refusal | None:
        for cookie in _cookies(headers.get("cookie", "")):
            name, _, value = cookie.partition("=")
            if name.strip() == COOKIE and self.auth.sessions.valid(value.strip()):
                return None
        bearer = headers.get("authorization", "")
        if not bearer.lower().startswith("bearer "):
            return LOGIN
        wait = self.auth.throttle.retry_after(client)
        if wait > 0:
            return throttled(wait)
        # Headers were decoded as latin-1, so encoding them back gives the bytes the client sent.
        if self.auth.check_token(bearer[7:].strip().encode("latin-1"), client, "bearer"):
            return None
        return LOGIN


def _cookies(header: str) -> Iterable[str]:
    return (part for part in header.split(";") if part.strip())


def _same_origin(headers: dict[str, str]) -> bool:
    """Browsers say where a request comes from; tools like curl say nothing and are not a CSRF vector."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        # What a same-origin form post carries under `Referrer-Policy: no-referrer`.
        return site == "same-origin"
    return urlsplit(origin).netloc == headers.get("host")


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
