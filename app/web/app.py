"""create_app(): the FastAPI application, one router per concern."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.query.loop_share import LoopBusy
from app.query.parser import QueryError
from app.web import api, copy, filtering, gateway, intercept, journeys, metrics, pages, stream, transfer
from app.web.context import WebContext
from app.web.limits import BodyLimits
from app.web.security import AccessGuard

log = logging.getLogger("tyk_inspector.web")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Every payload shown on the page is attacker-controlled text: no inline script,
# no eval, nothing loaded from elsewhere.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI, so SSE streams are untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _loop_busy(request: Request, exc: Exception) -> JSONResponse:
    """503 when the loop time requests share is taken for longer than a request may wait."""
    assert isinstance(exc, LoopBusy)
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: the rejected input itself may be bytes (a text/plain body) or
    # anything else that is not JSON, and echoing it back helps no one.
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]  # fmt: skip
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": f"invalid request: {problems}", "errors": errors}, status_code=422)


class InternalErrors:
    """Any exception a route lets escape becomes a JSON 500, inside SecurityHeaders so it carries them.

    Starlette's own last-resort handler sits outside every middleware, so its plain-text 500
    would leave without the security headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("internal error answering %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # the response is under way: nothing better to do than end the connection
            response = JSONResponse(
                {"detail": "internal error: the inspector could not answer this request (see its log)"},
                status_code=500,
            )
            await response(scope, receive, send)


def create_app(context: WebContext) -> FastAPI:
    """The web application over a capture store and broadcaster."""
    app = FastAPI(
        title="Tyk Inspector",
        summary="Captured Tyk Gateway gRPC plugin calls",
        version="0.1.0",
        docs_url=None,  # the Swagger page would load from a CDN; the schema is at /api/openapi.json
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.inspector = context
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(QueryError, filtering.query_error)
    app.add_exception_handler(LoopBusy, _loop_busy)
    app.include_router(api.router)
    app.include_router(filtering.router)
    app.include_router(gateway.router)
    app.include_router(journeys.router)
    app.include_router(copy.router)
    app.include_router(intercept.router)
    app.include_router(stream.router)
    app.include_router(transfer.router)
    app.include_router(pages.router)
    app.include_router(metrics.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimits, settings=context.settings)  # inside the guard: refused clients send nothing
    app.add_middleware(InternalErrors)
    app.add_middleware(AccessGuard, settings=context.settings, auth=context.auth)
    app.add_middleware(SecurityHeaders)  # outermost: refusals carry the headers too
    return app
