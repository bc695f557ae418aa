"""What a plugin changed: the received Object against its reply, in Tyk's terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from protogen import coprocess_object_pb2 as pb


def _change(kind: str, what: str, before: Any = None, after: Any = None) -> dict[str, Any]:
    return {"kind": kind, "what": what, "before": before, "after": after}


def _map_changes(kind: str, before: Mapping[str, str], after: Mapping[str, str]) -> list[dict[str, Any]]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(_change(kind, f"{key} added", None, after[key]))
        elif key not in after:
            changes.append(_change(kind, f"{key} removed", before[key], None))
        elif before[key] != after[key]:
            changes.append(_change(kind, f"{key} changed", before[key], after[key]))
    return changes


def _session_dict(obj: pb.Object) -> dict[str, Any]:
    return json_format.MessageToDict(obj.session) if obj.HasField("session") else {}


def diff_objects(sent: pb.Object, reply: pb.Object) -> list[dict[str, Any]]:
    """Every change the reply makes, each as {kind, what, before, after}; empty for an echo."""
    changes: list[dict[str, Any]] = []
    before, after = sent.request, reply.request
    # What the gateway applies to the request.
    changes += _map_changes("set header", before.set_headers, after.set_headers)
    for name in after.delete_headers:
        if name not in before.delete_headers:
            changes.append(_change("delete header", name, None, name))
    changes += _map_changes("add param", before.add_params, after.add_params)
    changes += _map_changes("extended param", before.extended_params, after.extended_params)
    for name in after.delete_params:
        if name not in before.delete_params:
            changes.append(_change("delete param", name, None, name))
    if before.url != after.url:
        changes.append(_change("URL rewritten", "url", before.url, after.url))
    if before.method != after.method:
        changes.append(_change("method changed", "method", before.method, after.method))
    if before.raw_body != after.raw_body:
        changes.append(
            _change("body changed", "raw_body", f"{len(before.raw_body)} bytes", f"{len(after.raw_body)} bytes")
        )
    if before.body != after.body:
        changes.append(_change("body string changed", "body", f"{len(before.body)} chars", f"{len(after.body)} chars"))
    # Edits the gateway does not apply as such (the lint explains).
    changes += _map_changes("request header edited", before.headers, after.headers)
    changes += _map_changes("request param edited", before.params, after.params)
    # Answering the client directly.
    ro_before, ro_after = before.return_overrides, after.return_overrides
    if ro_before.response_code != ro_after.response_code:
        changes.append(_change("return override", "status", ro_before.response_code, ro_after.response_code))
    for field in ("response_error", "response_body", "override_error"):
        if getattr(ro_before, field) != getattr(ro_after, field):
            changes.append(_change("return override", field, getattr(ro_before, field), getattr(ro_after, field)))
    changes += _map_changes("return override header", ro_before.headers, ro_after.headers)
    # Session and metadata (custom auth).
    session_before, session_after = _session_dict(sent), _session_dict(reply)
    if not sent.HasField("session") and reply.HasField("session"):
        changes.append(_change("session created", "session", None, session_after))
    elif sent.HasField("session") and not reply.HasField("session"):
        changes.append(_change("session removed", "session", session_before, None))
    else:
        for key in sorted(set(session_before) | set(session_after)):
            if session_before.get(key) != session_after.get(key):
                changes.append(_change("session changed", key, session_before.get(key), session_after.get(key)))
    changes += _map_changes("metadata", sent.metadata, reply.metadata)
    # The upstream response (Response hooks).
    r_before, r_after = sent.response, reply.response
    if r_before.status_code != r_after.status_code:
        changes.append(_change("response status", "status_code", r_before.status_code, r_after.status_code))
    changes += _map_changes("response header", r_before.headers, r_after.headers)
    if r_before.raw_body != r_after.raw_body:
        changes.append(
            _change(
                "response body changed", "raw_body", f"{len(r_before.raw_body)} bytes", f"{len(r_after.raw_body)} bytes"
            )
        )
    multi_before = [(h.key, list(h.values)) for h in r_before.multivalue_headers]
    multi_after = [(h.key, list(h.values)) for h in r_after.multivalue_headers]
    if multi_before != multi_after:
        changes.append(_change("response multivalue headers", "multivalue_headers", multi_before, multi_after))
    if sent.hook_type != reply.hook_type or sent.hook_name != reply.hook_name:
        changes.append(_change("hook changed", "hook", sent.hook_name, reply.hook_name))
    return changes
