"""--tag-requests: a correlation header the Pre hook's reply adds, so every later hook of the
same API request carries it in `request.headers` (and the journey of a request is certain).

This changes traffic: the upstream, and every later plugin, sees the extra header.
"""

from __future__ import annotations

import secrets

from google.protobuf.message import DecodeError

from app.journeys.journey import TAG_HEADER
from app.tyk.protocol import Object
from protogen import coprocess_common_pb2 as common


def tagged_reply(reply: bytes) -> bytes:
    """A Pre hook's reply with the tag header added through set_headers; as it was when the request
    already carries one (a second Pre hook), or when it is no Pre Object."""
    try:
        obj = Object.FromString(reply)
    except DecodeError:
        return reply
    if obj.hook_type != common.Pre:
        return reply
    name = TAG_HEADER.lower()
    if any(k.lower() == name for k in (*obj.request.headers, *obj.request.set_headers)):
        return reply
    obj.request.set_headers[TAG_HEADER] = secrets.token_hex(8)
    return bytes(obj.SerializeToString())
