"""HAR 1.2 export: one entry per API request (journey), as the client sent it and as it was answered.

The request is the first hook's: method, URL built from scheme + Host + request_uri (what the
client asked for, before any rewrite), headers, query and body. The response is the client
response of the gateway model's outcome: the Response hook's reply after the gateway's header
handling, or the override / error / refusal of the hook that stopped the chain. Everything is
redacted like every export. Pure functions of capture snapshots: safe in a worker thread.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from google.protobuf.message import DecodeError

from app.capture.inflate import gunzip
from app.capture.record import Capture
from app.formats.document import iso_time
from app.redaction.redact import Redactor
from app.tyk.golang import status_line
from app.tyk.outcome import Gateway, outcome_of
from app.tyk.outcome.model import ClientResponse
from app.tyk.protocol import Object
from protogen import coprocess_common_pb2 as common

CREATOR = {"name": "Tyk Inspector", "version": "0.1.0"}
_ORDER = {common.Pre: 0, common.CustomKeyCheck: 1, common.PostKeyAuth: 2, common.Post: 3, common.Response: 4}


@dataclass(frozen=True, slots=True)
class JourneyCaptures:
    """What one HAR entry is made of: a journey's identity and its captures (snapshots)."""

    journey_id: int
    by: str
    confidence: str
    captures: Sequence[Capture]
    api_name: str = ""
    """The API's name and listen path from the gateway's catalog (--gateway-url), when known."""
    listen_path: str = ""

    @property
    def size(self) -> int:
        return sum(capture.size for capture in self.captures)


def har_header() -> str:
    """The document up to the first entry."""
    return '{"log": {"version": "1.2", "creator": ' + json.dumps(CREATOR) + ', "pages": [], "entries": ['


HAR_FOOTER = "\n]}}\n"


def har_entries(journeys: Iterable[JourneyCaptures], redactor: Redactor, gateway: Gateway, first: bool) -> str:
    """Entries as JSON text, comma-separated (a leading comma unless `first`)."""
    pieces = []
    for journey in journeys:
        entry = har_entry(journey, redactor, gateway)
        if entry is not None:
            pieces.append(("\n" if first else ",\n") + json.dumps(entry, ensure_ascii=False))
            first = False
    return "".join(pieces)


def har_entry(journey: JourneyCaptures, redactor: Redactor, gateway: Gateway) -> dict[str, Any] | None:
    """One entry; None when no capture of the journey can be decoded."""
    steps = list(_decoded(journey.captures, redactor))  # redacted before anything is read from them
    if not steps:
        return None
    steps.sort(key=lambda s: (_ORDER.get(s[1].hook_type, 9), s[0].id))
    first_capture, first_sent, _ = steps[0]
    response, answering, stopped_at = _client_response(steps, gateway)
    started = min(c.received_us for c, _, _ in steps)
    ended = max(c.received_us + c.duration_ns // 1000 for c, _, _ in steps)
    elapsed = round((ended - started) / 1000, 3)
    return {
        "startedDateTime": iso_time(started),
        "time": elapsed,
        "request": _request(first_sent),
        "response": _response(response, answering),
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": elapsed, "receive": 0},
        "serverIPAddress": "",
        "_tykInspector": {
            "journey": journey.journey_id,
            "by": journey.by,
            "confidence": journey.confidence,
            "capture_ids": [c.id for c, _, _ in steps],
            "hooks": [c.hook_type for c, _, _ in steps],
            "api_id": first_capture.api_id,
            **({"api_name": journey.api_name, "listen_path": journey.listen_path} if journey.api_name else {}),
            "response_from": stopped_at,
        },
    }


Step = tuple[Capture, Object, Object | None]


def _decoded(captures: Iterable[Capture], redactor: Redactor) -> Iterator[Step]:
    for capture in captures:
        if capture.kind != "dispatch":
            continue
        try:
            sent = Object.FromString(capture.request)
            reply = None
            if capture.reply is not None:
                reply = sent if capture.reply is capture.request else Object.FromString(capture.reply)
        except DecodeError:
            continue
        redactor.object(sent)
        if reply is not None and reply is not sent:
            redactor.object(reply)
        yield capture, sent, reply


def _client_response(steps: list[Step], gateway: Gateway) -> tuple[ClientResponse | None, Step | None, str | None]:
    """The response of the first hook (in the gateway's order) whose outcome is one, and that hook."""
    for step in steps:
        capture, sent, reply = step
        outcome = outcome_of(sent, reply, gateway, sent_size=len(capture.request),
                             reply_size=0 if capture.reply is None else len(capture.reply))  # fmt: skip
        if outcome.result == "respond" and outcome.client_response is not None:
            return outcome.client_response, step, f"{capture.hook_type} #{capture.id}"
        if outcome.result == "dropped":
            return None, None, f"{capture.hook_type} #{capture.id}: connection dropped"
    return None, None, None


def _request(sent: Object) -> dict[str, Any]:
    request = sent.request
    headers = dict(request.headers)
    host = next((v for k, v in headers.items() if k.lower() == "host"), "")
    uri = request.request_uri or request.url
    absolute = uri.startswith(("http://", "https://"))
    url = uri if absolute else f"{request.scheme or 'http'}://{host or 'gateway'}{uri}"
    query = urlsplit(uri).query
    entry: dict[str, Any] = {
        "method": request.method or "GET",
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in headers.items()],
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": len(request.raw_body),
    }
    if request.raw_body:
        mime = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/octet-stream")
        text, encoding = _text(request.raw_body)
        entry["postData"] = {"mimeType": mime, "text": text, **({"_encoding": encoding} if encoding else {})}
    return entry


def _response(response: ClientResponse | None, step: Step | None) -> dict[str, Any]:
    if response is None or step is None:
        # The gateway went on to the upstream and no Response hook told what came back.
        return {
            "status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
            "_note": "no response seen: the journey has no Response hook and no hook answered the client",
        }  # fmt: skip
    body = _response_body(response, step)
    headers = list(response.headers)
    mime = next((v for k, v in headers if k.lower() == "content-type"), "")
    encoding_header = next((v for k, v in headers if k.lower() == "content-encoding"), "").lower()
    content: dict[str, Any] = {"size": len(body), "mimeType": mime or "x-unknown"}
    decoded = body
    if encoding_header in ("gzip", "x-gzip") and body:
        inflated = gunzip(body)
        if inflated is not None:
            decoded = inflated
            content["size"] = len(inflated)
            content["compression"] = len(inflated) - len(body)
    if decoded:
        text, encoding = _text(decoded)
        content["text"] = text
        if encoding:
            content["encoding"] = encoding
    location = next((v for k, v in headers if k.lower() == "location"), "")
    return {
        "status": response.status,
        "statusText": status_line(response.status).partition(" ")[2],
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in headers],
        "content": content,
        "redirectURL": location,
        "headersSize": -1,
        "bodySize": len(body),
    }


def _response_body(response: ClientResponse, step: Step) -> bytes:
    if response.body is not None:
        return response.body.encode("utf-8")
    _, sent, reply = step
    source = response.body_from or ""
    message = reply if source.startswith("reply.") and reply is not None else sent
    if source.endswith("response.rawBody"):
        return bytes(message.response.raw_body)
    if source.endswith("request.rawBody"):
        return bytes(message.request.raw_body)
    return b""


def _text(data: bytes) -> tuple[str, str | None]:
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
