"""Inflating a gzip body, bounded: a few kilobytes on the wire cannot become gigabytes in the process."""

from __future__ import annotations

import zlib

MAX_INFLATED_BYTES = 32 * 1024 * 1024


def gunzip(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes | None:
    """The inflated bytes; None when `data` is not gzip or inflates to more than `limit` bytes."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = decompressor.decompress(data, limit)
    except zlib.error:
        return None
    return None if decompressor.unconsumed_tail else inflated
