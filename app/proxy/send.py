"""`tyk-inspector send`: call Dispatch or DispatchEvent on any Dispatcher server, like grpcurl would."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from typing import Any

import grpc
from google.protobuf import json_format

from app.formats.export import FORMAT, ImportFormatError, parse_document
from app.proxy.intercept import SEND_MARK
from app.tyk.protocol import SERVICE_NAME, Event, EventReply, Object


def _load(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return json.loads(text)


Metadata = tuple[tuple[str, str], ...]
# gRPC call metadata a client may set: lower-case ASCII names, not the transport's own.
_META_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_RESERVED = ("content-type", "user-agent", "te", "host", "grpc-")


def sendable(key: str) -> bool:
    """Whether gRPC lets a call carry metadata by this name (`traceparent` yes, `:authority` or `grpc-timeout` no)."""
    return bool(_META_KEY.fullmatch(key)) and not key.startswith(_RESERVED)


def parse_meta(pairs: list[str]) -> Metadata:
    """`--meta KEY=VALUE` options as gRPC metadata; ValueError saying which one is wrong."""
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or not sendable(key) or key.endswith("-bin"):
            raise ValueError(f"--meta {pair!r}: expected KEY=VALUE with a lower-case ASCII key such as traceparent")
        if not all(" " <= c <= "~" for c in value):
            raise ValueError(f"--meta {key}: the value must be printable ASCII")
        out.append((key, value))
    return tuple(out)


def _requests(doc: Any, event: bool, dispatch: bool) -> list[tuple[str, bytes, Metadata]]:
    """(method, serialized request, captured call metadata) from an Object, an Event or an export document."""
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        captures = parse_document(json.dumps(doc))
        return [
            ("DispatchEvent" if c.kind == "event" else "Dispatch", c.request,
             tuple((k, v) for k, v in c.metadata if sendable(k) and not k.endswith("-bin")))
            for c in captures
        ]  # fmt: skip
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object: a coprocess.Object, a coprocess.Event or an export document")
    as_event = event or (not dispatch and set(doc) == {"payload"})
    message = json_format.ParseDict(doc, Event() if as_event else Object())
    return [("DispatchEvent" if as_event else "Dispatch", message.SerializeToString(), ())]


def send_file(
    path: str, target: str, *, event: bool, dispatch: bool, timeout: float, meta: list[str] | None = None
) -> int:
    """Send every request in the file to `target`, print each reply as protobuf JSON; 1 on any failure.

    Each call carries the gRPC metadata its capture had (an export document's `metadata`, e.g. the
    gateway's `traceparent`), with `meta` (KEY=VALUE) added or in its place.
    """
    try:
        extra = parse_meta(meta or [])
    except ValueError as exc:
        print(f"tyk-inspector send: {exc}", file=sys.stderr)
        return 2
    try:
        requests = _requests(_load(path), event, dispatch)
    except (OSError, ValueError, json_format.ParseError, ImportFormatError) as exc:
        print(f"tyk-inspector send: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    failed = False
    with grpc.insecure_channel(target.removeprefix("tcp://")) as channel:
        for method, request, captured in requests:
            given = {key for key, _ in extra}
            metadata = tuple((k, v) for k, v in captured if k not in given) + extra
            reply_type = EventReply if method == "DispatchEvent" else Object
            call = channel.unary_unary(
                f"/{SERVICE_NAME}/{method}",
                request_serializer=None,
                response_deserializer=reply_type.FromString,
            )
            try:
                reply = call(request, timeout=timeout, metadata=(*(metadata or ()), (SEND_MARK, "1")))  # never held
            except grpc.RpcError as exc:
                print(f"{method} failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
                failed = True
                continue
            print(json_format.MessageToJson(reply, indent=2))
    return 1 if failed else 0


def replay_capture(inspector: str, capture_id: int, *, to: str | None, edit: str | None, token: str | None) -> int:
    """Ask a running inspector to replay a capture; print the new capture's id, reply changes and warnings."""
    body: dict[str, Any] = {"to": to}
    try:
        if edit:
            body["object"] = _load(edit)
    except (OSError, ValueError) as exc:
        print(f"tyk-inspector replay: cannot read {edit}: {exc}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"{inspector.rstrip('/')}/api/captures/{capture_id}/replay",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(
            f"replay failed: {exc.code}: {json.loads(exc.read() or b'{}').get('detail', exc.reason)}", file=sys.stderr
        )
        return 1
    except urllib.error.URLError as exc:
        print(f"replay failed: cannot reach {inspector}: {exc.reason}", file=sys.stderr)
        return 1
    capture = result["capture"]
    print(json.dumps({
        "id": result["id"],
        "replay_of": capture_id,
        "upstream": capture["upstream"],
        "upstream_status": capture["upstream_status"],
        "error": capture["error"],
        "reply": capture["reply"],
        "changes": capture["changes"],
        "changes_vs_original_reply": result["changes_vs_original"],
        "warnings": capture["warnings"],
    }, indent=2))  # fmt: skip
    return 0 if capture["error"] is None else 1
