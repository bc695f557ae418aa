"""What a query can search in a capture: its decoded, redacted headers, bodies and text.

Built on first use (never on the Dispatch path) and kept in a byte-bounded cache, so typing a
filter over a full buffer decodes each capture once. Redacted values are never in it: a search
must not reveal a credential that the page hides.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from app.capture.inflate import Outcome, inflate, is_gzip
from app.capture.record import Capture
from app.redaction.redact import Redactor
from app.tyk.protocol import Event, Object

# Bodies are searched up to this many bytes each (after gzip inflation, itself bounded):
# a search never holds more than this per body, and a regex never runs on more.
MAX_SEARCH_BODY_BYTES = 1024 * 1024
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SearchView:
    """A capture as a search sees it, every credential already redacted."""

    headers: tuple[tuple[str, str], ...]
    """(name, value), both lower-cased, of request headers, set_headers, override and response headers, both ways."""
    bodies: tuple[str, ...]
    """Request and response bodies, decoded (gzip inflated), sent and returned, each bounded; lower-cased."""
    text: str
    """Every string of the request and reply (and the bodies), lower-cased, for free words."""

    @property
    def size(self) -> int:
        return len(self.text) + sum(len(b) for b in self.bodies) + sum(len(n) + len(v) for n, v in self.headers) + 200


def decode_body(data: bytes, limit: int = MAX_SEARCH_BODY_BYTES) -> str:
    """A body as searchable text: gzip inflated, at most `limit` bytes, undecodable bytes replaced."""
    if is_gzip(data):
        inflated = inflate(data, limit)
        if inflated.outcome is not Outcome.NOT_GZIP:  # not gzip after all: searched as it is
            data = inflated.data
    return data[:limit].decode("utf-8", "replace")


def build_view(capture: Capture, redactor: Redactor) -> SearchView:
    """Decode and redact a capture's messages into what a search looks at."""
    if capture.kind == "event":
        return _event_view(capture, redactor)
    messages: list[Object] = []
    for data in (capture.request, None if capture.reply is capture.request else capture.reply):
        if not data:
            continue
        try:
            obj = Object.FromString(data)
        except DecodeError:
            continue
        redactor.object(obj)
        messages.append(obj)
    headers: list[tuple[str, str]] = []
    bodies: list[str] = []
    strings: list[str] = []
    for obj in messages:
        request, response = obj.request, obj.response
        for mapping in (request.headers, request.set_headers, request.return_overrides.headers, response.headers):
            headers.extend((name.lower(), value) for name, value in mapping.items())
        for header in response.multivalue_headers:
            headers.extend((header.key.lower(), value) for value in header.values)
        for raw in (request.raw_body, response.raw_body):
            if raw:
                body = decode_body(raw)
                if body not in bodies:
                    bodies.append(body)
        strings.extend(_strings(obj))
    strings.extend(bodies)
    strings.extend(value for _, value in _metadata_strings(capture, redactor))
    return _view(headers, bodies, _text(capture, strings, redactor))


def _event_view(capture: Capture, redactor: Redactor) -> SearchView:
    try:
        payload = redactor.event_payload(Event.FromString(capture.request).payload)
    except DecodeError:
        return SearchView((), (), _text(capture, [], redactor))
    headers: list[tuple[str, str]] = []
    strings = [payload]
    dump = _originating_request(payload)
    if dump is not None:
        dump = redactor.http_dump(dump)
        strings.append(dump)
        head = dump.split("\r\n\r\n", 1)[0].split("\n")[1:]
        for line in head:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip().lower(), value.strip()))
    return _view(headers, [], _text(capture, strings, redactor))


def _view(headers: list[tuple[str, str]], bodies: list[str], text: str) -> SearchView:
    # Lower-cased once here, so matching (which ignores case) never lowers a body again.
    return SearchView(
        tuple((name.lower(), value.lower()) for name, value in headers), tuple(b.lower() for b in bodies), text
    )


def _originating_request(payload: str) -> str | None:
    try:
        doc = json.loads(payload)
        encoded = doc["message"]["Meta"]["OriginatingRequest"]
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace") if encoded else None
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        return None


def _metadata_strings(capture: Capture, redactor: Redactor) -> Iterator[tuple[str, str]]:
    for key, value in redactor.metadata(capture.metadata):
        if isinstance(value, str):
            yield key, value


def metadata_view(capture: Capture, redactor: Redactor) -> tuple[tuple[str, str], ...]:
    """gRPC metadata (e.g. traceparent) as a search sees it."""
    return tuple((k.lower(), v) for k, v in _metadata_strings(capture, redactor))


def _text(capture: Capture, strings: list[str], redactor: Redactor) -> str:
    path = redactor.url(capture.path)
    summary = (capture.hook_type, capture.hook_name, capture.api_id, capture.org_id, capture.method, path)
    return "\n".join((*summary, *strings)).lower()


def _strings(message: Message) -> Iterator[str]:
    """Every string and map key in a message, depth first; bytes fields (bodies) are handled apart."""
    for descriptor, value in message.ListFields():
        if descriptor.type == descriptor.TYPE_STRING:
            if descriptor.is_repeated:
                yield from value
            else:
                yield value
        elif descriptor.type == descriptor.TYPE_MESSAGE and descriptor.message_type is not None:
            if descriptor.message_type.GetOptions().map_entry:
                value_field = descriptor.message_type.fields_by_name["value"]
                for key, item in value.items():
                    yield str(key)
                    if value_field.type == value_field.TYPE_MESSAGE:
                        yield from _strings(item)
                    elif isinstance(item, str):
                        yield item
            elif descriptor.is_repeated:
                for item in value:
                    yield from _strings(item)
            else:
                yield from _strings(value)


class SearchViews:
    """The search views of recently searched captures, by id, within a byte budget."""

    def __init__(self, redactor: Redactor, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.redactor = redactor
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, SearchView] = OrderedDict()
        self._bytes = 0

    def cached(self, capture: Capture) -> SearchView | None:
        """The view when it is already built (no decoding)."""
        return self._items.get(capture.id)

    def get(self, capture: Capture) -> SearchView:
        view = self._items.get(capture.id)
        if view is not None:
            self._items.move_to_end(capture.id)
            return view
        view = build_view(capture, self.redactor)
        self.put(capture, view)
        return view

    def put(self, capture: Capture, view: SearchView) -> None:
        """Keep a view built elsewhere (in a worker thread) for the next searches."""
        if capture.id and capture.id not in self._items and view.size <= self.max_bytes // 4:
            self._items[capture.id] = view
            self._bytes += view.size
            while self._bytes > self.max_bytes:
                self._bytes -= self._items.popitem(last=False)[1].size

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
