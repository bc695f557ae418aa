"""The dashboard page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.web.context import Context
from app.web.security import COOKIE, session_value, tokens_equal

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


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
        },
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, context: Context) -> Response:
    if not context.settings.auth_token:
        return RedirectResponse("/", status_code=303)
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: Context) -> Response:
    token = context.settings.auth_token
    if not token:
        return RedirectResponse("/", status_code=303)
    body = (await request.body())[:4096].decode("utf-8", "replace")
    given = parse_qs(body).get("token", [""])[0]
    if not tokens_equal(given.encode("utf-8"), token):
        return templates.TemplateResponse(request, "login.html", {"error": "That is not the token."}, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
