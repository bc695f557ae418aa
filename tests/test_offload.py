"""Large captures are converted in a worker process, so the loop never waits on one long C call."""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from functools import partial

from app.capture.analysis import DEFAULT_GATEWAY
from app.capture.record import Capture, summarize_object
from app.formats.har import JourneyCaptures
from app.formats.offload import BATCH_BYTES, DOWNLOAD_IN_THREADS_ITEMS, Offloader
from app.formats.views import build_detail
from app.redaction.redact import Redactor
from app.web.transfer import export_piece, har_piece
from tests.conftest import load_object, wait_until
from tests.test_inflate import loop_lag


async def test_work_on_a_large_capture_runs_in_another_process_and_small_work_in_a_thread() -> None:
    offloader = Offloader(process_above_bytes=1000)
    try:
        assert await offloader.run(10, os.getpid) == os.getpid()
        assert await offloader.run(1001, os.getpid) != os.getpid()
    finally:
        offloader.close()


async def test_a_detail_built_in_the_worker_process_is_the_one_a_thread_builds() -> None:
    obj = load_object("post-json-body.json")
    obj.request.headers["Authorization"] = "Bearer secret-token-value"
    data = obj.SerializeToString()
    capture = Capture(kind="dispatch", request=data, reply=data, id=7)
    summarize_object(capture, obj)
    redactor = Redactor()
    in_thread = Offloader(process_above_bytes=len(data) + 1)
    in_process = Offloader(process_above_bytes=0)
    try:
        threaded, threaded_verdict = await in_thread.run(len(data), build_detail, capture, redactor)
        spawned, spawned_verdict = await in_process.run(len(data), build_detail, capture, redactor)
    finally:
        in_process.close()
    # The same document (map entries may come in another order: protobuf maps are unordered).
    assert json.loads(b"".join(spawned)) == json.loads(b"".join(threaded))
    assert b"secret-token-value" not in b"".join(spawned)
    assert spawned_verdict == threaded_verdict and spawned_verdict is not None


@dataclass(frozen=True)
class Piece:
    size: int


def _pid_of_batch(batch: list[Piece], first: bool) -> bytes:
    return f"{os.getpid()}:{len(batch)}:{first};".encode()


async def test_a_large_download_converts_its_full_batches_in_worker_processes_once_past_the_threshold() -> None:
    offloader = Offloader(process_above_bytes=BATCH_BYTES)
    items = [Piece(BATCH_BYTES // 2)] * 7  # full batches of two: 4 MiB, then past the threshold; one left over
    try:
        pieces = [piece.decode() async for piece in offloader.batches(items, _pid_of_batch)]
    finally:
        offloader.close()
    batches = [piece.rstrip(";").split(":") for piece in pieces]
    assert [(count, first) for _, count, first in batches] == [
        ("2", "True"), ("2", "False"), ("2", "False"), ("1", "False")
    ]  # fmt: skip
    pids = [int(pid) for pid, _, _ in batches]
    assert pids[0] == os.getpid() and pids[3] == os.getpid()  # the first batch, and the remainder
    assert os.getpid() not in pids[1:3]


async def test_a_small_download_never_starts_the_worker_processes() -> None:
    offloader = Offloader()
    items = [Piece(100)] * (DOWNLOAD_IN_THREADS_ITEMS + 50)
    try:
        pieces = [piece.decode() async for piece in offloader.batches(items, _pid_of_batch)]
        assert {int(piece.split(":")[0]) for piece in pieces} == {os.getpid()}
        assert not offloader.started
    finally:
        offloader.close()


async def test_idle_worker_processes_are_let_go_and_started_again_when_needed() -> None:
    offloader = Offloader(process_above_bytes=0, idle_seconds=0.05)
    try:
        first = await offloader.run(1, os.getpid)
        assert first != os.getpid()
        await wait_until(lambda: not offloader.started, within=10, what="idle workers let go")
        assert await offloader.run(1, os.getpid) != os.getpid()  # started again
    finally:
        offloader.close()


def _unordered(value: object) -> object:
    """A document with its lists of name/value pairs sorted: protobuf maps come in no fixed order."""
    if isinstance(value, dict):
        return {key: _unordered(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_unordered(item) for item in value]
        return sorted(items, key=json.dumps) if all(isinstance(i, dict) and "name" in i for i in items) else items
    return value


async def test_download_batches_convert_the_same_in_a_worker_process_as_in_a_thread() -> None:
    # What a download hands a worker must pickle (captures, journeys, the redactor, the gateway
    # model) and come back as the very text a thread makes.
    pre, post = load_object("pre.json"), load_object("post-json-body.json")
    post.request.headers["Authorization"] = "Bearer secret-token-value"
    captures = []
    for number, obj in enumerate((pre, post), start=1):
        data = obj.SerializeToString()
        capture = Capture(kind="dispatch", request=data, reply=data, id=number)
        summarize_object(capture, obj)
        captures.append(capture)
    journeys = [JourneyCaptures(1, "request-id", "high", captures)]
    export = partial(export_piece, Redactor())
    har = partial(har_piece, Redactor(), DEFAULT_GATEWAY)
    offloader = Offloader()
    try:
        for convert, batch in ((export, captures), (har, journeys)):
            spawned = await offloader.in_process(convert, batch, True)
            assert _unordered(json.loads(b"[" + spawned + b"]")) == _unordered(
                json.loads(b"[" + convert(batch, True) + b"]")
            )
            assert b"secret-token-value" not in spawned
    finally:
        offloader.close()


async def test_closing_on_the_loop_stops_the_workers_without_blocking_it_and_starts_none_again() -> None:
    offloader = Offloader(process_above_bytes=0, idle_seconds=0.1)
    assert await offloader.run(1, os.getpid) != os.getpid()  # workers started, the idle timer set
    workers = multiprocessing.active_children()
    assert workers
    async with loop_lag() as longest:
        await offloader.aclose()  # the timer cancelled on the loop, only the wait in a thread
    assert longest[0] < 0.5, f"the loop stalled {longest[0]:.2f} s"
    assert not offloader.started and not any(worker.is_alive() for worker in workers)
    # Closed for good: a late job runs in a thread instead of starting workers nobody would stop.
    assert await offloader.run(1, os.getpid) == os.getpid()
    assert not offloader.started and not multiprocessing.active_children()
