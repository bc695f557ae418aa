"""Reading a large message's summary fields in a worker process, so the loop never parses it.

A Dispatch call's summary (hook, API, method, path) is read from its Object on the call path.
For a message above INLINE_READ_BYTES that parse alone can take most of a second (a million
headers), and the event loop is shared with every other gateway call: so the large call waits
for a worker process, and the others go on. The worker also notes the few request headers a
journey is keyed on, so journey indexing never parses the message on the loop either.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Capture, Kind, summarize_event, summarize_object
from app.formats.offload import Offloader
from app.journeys.journey import REQUEST_ID_HEADERS, TAG_HEADER
from protogen import coprocess_object_pb2 as pb

SUMMARY_FIELDS = ("hook_type", "hook_name", "api_id", "org_id", "method", "path", "status")
_NOTED = frozenset({TAG_HEADER.lower(), *REQUEST_ID_HEADERS})


def read_summary(kind: Kind, data: bytes) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]] | str:
    """The summary fields and noted headers of a message, or why it is not a coprocess message (in a worker)."""
    capture = Capture(kind=kind, request=data, reply=None)
    noted: tuple[tuple[str, str], ...] = ()
    try:
        if kind == "event":
            summarize_event(capture, pb.Event.FromString(data))
        else:
            obj = pb.Object.FromString(data)
            summarize_object(capture, obj)
            noted = tuple((k.lower(), v) for k, v in obj.request.headers.items() if k.lower() in _NOTED)
    except DecodeError as exc:
        return str(exc)
    return {name: getattr(capture, name) for name in SUMMARY_FIELDS}, noted


async def read_off_loop(capture: Capture, offloader: Offloader) -> None:
    """Fill a large capture's summary fields from a worker process; DecodeError if it is not a coprocess message."""
    result = await offloader.in_process(read_summary, capture.kind, capture.request)
    if isinstance(result, str):
        raise DecodeError(result)
    fields, capture.noted_headers = result
    for name, value in fields.items():
        setattr(capture, name, value)
