"""Every byte is bounded: the detail cache by bytes, replay and upstream channels by count and idleness."""

from __future__ import annotations

from typing import Any

from app.server import Inspector
from app.web.context import WebContext
from tests.conftest import load_object
from tests.test_proxy import inspector_with


def web_context(inspector: Inspector) -> WebContext:
    assert inspector._http is not None
    app: Any = inspector._http.config.app
    context: WebContext = app.state.inspector
    return context


async def test_the_detail_cache_is_bounded_by_bytes() -> None:
    async with inspector_with(detail_cache_bytes=1_000_000) as (inspector, client, http):
        obj = load_object("pre.json")
        obj.request.raw_body = b"x" * 150_000  # a detail of ~0.5 MB: base64 in the Object, text in the body view
        for _ in range(6):
            await client.dispatch(obj)
        cache = web_context(inspector).details
        sizes = []
        for capture_id in range(1, 7):
            response = await http.get(f"/api/captures/{capture_id}")
            assert response.status_code == 200
            sizes.append(len(response.content))
            assert cache.bytes <= 1_000_000
        assert sum(sizes) > 2_000_000 and 1 <= len(cache) < 6
        # The newest stays cached: asked again, the very same bytes come back.
        assert cache.get(6) == (await http.get("/api/captures/6")).content
