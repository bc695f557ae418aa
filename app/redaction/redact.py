"""Hiding credentials in everything the inspector shows, exports, logs or searches.

Applied to decoded copies when a capture leaves the process: the bytes returned to the
gateway and kept in the buffer are never touched. The rules live in app.redaction.secrets
and docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, MutableMapping
from typing import Any

from app.redaction.secrets import REDACTED, TOO_DEEP, NameRules, hide
from protogen import coprocess_object_pb2, coprocess_session_state_pb2

__all__ = ["REDACTED", "Redactor"]


class Redactor:
    """Replaces credential values with "[redacted]"; a disabled one changes nothing."""

    def __init__(
        self,
        enabled: bool = True,
        headers: Iterable[str] = (),
        metadata: Iterable[str] = (),
        query: Iterable[str] = (),
        body: Iterable[str] = (),
    ) -> None:
        self.enabled = enabled
        self.rules = NameRules.build(headers, metadata, query, body)

    # --- messages -------------------------------------------------------------------------------

    def object(self, obj: coprocess_object_pb2.Object) -> None:
        """Redact an Object in place (pass a copy)."""
        if not self.enabled:
            return
        rules = self.rules
        request = obj.request
        request_type = _header(request.headers, "content-type")
        for headers in (request.headers, request.set_headers, request.return_overrides.headers, obj.response.headers):
            self._map(headers, rules.header)
        for params in (request.params, request.add_params, request.extended_params):
            self._map(params, rules.query_key)
        request.url = rules.url(request.url)
        request.request_uri = rules.url(request.request_uri)
        if request.body:
            request.body = rules.body_text(request.body, request_type)
        if request.raw_body:
            request.raw_body = rules.body_bytes(request.raw_body, request_type)
        overrides = request.return_overrides
        if overrides.response_body:
            override_type = _header(overrides.headers, "content-type")
            overrides.response_body = rules.body_text(overrides.response_body, override_type)
            overrides.response_error = rules.body_text(overrides.response_error, override_type)
        response = obj.response
        for header in response.multivalue_headers:
            if rules.header(header.key):
                header.values[:] = [hide(value) if value else value for value in header.values]
        response_type = _header(response.headers, "content-type")
        if response.body:
            response.body = rules.body_text(response.body, response_type)
        if response.raw_body:
            response.raw_body = rules.body_bytes(response.raw_body, response_type)
        self._map(obj.metadata, rules.metadata_key)
        self._spec(obj.spec)
        self._session(obj.session)

    def _spec(self, spec: MutableMapping[str, str]) -> None:
        # config_data is the API's plugin configuration as a JSON string: API keys of
        # third-party services often live there.
        for key in list(spec):
            if key == "config_data":
                spec[key] = self.rules.json_text(spec[key])
            elif self.rules.json_key(key) and spec[key]:
                spec[key] = hide(spec[key])

    def _session(self, session: coprocess_session_state_pb2.SessionState) -> None:
        self._map(session.metadata, self.rules.metadata_key)
        for key in session.oauth_keys:
            session.oauth_keys[key] = hide(session.oauth_keys[key])
        for owner, name in (
            (session, "hmac_secret"),
            (session, "key_id"),
            (session.jwt_data, "secret"),
            (session.basic_auth_data, "password"),
            (session.basic_auth_data, "hash"),
        ):
            if getattr(owner, name):
                setattr(owner, name, hide(getattr(owner, name)))

    def event_payload(self, payload: str) -> str:
        """An event payload with the key, credential fields and the originating request's secrets hidden."""
        if not self.enabled:
            return payload
        try:
            doc = json.loads(payload)
            dumps = _originating_requests(doc)
            redacted, changed = self.rules.json_value(doc)
        except ValueError:
            return payload
        except RecursionError:
            return TOO_DEEP
        for meta, encoded in dumps:
            try:
                dump = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue  # not base64: shown as sent, it is not a request dump
            hidden = self.rules.http_dump(dump)
            if hidden != dump:
                meta["OriginatingRequest"] = base64.b64encode(hidden.encode()).decode("ascii")
                changed = True
        return json.dumps(redacted) if changed else payload

    def http_dump(self, dump: str) -> str:
        """An HTTP/1.x request dump with credential headers, query values and body fields hidden."""
        return self.rules.http_dump(dump) if self.enabled else dump

    def metadata(self, pairs: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str | bytes]]:
        """gRPC call metadata (the gateway's own call headers) with credential values hidden.

        Hidden by the header names (--redact-header) and the metadata keys (--redact-metadata):
        a key like `traceparent` is the gateway's metadata as much as it is a header.
        """
        if not self.enabled:
            return list(pairs)
        rules = self.rules
        return [
            (key, hide(value) if value and (rules.header(key) or rules.metadata_key(key)) else value)
            for key, value in pairs
        ]

    def hides_header(self, name: str) -> bool:
        """Whether the value of a header (or gRPC metadata key: --redact-metadata too) by this name is hidden."""
        return self.enabled and (self.rules.header(name) or self.rules.metadata_key(name))

    def url(self, url: str) -> str:
        """A URL or request URI with credential query values hidden."""
        return self.rules.url(url) if self.enabled else url

    def summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """A capture's list fields (Capture.summary()) ready to leave the process."""
        if self.enabled and summary.get("path"):
            summary["path"] = self.rules.url(summary["path"])
        return summary

    @staticmethod
    def _map(mapping: MutableMapping[str, str], sensitive: Any) -> None:
        for key in list(mapping):
            if mapping[key] and sensitive(key):
                mapping[key] = hide(mapping[key])


def _header(headers: MutableMapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _originating_requests(doc: Any) -> list[tuple[dict[str, Any], str]]:
    """Every Meta-like object holding a base64 OriginatingRequest, wherever the payload puts it."""
    found: list[tuple[dict[str, Any], str]] = []
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            encoded = value.get("OriginatingRequest")
            if isinstance(encoded, str) and encoded:
                found.append((value, encoded))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found
