"""`tyk-inspector send`: call Dispatch or DispatchEvent on any Dispatcher server, like grpcurl would."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from app.export import FORMAT, ImportFormatError, parse_document
from app.grpc_service import SERVICE_NAME
from app.protocol import Event, EventReply, Object


def _load(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return json.loads(text)


def _requests(doc: Any, event: bool, dispatch: bool) -> list[tuple[str, bytes]]:
    """(method, serialized request) pairs from an Object, an Event or an export document."""
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        captures = parse_document(json.dumps(doc))
        return [("DispatchEvent" if c.kind == "event" else "Dispatch", c.request) for c in captures]
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object: a coprocess.Object, a coprocess.Event or an export document")
    as_event = event or (not dispatch and set(doc) == {"payload"})
    message = json_format.ParseDict(doc, Event() if as_event else Object())
    return [("DispatchEvent" if as_event else "Dispatch", message.SerializeToString())]


def send_file(path: str, target: str, *, event: bool, dispatch: bool, timeout: float) -> int:
    """Send every request in the file to `target`, print each reply as protobuf JSON; 1 on any failure."""
    try:
        requests = _requests(_load(path), event, dispatch)
    except (OSError, ValueError, json_format.ParseError, ImportFormatError) as exc:
        print(f"tyk-inspector send: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    failed = False
    with grpc.insecure_channel(target.removeprefix("tcp://")) as channel:
        for method, request in requests:
            reply_type = EventReply if method == "DispatchEvent" else Object
            call = channel.unary_unary(
                f"/{SERVICE_NAME}/{method}",
                request_serializer=None,
                response_deserializer=reply_type.FromString,
            )
            try:
                reply = call(request, timeout=timeout)
            except grpc.RpcError as exc:
                print(f"{method} failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
                failed = True
                continue
            print(json_format.MessageToJson(reply, indent=2))
    return 1 if failed else 0
