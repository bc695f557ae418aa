"""GET /metrics: the inspector's counters in Prometheus text format, behind the same access guard."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.web.context import Context

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(context: Context) -> Response:
    """Calls, latencies, the store and the live views; scrape with `Authorization: Bearer <token>` when one is set."""
    if context.metrics is None:
        raise HTTPException(404, "metrics are not available")
    return Response(generate_latest(context.metrics), media_type=CONTENT_TYPE_LATEST)
