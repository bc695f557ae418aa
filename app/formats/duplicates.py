"""Which captures of an import the buffer holds already (the same file imported twice).

A capture is present when one in the buffer has the same kind, the same original id, the same
receive time (to the microsecond, as exports keep it) and the same request and reply messages.
The original id is the id where the capture was first recorded: an export carries each capture's
id, an import keeps it (`imported_id`) and exports it again, so a file imported twice, or an export
of an import, is recognised, while two captures of equal content and time but different ids are
not taken for one. A HAR entry has no id: its time and messages decide. Messages are compared
decoded: an export holds them as protobuf JSON, and encoding them again may order map entries
differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.tyk.protocol import Event, EventReply, Object

Candidates = list[tuple[int, list[Capture]]]


Key = tuple[str, int, int | None]


def original_id(capture: Capture) -> int | None:
    """The id the capture was first recorded with: kept by an import; a buffered capture's own id otherwise.

    An incoming capture (not yet stored) holds its id in the file, and `imported_id` already says
    where it was first recorded; None for one without an id (a HAR entry).
    """
    return capture.imported_id or capture.id or None


def candidates(incoming: Sequence[Capture], buffered: Iterable[Capture]) -> Candidates:
    """Each incoming capture with the buffered ones of its kind, time and original id (on the loop)."""
    keys = [_keys(c) for c in incoming]
    wanted = {key for key, _ in keys}
    held: dict[Key, list[Capture]] = {}
    for capture in buffered:  # bounded by the buffer's item count
        # Indexed by its original id, and by time alone for an incoming HAR entry (no id to match).
        for key in _keys(capture):
            if key in wanted:
                held.setdefault(key, []).append(capture)
    out: Candidates = []
    for position, capture in enumerate(incoming):
        key = keys[position][0]
        same = held.setdefault(key, [])
        out.append((position, list(same)))
        same.append(capture)  # a file holding one capture twice: the second is a duplicate too
    return out


def _keys(capture: Capture) -> tuple[Key, Key]:
    """(by original id, by time alone); the first is the second for a capture without an id."""
    by_time: Key = (capture.kind, capture.received_us, None)
    original = original_id(capture)
    return ((capture.kind, capture.received_us, original) if original else by_time), by_time


def present_in(incoming: Sequence[Capture], buffered: Sequence[Capture]) -> set[int]:
    """Positions in `incoming` the buffered captures (a list taken on the loop) hold already: for a thread."""
    return present(incoming, candidates(incoming, buffered))


def present(incoming: Sequence[Capture], found: Candidates) -> set[int]:
    """Positions in `incoming` whose messages equal a candidate's (decoding: in a worker thread)."""
    return {position for position, others in found if any(_same(incoming[position], o) for o in others)}


def _same(a: Capture, b: Capture) -> bool:
    if a.request == b.request and a.reply == b.reply:
        return True
    dispatch = a.kind == "dispatch"
    if _decoded(a.request, Object if dispatch else Event) != _decoded(b.request, Object if dispatch else Event):
        return False
    if a.reply is None or b.reply is None:
        return a.reply is None and b.reply is None
    reply = Object if dispatch else EventReply
    return bool(_decoded(a.reply, reply) == _decoded(b.reply, reply))


def _decoded(data: bytes, message: Any) -> Any:
    try:
        return message.FromString(data)
    except DecodeError:
        return data  # undecodable: compared as bytes
