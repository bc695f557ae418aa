"""Inflating a gzip body, bounded: a few kilobytes on the wire cannot become gigabytes in the process.

The one inflater of the project (display, search, redaction, HAR, download, replay): it stops at
`limit` bytes and at `MAX_RATIO` times the compressed size (with a floor, so small bodies of
repeated bytes still show), so its time and memory follow the bytes it was given.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import Enum

MAX_INFLATED_BYTES = 32 * 1024 * 1024
MAX_RATIO = 200
"""Real bodies inflate to a few (JSON, text: up to tens of) times their size; a deflate bomb to 1,000."""
RATIO_FLOOR_BYTES = 1024 * 1024
"""Any body may inflate to this much whatever its ratio."""


class Outcome(Enum):
    COMPLETE = "complete"
    NOT_GZIP = "not gzip"
    TOO_LARGE = "too large"
    CUT_SHORT = "cut short"
    """The gzip stream ends before its end marker: `data` is what it held."""


@dataclass(frozen=True, slots=True)
class Inflation:
    outcome: Outcome
    data: bytes
    """The inflated bytes: all of them when complete, the first `limit` when too large, b'' when not gzip."""
    limit: int
    """The bound that applied to this body (size limit, or ratio times its compressed size)."""


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def bound_for(compressed: int, limit: int = MAX_INFLATED_BYTES) -> int:
    """How many bytes a body of `compressed` bytes may inflate to."""
    return min(limit, max(RATIO_FLOOR_BYTES, compressed * MAX_RATIO))


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> Inflation:
    """`data` inflated as gzip, at most `bound_for(len(data), limit)` bytes."""
    bound = bound_for(len(data), limit)
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(data, bound)
    except zlib.error:
        return Inflation(Outcome.NOT_GZIP, b"", bound)
    if decompressor.unconsumed_tail:
        return Inflation(Outcome.TOO_LARGE, inflated, bound)
    if not decompressor.eof:
        return Inflation(Outcome.CUT_SHORT, inflated, bound)
    return Inflation(Outcome.COMPLETE, inflated, bound)


def gunzip(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes | None:
    """The inflated bytes; None when `data` is not gzip or inflates past its bound.

    A stream cut short gives what it held (a capture may keep a body that was cut).
    """
    result = inflate(data, limit)
    return result.data if result.outcome in (Outcome.COMPLETE, Outcome.CUT_SHORT) else None
