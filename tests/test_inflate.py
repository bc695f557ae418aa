"""The one gzip inflater, bounded by size and by ratio; a replayed gzip bomb does not stall the loop."""

from __future__ import annotations

import asyncio
import base64
import gzip
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from google.protobuf import json_format

from app.capture.inflate import MAX_INFLATED_BYTES, MAX_RATIO, RATIO_FLOOR_BYTES, Outcome, bound_for, gunzip, inflate
from protogen import coprocess_object_pb2 as pb
from tests.conftest import load_object
from tests.plugins import plugin_server
from tests.test_proxy import inspector_with

MiB = 1024 * 1024


def gzip_bomb(mebibytes: int) -> bytes:
    """A gzip stream of `mebibytes` MiB of zeros, about a thousand times smaller, built without holding them."""
    zeros = b"\0" * MiB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    # After a full flush the compressor starts afresh: every MiB compresses to the same bytes.
    piece = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (mebibytes * MiB) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + piece * mebibytes + deflate.flush() + trailer


def test_the_bomb_is_a_real_gzip_stream() -> None:
    assert gzip.decompress(gzip_bomb(3)) == b"\0" * 3 * MiB


def test_inflation_is_bounded_by_size_and_by_ratio() -> None:
    text = b'{"name": "value", "items": [1, 2, 3]}' * 1000
    assert inflate(gzip.compress(text)).outcome is Outcome.COMPLETE
    assert gunzip(gzip.compress(text)) == text

    bomb = gzip_bomb(64)  # 64 MiB from about 64 KB: past the ratio bound
    result = inflate(bomb)
    assert result.outcome is Outcome.TOO_LARGE and result.limit == bound_for(len(bomb)) == len(bomb) * MAX_RATIO
    assert len(result.data) == result.limit < MAX_INFLATED_BYTES
    assert gunzip(bomb) is None

    small = gzip.compress(b"\0" * (RATIO_FLOOR_BYTES // 2))  # highly compressible, but small: shown
    assert inflate(small).outcome is Outcome.COMPLETE
    assert inflate(b"\x1f\x8b not gzip").outcome is Outcome.NOT_GZIP
    assert inflate(gzip.compress(text)[:-20]).outcome is Outcome.CUT_SHORT


@asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """The longest the loop went without running a 10 ms timer, while the block runs."""
    longest = [0.0]

    async def probe() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            longest[0] = max(longest[0], time.perf_counter() - began - 0.01)

    task = asyncio.create_task(probe())
    try:
        yield longest
    finally:
        task.cancel()


async def body_dropping_plugin(obj: pb.Object) -> pb.Object:
    """Answers without bodies: what is measured is the replay, not showing a bounded body twice."""
    obj.request.raw_body = b""
    obj.response.raw_body = b""
    return obj


@pytest.mark.parametrize("where", ["request", "response"])
async def test_replaying_an_edited_gzip_bomb_is_bounded_and_off_the_loop(where: str) -> None:
    bomb = gzip_bomb(128)
    async with (
        plugin_server(body_dropping_plugin) as plugin,
        inspector_with(upstream=plugin.target, redact=True) as (_inspector, client, http),
    ):
        await client.dispatch(load_object("pre.json"))
        edited = json_format.MessageToDict(load_object("pre.json"))
        edited.setdefault(where, {})["rawBody"] = base64.b64encode(bomb).decode()
        async with loop_lag() as longest:
            replayed = await http.post("/api/captures/1/replay", json={"object": edited}, timeout=60)
        assert replayed.status_code == 201, replayed.text
        # The edit restored off the loop, and inflated at most to its bound (the old code inflated all
        # 128 MiB on the loop: more than a second here).
        assert longest[0] < 0.5, f"the loop stalled {longest[0]:.2f} s"
        sent = plugin.received[-1]
        assert bytes(getattr(sent, where).raw_body) == bomb  # sent as edited, byte for byte
