"""The one capture ring as the Redis store's mirror uses it: ids given by the shared store (and skipping)."""

from __future__ import annotations

import pytest

from app.capture.record import RECORD_OVERHEAD_BYTES, Capture
from app.store.buffer import CaptureRing as Mirror


def capture(capture_id: int, size: int = 10) -> Capture:
    c = Capture(kind="dispatch", request=b"x" * size, reply=None)
    c.id = capture_id
    return c


def test_ids_that_skip_are_found_and_walked_both_ways() -> None:
    mirror = Mirror(100, 10**9)
    for n in (3, 4, 9, 20):
        mirror.append(capture(n))
    assert [c.id for c in mirror.oldest_first()] == [3, 4, 9, 20]
    assert [c.id for c in mirror.newest_first()] == [20, 9, 4, 3]
    assert [c.id for c in mirror.oldest_first(4)] == [9, 20]
    assert [c.id for c in mirror.newest_first(9)] == [4, 3]
    assert mirror.get(9) is not None and mirror.get(5) is None and mirror.get(21) is None
    assert (mirror.first_id, mirror.last_id) == (3, 20)
    # Ids skipped were trimmed in the shared store before they were read: evicted.
    assert mirror.stats().evicted == 2 + 4 + 10


def test_bounds_by_items_and_bytes_evict_oldest_first() -> None:
    per = 100 + RECORD_OVERHEAD_BYTES
    mirror = Mirror(3, 10 * per)
    for n in range(1, 8):
        mirror.append(capture(n, 100))
    assert [c.id for c in mirror.oldest_first()] == [5, 6, 7]
    assert mirror.stats().evicted == 4 and mirror.bytes == 3 * per

    mirror = Mirror(100, 2 * per)
    for n in range(1, 6):
        mirror.append(capture(n, 100))
    assert [c.id for c in mirror.oldest_first()] == [4, 5] and mirror.bytes == 2 * per


def test_a_walk_stays_correct_while_captures_are_added_and_evicted() -> None:
    mirror = Mirror(5, 10**9)
    for n in range(1, 6):
        mirror.append(capture(n))
    walk = mirror.oldest_first()
    seen = [next(walk).id]
    for n in range(6, 9):  # evicts 1, 2, 3 under the walk
        mirror.append(capture(n))
    seen += [c.id for c in walk]
    assert seen == [1, 4, 5, 6, 7, 8]


def test_many_evictions_compact_the_front_and_keep_lookups_right() -> None:
    mirror = Mirror(10, 10**9)
    for n in range(1, 5001):
        mirror.append(capture(n))
    assert len(mirror) == 10 and [c.id for c in mirror.oldest_first()] == list(range(4991, 5001))
    assert mirror.get(4995) is not None and mirror.get(4990) is None


def test_clear_keeps_the_ids_going_and_ids_must_grow() -> None:
    mirror = Mirror(10, 10**9)
    mirror.append(capture(1))
    mirror.append(capture(2))
    assert mirror.clear() == 2
    mirror.skip_to(7)  # a Clear marker read from the stream
    assert list(mirror.oldest_first()) == [] and mirror.first_id == 8
    with pytest.raises(ValueError, match="not after 7"):
        mirror.append(capture(7))
    mirror.append(capture(8))
    assert mirror.stats().evicted == 0  # a Clear is not an eviction
