"""The HTTP side: the dashboard page, the JSON API, the live SSE stream, export and import."""

from __future__ import annotations

from app.web.app import create_app

__all__ = ["create_app"]
