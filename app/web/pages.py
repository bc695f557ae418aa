"""The dashboard page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.web.context import Context

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, context: Context) -> HTMLResponse:
    settings = context.settings
    port = context.grpc_port
    listen = f"{settings.grpc_address.rsplit(':', 1)[0]}:{port}" if port else "(unix socket only)"
    return templates.TemplateResponse(
        request,
        "index.html",
        {"grpc_listen": listen, "grpc_port": port or 50051, "grpc_unix_socket": settings.grpc_unix_socket},
    )
