"""The ring buffer: bounded by items and by bytes, oldest out first, ids never reused."""

from __future__ import annotations

from app.capture.record import RECORD_OVERHEAD_BYTES, Capture
from app.store.buffer import RingBuffer


def capture(size: int = 10) -> Capture:
    data = b"x" * size
    return Capture(kind="dispatch", request=data, reply=data)


def test_evicts_oldest_by_item_count() -> None:
    store = RingBuffer(max_items=3, max_bytes=10**9)
    for _ in range(5):
        store.add(capture())
    assert [c.id for c in store.oldest_first()] == [3, 4, 5]
    stats = store.stats()
    assert (stats.count, stats.evicted, stats.total, stats.first_id, stats.last_id) == (3, 2, 5, 3, 5)
    assert store.get(2) is None
    assert store.get(4) is not None and store.get(4).id == 4  # type: ignore[union-attr]


def test_evicts_oldest_by_bytes_and_never_exceeds_the_bound() -> None:
    per_capture = 1000 + RECORD_OVERHEAD_BYTES
    store = RingBuffer(max_items=1000, max_bytes=per_capture * 4 + 10)
    for _ in range(10):
        store.add(capture(1000))
        assert store.stats().bytes <= store.max_bytes
    assert [c.id for c in store.oldest_first()] == [7, 8, 9, 10]
    assert store.stats().evicted == 6


def test_echo_reply_shares_the_request_bytes() -> None:
    echo = capture(1000)
    modified = Capture(kind="dispatch", request=b"x" * 1000, reply=b"y" * 1000)
    assert echo.size == 1000 + RECORD_OVERHEAD_BYTES
    assert modified.size == 2000 + RECORD_OVERHEAD_BYTES
    assert not echo.modified and modified.modified


def test_a_capture_larger_than_the_whole_buffer_keeps_its_summary_only() -> None:
    store = RingBuffer(max_items=10, max_bytes=5000)
    store.add(capture(100))
    big = store.add(capture(10_000))
    assert big.truncated and big.request == b"" and "--buffer-bytes" in (big.error or "")
    assert store.stats().bytes <= 5000
    assert [c.id for c in store.oldest_first()] == [1, 2]


def test_ids_keep_counting_after_clear() -> None:
    store = RingBuffer(max_items=10, max_bytes=10**6)
    store.add(capture())
    store.add(capture())
    assert store.clear() == 2
    assert store.first_id == 3 and list(store.newest_first()) == []
    assert store.add(capture()).id == 3


def test_walks_by_id_survive_additions_and_evictions_between_steps() -> None:
    store = RingBuffer(max_items=3, max_bytes=10**6)
    for _ in range(3):
        store.add(capture())
    seen = []
    for c in store.oldest_first(0):
        seen.append(c.id)
        if c.id == 1:
            store.add(capture())  # evicts 1, adds 4
    assert seen == [1, 2, 3, 4]
    newest = store.newest_first(before=4)
    assert next(newest).id == 3
    store.add(capture())  # evicts 2
    assert [c.id for c in newest] == []


def test_newest_first_pages_with_before() -> None:
    store = RingBuffer(max_items=100, max_bytes=10**6)
    for _ in range(10):
        store.add(capture())
    assert [c.id for c in store.newest_first(before=4)] == [3, 2, 1]
    assert [c.id for c in store.oldest_first(after=8)] == [9, 10]
    assert [c.id for c in store.newest_first(before=100)][:2] == [10, 9]
