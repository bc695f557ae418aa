"""The event loop belongs to the gateway: a large import, export or detail is parsed and
serialized in worker threads or processes, so the loop gets its turns while it runs (scaled-down
sizes; `make bench` measures Dispatch latency at the full ones)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

from app.server import Inspector
from benchmarks.heavy_work import Sizes, _helper, fill, import_document
from tests.conftest import TEST_SETTINGS

# Measures how long the loop goes without a turn: alone, so no other worker skews it.
pytestmark = pytest.mark.serial

SIZES = Sizes(import_mb=6, export_mb=40, detail_mb=15)
# On the loop, the parse of this import or the serialization of this export was one stall of
# well over a second; in threads the loop only waits for the interpreter lock between short
# steps. Generous for a loaded machine.
STALL_BOUND_SECONDS = 0.75


@pytest.fixture
async def big() -> AsyncIterator[Inspector]:
    settings = replace(
        TEST_SETTINGS, buffer_bytes=512 * 1024 * 1024, buffer_items=100_000, max_message_bytes=200_000_000
    )
    inspector = Inspector(settings)
    await inspector.start()
    try:
        await fill(f"127.0.0.1:{inspector.grpc_port}", SIZES)
        yield inspector
    finally:
        await inspector.stop()


async def longest_stall(work: Callable[[], Awaitable[float]]) -> tuple[float, float]:
    """(the longest the loop went without a turn, how long `work` took), in seconds."""
    longest = 0.0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    beating = asyncio.ensure_future(heartbeat())
    began = time.perf_counter()
    await work()  # the request runs in another process: only the inspector uses this loop
    took = time.perf_counter() - began
    done.set()
    await beating
    return longest, took


@pytest.mark.parametrize("what", ["import", "export", "detail"])
async def test_heavy_work_leaves_the_loop_its_turns(big: Inspector, what: str) -> None:
    url = big.http_url
    with tempfile.NamedTemporaryFile(suffix=".json") as document:
        document.write(import_document(SIZES.import_mb))
        document.flush()
        work = {
            "import": lambda: _helper("post", f"{url}/api/import", document.name),
            "export": lambda: _helper("fetch", f"{url}/api/export"),
            "detail": lambda: _helper("fetch", f"{url}/api/captures/{big.store.last_id}"),
        }[what]
        stall, took = await longest_stall(work)
    assert stall < STALL_BOUND_SECONDS, f"{what}: the loop stalled {stall:.3f}s during a {took:.3f}s request"
