"""HAR import (Chrome, Firefox, HTTP Toolkit, our own HAR export): each entry becomes one capture.

An entry is an HTTP exchange as the client saw it, not a plugin call: it becomes a Response-hook
Object holding the client's request and the response it got (so the list shows its method, path,
status, size and time, the detail its headers and bodies, and the filter language finds it), with
hook name `HAR`, the API ID empty, answered as an echo, and marked imported. Pure: runs in a worker.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any
from urllib.parse import urlsplit

from app.capture.record import Capture, summarize_object
from app.formats.document import epoch_us
from app.formats.export import ImportFormatError
from app.tyk.protocol import Object
from protogen import coprocess_common_pb2 as common

HAR_HOOK_NAME = "HAR"


def is_har(data: bytes | bytearray) -> bool:
    """Whether a document starts like a HAR file (`{"log": ...`) rather than an export document."""
    head = bytes(data[:512]).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and head[1:].lstrip().startswith(b'"log"')


def parse_har(data: bytes | bytearray) -> list[Capture]:
    """Captures from a HAR document, all or nothing: a bad entry rejects the file, saying which."""
    try:
        doc = json.loads(bytes(data).decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"not UTF-8 text: {exc}") from None
    except RecursionError:
        raise ImportFormatError("the HAR file is nested too deeply") from None
    except ValueError as exc:  # not JSON, or a number too long to read
        raise ImportFormatError(f"not a HAR file: {exc}") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ImportFormatError('a HAR file has "log": {"entries": [...]}')
    captures = []
    for index, entry in enumerate(entries):
        try:
            captures.append(_capture(entry))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise ImportFormatError(f"HAR entry #{index}: {exc}") from None
    return captures


def _capture(entry: Any) -> Capture:
    if not isinstance(entry, dict):
        raise ValueError("must be an object")
    request, response = _dict(entry, "request"), _dict(entry, "response")
    obj = Object(hook_type=common.Response, hook_name=HAR_HOOK_NAME)
    url = _text(request, "url")
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    req = obj.request
    req.method = _text(request, "method") or "GET"
    req.url = req.request_uri = target
    req.scheme = parts.scheme
    for name, value in _pairs(request.get("headers")):
        if name.startswith(":"):
            continue  # HTTP/2 pseudo-headers (Chrome lists them): not headers the gateway sees
        req.headers[name] = f"{req.headers[name]}, {value}" if name in req.headers else value
    if parts.netloc and not any(name.lower() == "host" for name in req.headers):
        req.headers["Host"] = parts.netloc
    for name, value in _pairs(request.get("queryString")):
        req.params.setdefault(name, value)
    post = request.get("postData")
    if isinstance(post, dict):
        req.raw_body = _body(post)
    req.return_overrides.response_code = -1
    status = response.get("status", 0)
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= 999:
        raise ValueError(f"response status {status!r} is not an HTTP status")
    obj.response.status_code = status
    for name, value in _pairs(response.get("headers")):
        obj.response.headers.setdefault(name, value)  # the first value; every value in multivalue_headers
        for header in obj.response.multivalue_headers:
            if header.key == name:
                header.values.append(value)
                break
        else:
            obj.response.multivalue_headers.add(key=name, values=[value])
    content = response.get("content")
    if isinstance(content, dict):
        obj.response.raw_body = _body(content)
    data = obj.SerializeToString()
    capture = Capture(
        kind="dispatch",
        request=data,
        reply=data,
        received_us=_time_us(entry.get("startedDateTime")),
        duration_ns=_duration_ns(entry.get("time")),
        imported=True,
        grpc_status="OK",
    )
    capture.reply = capture.request  # an echo: the same bytes, counted once
    summarize_object(capture, obj)
    return capture


def _dict(parent: dict[str, Any], name: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise ValueError(f'"{name}" must be an object')
    return value


def _text(parent: dict[str, Any], name: str) -> str:
    value = parent.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f'"{name}" must be a string')
    return value


def _pairs(value: Any) -> list[tuple[str, str]]:
    """HAR's [{"name": ..., "value": ...}] lists (headers, query strings)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("headers and query strings are lists of {name, value}")
    pairs = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("each header or query item has a string name")
        text = item.get("value", "")
        pairs.append((item["name"], text if isinstance(text, str) else str(text)))
    return pairs


def _body(content: dict[str, Any]) -> bytes:
    """A postData or content body: `text`, base64 when `encoding` says so."""
    text = content.get("text")
    if text is None:
        return b""
    if not isinstance(text, str):
        raise ValueError('a body\'s "text" must be a string')
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a body says base64 but is not") from None
    return text.encode("utf-8")


def _time_us(value: Any) -> int:
    if not isinstance(value, str) or not value:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    try:
        return epoch_us(value)
    except ValueError:
        raise ValueError(f"startedDateTime {value[:40]!r} is not an ISO 8601 time") from None
    except OverflowError:
        raise ValueError(f"startedDateTime {value[:40]!r} is out of range") from None


def _duration_ns(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        return 0  # HAR uses -1 for "not known"
    return round(value * 1_000_000)
