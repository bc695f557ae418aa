"""Mock replies: a rule changes the received Object the way a plugin would, no upstream needed.

String values may use templates taken from the call: {{request.method}}, {{request.url}},
{{request.headers.NAME}}, {{request.params.NAME}}, {{spec.KEY}}, {{metadata.KEY}}, {{hook_name}},
{{hook_type}}. Unknown ones become empty strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from app.tyk.protocol import HOOK_TYPE_NAMES
from protogen import coprocess_object_pb2 as pb

TEMPLATE = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


def _lookup(obj: pb.Object, path: str) -> str:
    head, _, rest = path.partition(".")
    if head == "hook_name":
        return obj.hook_name
    if head == "hook_type":
        return HOOK_TYPE_NAMES.get(obj.hook_type, "")
    if head == "spec":
        return obj.spec.get(rest, "")
    if head == "metadata":
        return obj.metadata.get(rest, "")
    if head == "request":
        field, _, key = rest.partition(".")
        request = obj.request
        if field == "headers":
            # Header names arrive Go-canonical (X-Request-Id); match them case-insensitively.
            return next((v for k, v in request.headers.items() if k.lower() == key.lower()), "")
        if field == "params":
            return request.params.get(key, "")
        if field in ("method", "url", "request_uri", "scheme", "body"):
            return str(getattr(request, field))
    return ""


def _render(value: Any, obj: pb.Object) -> Any:
    if isinstance(value, str):
        return TEMPLATE.sub(lambda m: _lookup(obj, m.group(1)), value)
    if isinstance(value, dict):
        return {_render(k, obj): _render(v, obj) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, obj) for v in value]
    return value


def mock_reply(request: bytes, spec: Mapping[str, Any]) -> bytes:
    """The reply a mock rule gives: the received Object with the rule's changes applied."""
    obj = pb.Object.FromString(request)
    changes = _render(dict(spec), obj)
    req = obj.request
    req.set_headers.update({str(k): str(v) for k, v in (changes.get("set_headers") or {}).items()})
    req.delete_headers.extend(str(v) for v in changes.get("delete_headers") or [])
    req.add_params.update({str(k): str(v) for k, v in (changes.get("add_params") or {}).items()})
    req.extended_params.update({str(k): str(v) for k, v in (changes.get("extended_params") or {}).items()})
    req.delete_params.extend(str(v) for v in changes.get("delete_params") or [])
    if "return_overrides" in changes:
        json_format.ParseDict(changes["return_overrides"], req.return_overrides)
    if "session" in changes:
        obj.session.Clear()
        json_format.ParseDict(changes["session"], obj.session)
    obj.metadata.update({str(k): str(v) for k, v in (changes.get("metadata") or {}).items()})
    return bytes(obj.SerializeToString())


def validate_mock(spec: Mapping[str, Any]) -> str | None:
    """Why a mock spec cannot be applied, or None. Checked when rules load, not per call."""
    try:
        mock_reply(pb.Object().SerializeToString(), spec)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
        return str(exc)
    return None
