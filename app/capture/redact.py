"""Hiding credentials in what the inspector shows and exports.

Applied to decoded copies in the view layer only: the bytes returned to the gateway
and kept in the buffer are never touched.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from protogen import coprocess_object_pb2

REDACTED = "[redacted]"
DEFAULT_HEADERS = ("authorization", "cookie", "proxy-authorization")


class Redactor:
    """Replaces credential values with "[redacted]"; a disabled one changes nothing."""

    def __init__(self, enabled: bool = True, headers: Iterable[str] = (), metadata: Iterable[str] = ()) -> None:
        self.enabled = enabled
        self.headers = frozenset(h.lower() for h in (*DEFAULT_HEADERS, *headers))
        self.metadata = frozenset(m.lower() for m in metadata)
        names = "|".join(re.escape(h) for h in sorted(self.headers))
        self._header_line = re.compile(rf"^({names})(\s*:).*$", re.IGNORECASE | re.MULTILINE)

    def object(self, obj: coprocess_object_pb2.Object) -> None:
        """Redact an Object in place (pass a copy)."""
        if not self.enabled:
            return
        request = obj.request
        for headers in (request.headers, request.set_headers, request.return_overrides.headers, obj.response.headers):
            self._mapping(headers, self.headers)
        for header in obj.response.multivalue_headers:
            if header.key.lower() in self.headers:
                header.values[:] = [REDACTED] * len(header.values)
        self._mapping(obj.metadata, self.metadata)
        session = obj.session
        self._mapping(session.metadata, self.metadata)
        for owner, field in (
            (session, "hmac_secret"),
            (session.jwt_data, "secret"),
            (session.basic_auth_data, "password"),
            (session.basic_auth_data, "hash"),
        ):
            if getattr(owner, field):
                setattr(owner, field, REDACTED)

    def event_payload(self, payload: str) -> str:
        """An event payload with the key and the originating request's credential headers hidden."""
        if not self.enabled:
            return payload
        try:
            doc = json.loads(payload)
        except ValueError:
            return payload
        meta = doc.get("message", {}).get("Meta") if isinstance(doc, dict) else None
        if not isinstance(meta, dict):
            return payload
        if meta.get("Key"):
            meta["Key"] = REDACTED
        encoded = meta.get("OriginatingRequest")
        if isinstance(encoded, str) and encoded:
            try:
                dump = base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                return json.dumps(doc)
            meta["OriginatingRequest"] = base64.b64encode(self.http_dump(dump).encode()).decode("ascii")
        return json.dumps(doc)

    def http_dump(self, dump: str) -> str:
        """An HTTP/1.x request dump with credential header lines hidden."""
        if not self.enabled:
            return dump
        return self._header_line.sub(lambda m: f"{m.group(1)}{m.group(2)} {REDACTED}", dump)

    @staticmethod
    def _mapping(mapping: MutableMapping[str, Any], names: frozenset[str]) -> None:
        for key in list(mapping):
            if key.lower() in names and mapping[key]:
                mapping[key] = REDACTED
