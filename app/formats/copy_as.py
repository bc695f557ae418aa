"""Copy as: a capture turned into a command or a test to run it again.

- curl: the client's HTTP request, sent through the gateway (the journey's first hook's request),
- send: `tyk-inspector send` with the Object (or Event) as a file,
- grpcurl: the Object JSON on stdin to `coprocess.Dispatcher/Dispatch`,
- pytest: a test for a plugin server: given this Object, assert the reply captured.

Pure: from the (already redacted) protobuf JSON of the messages; every value is shell- or
Python-quoted, so a hostile header or body cannot break out of the command.
"""

from __future__ import annotations

import json
import pprint
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from app.tyk.protocol import SERVICE_NAME

# Headers curl sets itself (from the URL and the body) or that describe a hop, not the request.
_NOT_COPIED = frozenset({"host", "content-length", "connection", "transfer-encoding"})


def curl(request: dict[str, Any], gateway_url: str, body: bytes) -> str:
    """`curl` for the client's request (an Object's `request` in protobuf JSON) through the gateway."""
    uri = request.get("requestUri") or request.get("url") or "/"
    if uri.startswith(("http://", "https://")):
        parts = urlsplit(uri)
        uri = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = ["curl"]
    method = request.get("method") or "GET"
    if method != "GET" or body:
        lines.append(f"-X {shlex.quote(method)}")
    for name, value in (request.get("headers") or {}).items():
        if name.lower() not in _NOT_COPIED:
            lines.append(f"-H {shlex.quote(f'{name}: {value}')}")
    text = _text(body)
    if body and text is not None:
        lines.append(f"--data-raw {shlex.quote(text)}")
    elif body:
        lines.append("--data-binary @request-body.bin")
    lines.append(shlex.quote(gateway_url.rstrip("/") + uri))
    command = " \\\n  ".join(lines)
    if body and text is None:
        command = "# the body is binary: save it as request-body.bin (the capture's body download)\n" + command
    return command + "\n"


def send(message: dict[str, Any], capture_id: int, target: str, event: bool = False) -> str:
    """`tyk-inspector send` with the message written to a file first."""
    name = f"capture-{capture_id}.json"
    flag = " --event" if event else ""
    return (
        f"cat > {name} <<'JSON'\n{json.dumps(message, indent=2, ensure_ascii=False)}\nJSON\n"
        f"tyk-inspector send {name} --to {shlex.quote(target)}{flag}\n"
    )


def grpcurl(message: dict[str, Any], target: str, event: bool = False) -> str:
    """grpcurl with the message JSON on stdin (the server needs reflection, or -import-path/-proto)."""
    method = "DispatchEvent" if event else "Dispatch"
    return (
        "# needs server reflection (the inspector has it); else add -import-path DIR -proto coprocess_object.proto\n"
        f"grpcurl -plaintext -d @ {shlex.quote(target)} {SERVICE_NAME}/{method} <<'JSON'\n"
        f"{json.dumps(message, indent=2, ensure_ascii=False)}\nJSON\n"
    )


def pytest_test(sent: dict[str, Any], reply: dict[str, Any], capture_id: int, target: str, about: str) -> str:
    """A pytest module for a plugin server: send the captured Object, expect the captured reply."""
    # ASCII only: some Unicode "word" characters (e.g. "²") cannot be in a Python name.
    hook = f"{sent.get('hookType', 'hook')}_{sent.get('hookName', '')}"
    name = re.sub(r"\W+", "_", hook, flags=re.ASCII).strip("_").lower()
    about = re.sub(r"[^\w .:/-]", "", about)  # it goes into a docstring
    return f'''"""A plugin server test from Tyk Inspector capture {capture_id} ({about}).

Run it with the plugin server listening: PLUGIN_SERVER=host:port pytest {name}_test.py
"""

import os

import grpc
from google.protobuf import json_format

try:  # the modules generated from Tyk's coprocess protos
    from coprocess_object_pb2 import Object
except ImportError:
    from protogen.coprocess_object_pb2 import Object

TARGET = os.environ.get("PLUGIN_SERVER", {target!r})

SENT = {_literal(sent)}

# The reply captured. Narrow the assertions to what your plugin must do.
EXPECTED = {_literal(reply)}


def dispatch(obj: Object) -> Object:
    with grpc.insecure_channel(TARGET) as channel:
        call = channel.unary_unary(
            "/{SERVICE_NAME}/Dispatch",
            request_serializer=Object.SerializeToString,
            response_deserializer=Object.FromString,
        )
        return call(obj, timeout=10)


def test_{name or "dispatch"}_reply() -> None:
    reply = json_format.MessageToDict(dispatch(json_format.ParseDict(SENT, Object())))
    assert reply.get("request", {{}}).get("setHeaders", {{}}) == EXPECTED.get("request", {{}}).get("setHeaders", {{}})
    assert reply.get("request", {{}}).get("returnOverrides") == EXPECTED.get("request", {{}}).get("returnOverrides")
    assert reply == EXPECTED
'''


def _literal(value: Any) -> str:
    """JSON data as a Python literal (True/False/None), indented to read well in a test."""
    return pprint.pformat(value, indent=1, width=100, sort_dicts=False)


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None
