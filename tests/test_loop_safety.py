"""The event loop belongs to the gateway: no route or dependency runs in a worker thread."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.routing import APIRoute

from app.server import Inspector


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those as their own route type)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _api_routes(included.routes)
    return found


def _dependencies(route: APIRoute) -> list[Any]:
    found: list[Any] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        found.append(dependant.call)
        pending.extend(dependant.dependencies)
    return found


async def test_every_route_and_dependency_runs_on_the_event_loop(inspector: Inspector) -> None:
    # FastAPI runs a plain `def` route or dependency in a thread pool, where it would touch
    # the store, the caches and the asyncio queues from outside the loop.
    assert inspector._http is not None
    app: Any = inspector._http.config.app
    routes = _api_routes(app.routes)
    assert len(routes) >= 10
    for route in routes:
        assert inspect.iscoroutinefunction(route.endpoint), f"{route.path}: plain def route"
        for call in _dependencies(route):
            assert inspect.iscoroutinefunction(call), f"{route.path}: plain def dependency {call}"
