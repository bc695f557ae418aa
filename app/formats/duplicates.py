"""Which captures of an import the buffer holds already (the same file imported twice).

A capture is present when one in the buffer has the same kind, the same receive time (to the
microsecond, as exports keep it) and the same request and reply messages. Ids are no help: an
import gets new ones, and another inspector's ids overlap ours. Messages are compared decoded:
an export holds them as protobuf JSON, and encoding them again may order map entries differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.tyk.protocol import Event, EventReply, Object

Candidates = list[tuple[int, list[Capture]]]


def candidates(incoming: Sequence[Capture], buffered: Iterable[Capture]) -> Candidates:
    """Each incoming capture with the buffered ones of its kind and time (on the loop: the buffer's items)."""
    wanted = {(c.kind, c.received_us) for c in incoming}
    held: dict[tuple[str, int], list[Capture]] = {}
    for capture in buffered:  # bounded by the buffer's item count
        key = (capture.kind, capture.received_us)
        if key in wanted:
            held.setdefault(key, []).append(capture)
    out: Candidates = []
    for position, capture in enumerate(incoming):
        same = held.setdefault((capture.kind, capture.received_us), [])
        out.append((position, list(same)))
        same.append(capture)  # a file holding one capture twice: the second is a duplicate too
    return out


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
