"""Reading Tyk's messages: the summary fields a capture shows in the list.

Shared by the gRPC handlers (on live traffic) and by import (on exported captures).
"""

from __future__ import annotations

import json
from typing import Any

from app.store import Capture
from protogen import coprocess_common_pb2, coprocess_object_pb2

Object = coprocess_object_pb2.Object
Event = coprocess_object_pb2.Event
EventReply = coprocess_object_pb2.EventReply

HOOK_TYPE_NAMES = {v.number: v.name for v in coprocess_common_pb2.HookType.DESCRIPTOR.values}


def summarize_object(capture: Capture, obj: coprocess_object_pb2.Object) -> None:
    """Copy the list fields of a Dispatch Object onto its capture. Cheap: no JSON, no copies of bodies."""
    request = obj.request
    spec = obj.spec
    capture.hook_type = HOOK_TYPE_NAMES.get(obj.hook_type, str(obj.hook_type))
    capture.hook_name = obj.hook_name
    capture.api_id = spec.get("APIID", "")
    capture.org_id = spec.get("OrgID", "")
    capture.method = request.method
    capture.path = request.url
    capture.status = obj.response.status_code if obj.HasField("response") else None


def summarize_event(capture: Capture, event: coprocess_object_pb2.Event) -> None:
    """Copy the list fields of a Tyk event (type, handler, API, path) onto its capture.

    The payload is the JSON text Tyk sends; anything else leaves the fields empty.
    """
    try:
        doc = json.loads(event.payload)
    except ValueError:
        return
    if not isinstance(doc, dict):
        return
    message = _dict(doc.get("message"))
    spec = _dict(doc.get("spec"))
    capture.hook_type = _str(message.get("Type"))
    capture.hook_name = _str(doc.get("handler_name"))
    capture.api_id = _str(spec.get("APIID"))
    capture.org_id = _str(spec.get("OrgID"))
    capture.path = _str(_dict(message.get("Meta")).get("Path"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
