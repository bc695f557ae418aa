"""What a plugin changed: the received Object against its reply, compared as messages, in Tyk's terms.

Every change says whether the gateway acts on it. A change the gateway ignores (the body
string, the request's headers map, params, session edits outside CustomKeyCheck, ...) is
kept in the list, marked `ignored` with the reason, so the user sees why it did nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from app.tyk.golang import URIError, canonical_header_key, parse_request_uri
from app.tyk.outcome import response_headers
from app.tyk.version import LATEST_VERSION, TykVersion
from protogen import coprocess_common_pb2 as common
from protogen import coprocess_object_pb2 as pb

Change = dict[str, Any]

BODY_STRING = "the gateway ignores request.body on return (since 2.8): it sends raw_body"
REQUEST_HEADERS = "the gateway ignores the headers map on return: use set_headers and delete_headers"
PARAMS = "the gateway ignores the params map on return: use add_params and delete_params"
EXTENDED = "the gateway never reads extended_params: use add_params"
SESSION = "only a CustomKeyCheck reply's session and metadata are used; this hook's are ignored"
URL_QUERY = "the gateway keeps the request's query and ignores the url's: use add_params and delete_params"
HOST_LENGTH = "Go takes Host and Content-Length from the request itself, not from set_headers"
NO_OVERRIDE = "return overrides only apply with a response_code above 0"
ERROR_WINS = "response_error is set, and it replaces response_body"
RESPONSE_HOOK = "the gateway ignores {} in a Response hook's reply"
REWRITE = "a URL rewrite is active: the returned url becomes the rewrite target and add/delete_params are lost"
RESPONSE_BODY = "the gateway ignores response.body: it sends raw_body"
HEADERS_SAME = "the client gets the same header list either way"
HOOK = "the gateway knows which hook it called; hook_type, hook_name and spec in a reply are ignored"
REQUEST_IN_RESPONSE = "the Object's response is only read after a Response hook"


def _change(kind: str, what: str, before: Any = None, after: Any = None, ignored: str | None = None) -> Change:
    return {
        "kind": kind,
        "what": what,
        "before": before,
        "after": after,
        "ignored": ignored is not None,
        "why": ignored,
    }


def _map_changes(
    kind: str, before: Mapping[str, str], after: Mapping[str, str], ignored: str | None = None
) -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            changes.append(_change(kind, f"{key} added", None, after[key], ignored))
        elif key not in after:
            changes.append(_change(kind, f"{key} removed", before[key], None, ignored))
        elif before[key] != after[key]:
            changes.append(_change(kind, f"{key} changed", before[key], after[key], ignored))
    return changes


def _session_dict(obj: pb.Object) -> dict[str, Any]:
    return json_format.MessageToDict(obj.session) if obj.HasField("session") else {}


def has_effect(changes: list[Change]) -> bool:
    """Whether any change is one the gateway acts on."""
    return any(not c["ignored"] for c in changes)


def diff_objects(sent: pb.Object, reply: pb.Object, version: TykVersion = LATEST_VERSION) -> list[Change]:
    """Every change the reply makes, each {kind, what, before, after, ignored, why}; empty for an echo."""
    if sent == reply:
        return []  # message equality: field order and re-serialization do not count
    changes: list[Change] = []
    response_hook = sent.hook_type == common.Response
    if sent.hook_type != reply.hook_type or sent.hook_name != reply.hook_name:
        changes.append(_change("hook changed", "hook", sent.hook_name, reply.hook_name, HOOK))
    changes += _map_changes("spec", sent.spec, reply.spec, HOOK)
    if response_hook:
        changes += _response_changes(sent, reply, version)
        ignored_here = RESPONSE_HOOK
        changes += _request_changes(sent, reply, ignored_here.format("request"))
        changes += _session_changes(sent, reply, ignored_here.format("session and metadata"))
    else:
        changes += _request_changes(sent, reply, None)
        auth = sent.hook_type == common.CustomKeyCheck
        changes += _session_changes(sent, reply, None if auth else SESSION)
        if sent.response != reply.response or sent.HasField("response") != reply.HasField("response"):
            changes.append(_change("response changed", "response", None, None, REQUEST_IN_RESPONSE))
    return changes


def _request_changes(sent: pb.Object, reply: pb.Object, all_ignored: str | None) -> list[Change]:
    if sent.HasField("request") and not reply.HasField("request"):
        return [_change("request removed", "request", "request", None, all_ignored)]
    before, after = sent.request, reply.request
    if before == after:
        return []
    rewrite = "://" in before.url.split("?", 1)[0] and not before.url.startswith("/")

    def why(reason: str | None) -> str | None:
        return all_ignored or reason

    changes: list[Change] = []
    for change in _map_changes("set header", before.set_headers, after.set_headers, all_ignored):
        name = change["what"].rsplit(" ", 1)[0]
        if canonical_header_key(name) in ("Host", "Content-Length") and not change["ignored"]:
            change.update(ignored=True, why=HOST_LENGTH)
        changes.append(change)
    for name in after.delete_headers:
        if name not in before.delete_headers:
            changes.append(_change("delete header", name, None, name, all_ignored))
    params_lost = REWRITE if rewrite else None
    changes += _map_changes("add param", before.add_params, after.add_params, why(params_lost))
    for name in after.delete_params:
        if name not in before.delete_params:
            changes.append(_change("delete param", name, None, name, why(params_lost)))
    changes += _map_changes("extended param", before.extended_params, after.extended_params, why(EXTENDED))
    if before.url != after.url:
        changes += _url_changes(before.url, after.url, rewrite, all_ignored)
    if before.method != after.method:
        changes.append(_change("method changed", "method", before.method, after.method, all_ignored))
    if before.raw_body != after.raw_body:
        changes.append(
            _change(
                "body changed", "raw_body", f"{len(before.raw_body)} bytes", f"{len(after.raw_body)} bytes", all_ignored
            )
        )
    if before.body != after.body:
        changes.append(
            _change(
                "body string changed", "body", f"{len(before.body)} chars", f"{len(after.body)} chars", why(BODY_STRING)
            )
        )
    changes += _map_changes("request header edited", before.headers, after.headers, why(REQUEST_HEADERS))
    changes += _map_changes("request param edited", before.params, after.params, why(PARAMS))
    for name in ("request_uri", "scheme"):
        if getattr(before, name) != getattr(after, name):
            changes.append(
                _change(
                    "request field edited",
                    name,
                    getattr(before, name),
                    getattr(after, name),
                    why(f"the gateway does not read {name} from a reply"),
                )
            )
    changes += _override_changes(before, after, all_ignored)
    return changes


def _url_changes(before: str, after: str, rewrite: bool, all_ignored: str | None) -> list[Change]:
    if rewrite or all_ignored:
        return [_change("URL rewritten", "url", before, after, all_ignored)]
    path_before, _, query_before = before.partition("?")
    path_after, _, query_after = after.partition("?")
    try:
        parse_request_uri(after)
    except URIError:
        return [_change("URL rewritten", "url", before, after)]  # the client gets 500: an effect
    changes = []
    if path_before != path_after:
        changes.append(_change("URL rewritten", "url", path_before, path_after))
    if query_before != query_after:
        changes.append(_change("URL query edited", "url query", query_before, query_after, URL_QUERY))
    return changes


def _override_changes(before: Any, after: Any, all_ignored: str | None) -> list[Change]:
    if before.HasField("return_overrides") and not after.HasField("return_overrides"):
        return [_change("return overrides removed", "return_overrides", "return_overrides", None, all_ignored)]
    ro_before, ro_after = before.return_overrides, after.return_overrides
    changes: list[Change] = []
    active = ro_after.response_code > 0
    inactive = None if active else NO_OVERRIDE
    if ro_before.response_code != ro_after.response_code and (ro_before.response_code > 0 or active):
        changes.append(
            _change("return override", "status", ro_before.response_code, ro_after.response_code, all_ignored)
        )
    for name in ("response_error", "response_body", "override_error"):
        old, new = getattr(ro_before, name), getattr(ro_after, name)
        if old != new:
            reason = inactive
            if name == "response_body" and ro_after.response_error:
                reason = reason or ERROR_WINS
            if name == "override_error" and ro_after.response_code < 400:
                reason = reason or "override_error only matters with a response_code of 400 or more"
            changes.append(_change("return override", name, old, new, all_ignored or reason))
    changes += _map_changes("return override header", ro_before.headers, ro_after.headers, all_ignored or inactive)
    return changes


def _session_changes(sent: pb.Object, reply: pb.Object, ignored: str | None) -> list[Change]:
    changes: list[Change] = []
    if sent.session != reply.session or sent.HasField("session") != reply.HasField("session"):
        session_before, session_after = _session_dict(sent), _session_dict(reply)
        if not sent.HasField("session") and reply.HasField("session"):
            changes.append(_change("session created", "session", None, session_after, ignored))
        elif sent.HasField("session") and not reply.HasField("session"):
            changes.append(_change("session removed", "session", session_before, None, ignored))
        else:
            for key in sorted(set(session_before) | set(session_after)):
                if session_before.get(key) != session_after.get(key):
                    changes.append(
                        _change("session changed", key, session_before.get(key), session_after.get(key), ignored)
                    )
    changes += _map_changes("metadata", sent.metadata, reply.metadata, ignored)
    return changes


def _response_changes(sent: pb.Object, reply: pb.Object, version: TykVersion) -> list[Change]:
    if sent.HasField("response") and not reply.HasField("response"):
        return [_change("response removed", "response", "response", None)]
    before, after = sent.response, reply.response
    if before == after:
        return []
    changes: list[Change] = []
    if before.status_code != after.status_code:
        changes.append(_change("response status", "status_code", before.status_code, after.status_code))
    same_headers = _final_headers(sent, sent, version) == _final_headers(sent, reply, version)
    header_reason = HEADERS_SAME if same_headers else None
    changes += _map_changes("response header", before.headers, after.headers, header_reason)
    if before.raw_body != after.raw_body:
        changes.append(
            _change(
                "response body changed", "raw_body", f"{len(before.raw_body)} bytes", f"{len(after.raw_body)} bytes"
            )
        )
    if before.body != after.body:
        changes.append(
            _change(
                "response body string changed",
                "body",
                f"{len(before.body)} chars",
                f"{len(after.body)} chars",
                RESPONSE_BODY,
            )
        )
    multi_before = [[h.key, list(h.values)] for h in before.multivalue_headers]
    multi_after = [[h.key, list(h.values)] for h in after.multivalue_headers]
    if multi_before != multi_after:
        back = comes_back(sent, reply, version)
        reason = header_reason
        if reason is None and back and _only_removals(multi_before, multi_after, back):
            reason = f"headers changed, so the gateway keeps every key of headers: {', '.join(back)} come back"
        changes.append(_change("response multivalue headers", "multivalue_headers", multi_before, multi_after, reason))
    return changes


def comes_back(sent: pb.Object, reply: pb.Object, version: TykVersion) -> list[str]:
    """Keys the reply removed from multivalue_headers only, while headers changed: the header sync puts them back."""
    before, after = sent.response, reply.response
    if not version.has_multivalue_headers or dict(before.headers) == dict(after.headers):
        return []
    kept = {h.key for h in after.multivalue_headers}
    return sorted({h.key for h in before.multivalue_headers} - kept & set(after.headers))


def _only_removals(before: list[list[Any]], after: list[list[Any]], back: list[str]) -> bool:
    return [entry for entry in before if entry[0] not in back] == after


def _final_headers(sent: pb.Object, reply: pb.Object, version: TykVersion) -> dict[str, list[str]]:
    final: dict[str, list[str]] = {}
    for key, values in response_headers(sent, reply, version):
        final.setdefault(canonical_header_key(key), []).extend(values)
    return final
