"""The dashboard page."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.web.auth import COOKIE
from app.web.context import Context

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
# Every module the page imports, announced in the page's head so the browser fetches them side by
# side instead of discovering them one import level at a time.
MODULES = tuple(sorted(p.name for p in (Path(__file__).resolve().parent.parent / "static").glob("*.js")))


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, context: Context) -> HTMLResponse:
    settings = context.settings
    port = context.grpc_port
    listen = f"{settings.grpc_address.rsplit(':', 1)[0]}:{port}" if port else "(unix socket only)"
    return templates.TemplateResponse(
        request,
        "index.html",
        {
            "grpc_listen": listen,
            "grpc_port": port or 50051,
            "grpc_unix_socket": settings.grpc_unix_socket,
            "tyk_version": str(context.gateway.version),
            "logout": context.auth.enabled,
            "modules": MODULES,
            # Whether a redacted value may be revealed (one click, logged) or copied with secrets.
            "reveal": settings.redact and not settings.redact_strict,
        },
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, context: Context) -> Response:
    if not context.settings.auth_token:
        return RedirectResponse("/", status_code=303)
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: Context) -> Response:
    auth = context.auth
    if not auth.enabled:
        return RedirectResponse("/", status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = auth.throttle.retry_after(client)
    if wait > 0:
        error = f"Too many wrong tokens from this address: try again in {math.ceil(wait)} s."
        response = templates.TemplateResponse(request, "login.html", {"error": error}, status_code=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    body = (await request.body())[:4096].decode("utf-8", "replace")
    given = parse_qs(body).get("token", [""])[0]
    if not auth.check_token(given.encode("utf-8"), client, "login"):
        return templates.TemplateResponse(request, "login.html", {"error": "That is not the token."}, status_code=401)
    signed_in = RedirectResponse("/", status_code=303)
    signed_in.set_cookie(
        COOKIE,
        auth.sessions.create(),
        max_age=round(auth.sessions.lifetime),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return signed_in


@router.post("/logout")
async def logout(request: Request, context: Context) -> Response:
    """End this browser's session (the cookie stops working at once) and go to the login page."""
    session = request.cookies.get(COOKIE)
    if session:
        context.auth.sessions.end(session)
    response = RedirectResponse("/login" if context.auth.enabled else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
