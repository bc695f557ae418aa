"""The gateway's catalog in the API: API names, configured hooks, calls seen, why a hook never fires."""

from __future__ import annotations

import asyncio
import json
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.gateway.apidef import ApiDefinition
from app.gateway.hooks import Usage, report, streaming_apis
from app.web.context import Context, WebContext

router = APIRouter(prefix="/api", tags=["gateway"])

# Captures counted between two turns of the loop while the buffer is walked (about 2 ms).
WALK_SLICE = 250
# The newest journeys the plugins' share of a request's time is measured over.
MAX_JOURNEYS = 5_000


async def usage_of(context: WebContext) -> Usage:
    """The calls seen per API and hook, from the whole buffer; the loop gets a turn every slice."""
    usage = Usage()
    captures = context.store.newest_first()
    while True:
        part = list(islice(captures, WALK_SLICE))
        usage.add_all(part)
        if len(part) < WALK_SLICE:
            break
        await asyncio.sleep(0)
    if usage.response_samples:
        size = sum(len(d) for samples in usage.response_samples.values() for d in samples)
        usage.streaming = await context.offloader.run(size, streaming_apis, usage.response_samples)
    await context.journeys.catch_up()
    store = context.store
    for counted, journey in enumerate(islice(context.journeys.newest_first(), MAX_JOURNEYS), 1):
        steps = [c for c in (store.get(i) for i in journey.captures) if c is not None and c.replay_of is None]
        usage.add_journey(journey.api_id, steps)
        if counted % 500 == 0:
            await asyncio.sleep(0)
    return usage


async def shared_usage(request: Request, context: WebContext) -> Usage:
    """The usage walk, shared by every caller while it runs: 32 open pages walk the buffer once."""
    running: asyncio.Future[Usage] | None = getattr(request.app.state, "apis_usage", None)
    if running is None or running.done():
        running = request.app.state.apis_usage = asyncio.ensure_future(usage_of(context))
    return await asyncio.shield(running)


@router.get("/apis", response_class=Response, responses={200: {"content": {"application/json": {}}}})
async def list_apis(request: Request, context: Context) -> Response:
    """Every API the gateways list, with its hooks in the gateway's order, the calls seen for each
    (count, last seen, p50/p99, outcomes) and, for a hook that does not fire, why."""
    catalog = context.catalog
    status = catalog.status()
    if not catalog.configured:
        return Response(json.dumps({**status, "apis": [], "unknown_apis": []}), media_type="application/json")
    usage = await shared_usage(request, context)
    # Tens of milliseconds for a catalog of a thousand APIs: in a thread, so the loop keeps its turns.
    read = any(source.apis is not None for source in catalog.sources)
    body = await asyncio.to_thread(_report_json, status, catalog.apis(), usage, read)
    return Response(body, media_type="application/json")


def _report_json(status: dict[str, Any], apis: list[tuple[ApiDefinition, str]], usage: Usage, read: bool) -> bytes:
    return json.dumps({**status, **report(apis, usage, read)}, separators=(",", ":")).encode()


@router.post("/apis/refresh")
async def refresh_apis(context: Context) -> dict[str, Any]:
    """Read every gateway's /hello and /tyk/apis now; answers with the catalog's state once read."""
    await context.catalog.refresh()
    return context.catalog.status()


@router.get("/apis/names")
async def api_names(
    context: Context,
    revision: Annotated[
        int | None, Query(description="the revision the caller has: names are left out if unchanged")
    ] = None,
) -> dict[str, Any]:
    """API ID -> name and listen path, for showing names wherever an ID appears; `names` is null
    when the caller's `revision` is still the catalog's (a page polls this)."""
    catalog = context.catalog
    if revision is not None and revision == catalog.revision:
        return {**catalog.status(), "names": None}
    names = {api.api_id: {"name": api.name, "listen_path": api.listen_path} for api, _ in catalog.apis()}
    return {**catalog.status(), "names": names}
