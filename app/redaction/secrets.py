"""Which names hold credentials, and hiding their values in text: query strings, forms, JSON, HTTP dumps.

The rules are documented in docs/security.md ("What is redacted"); keep the two in step.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from app.capture.inflate import gunzip

REDACTED = "[redacted]"
# Values hidden while collecting (see `collecting_hidden`): free text built from the original
# messages, such as a lint message quoting a body, can then be scrubbed of them too.
_hidden: ContextVar[list[str] | None] = ContextVar("hidden", default=None)
# Shorter hidden values are not scrubbed from free text: "1" or "yes" would mangle every message.
MIN_SCRUBBED_CHARS = 4


def hide(value: Any) -> str:
    """REDACTED, remembering what it replaces when a caller is collecting."""
    sink = _hidden.get()
    if sink is not None:
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif item is not None and not isinstance(item, bool):
                sink.append(unquote_plus(item) if isinstance(item, str) else str(item))
                if isinstance(item, str) and unquote_plus(item) != item:
                    sink.append(item)
    return REDACTED


@contextmanager
def collecting_hidden() -> Iterator[list[str]]:
    """Collect every value redaction hides in this block (in this thread or task)."""
    sink: list[str] = []
    token = _hidden.set(sink)
    try:
        yield sink
    finally:
        _hidden.reset(token)


def scrub(text: str, hidden: Iterable[str]) -> str:
    """Free text with every hidden value (as it is, HTML- or JSON-escaped) replaced by REDACTED."""
    for value in sorted({v for v in hidden if len(v) >= MIN_SCRUBBED_CHARS}, key=len, reverse=True):
        for form in {value, html.escape(value), html.escape(value, quote=False), json.dumps(value)[1:-1]}:
            if form in text:
                text = text.replace(form, REDACTED)
    return text


TOO_DEEP = '"[redacted: JSON nested too deeply to look for credentials]"'

# A name is a credential's name when, with everything but letters and digits removed and
# lower-cased, it contains one of these...
SENSITIVE_PARTS = (
    "accesskey",
    "apikey",
    "authenticat",
    "authoriz",
    "cookie",
    "credential",
    "passw",
    "privatekey",
    "secret",
    "session",
    "signature",
    "token",
)
# ...or when one of its words (split at punctuation, spaces and camelCase) is one of these.
SENSITIVE_WORDS = frozenset({"auth", "code", "hmac", "jwt", "key", "otp", "pass", "pwd", "sig"})
# Challenge headers name the scheme and why a credential was refused (`error="invalid_token"`):
# they carry no credential, and the reason must stay readable and searchable.
CHALLENGE_HEADERS = frozenset({"www-authenticate", "proxy-authenticate"})
# "code" is an OAuth authorization code in a query string; as a header or JSON key it is
# usually a status, so it only counts in query strings and forms.
QUERY_ONLY_WORDS = frozenset({"code"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_FORM = re.compile(r"^[^\s=&]+=[^\s&]*(?:&[^\s=&]*(?:=[^\s&]*)?)*$")
# Decompressing a gzip body to redact it is bounded like decompressing it for display.


def name_words(name: str) -> list[str]:
    """'X-Api-Key' -> ['x', 'api', 'key']; 'accessToken' -> ['access', 'token']."""
    return [word.lower() for word in _WORD.findall(name)]


@dataclass(frozen=True, slots=True)
class NameRules:
    """The credential-name rule plus names given on the command line (matched without regard to case)."""

    headers: frozenset[str] = frozenset()
    metadata: frozenset[str] = frozenset()
    query: frozenset[str] = frozenset()
    body_keys: frozenset[str] = frozenset()
    """JSON keys (anywhere in a document) and form field names."""
    body_paths: tuple[tuple[str, ...], ...] = ()
    """Dotted JSON paths from the document root, '*' for any key or index."""

    @classmethod
    def build(
        cls,
        headers: Iterable[str] = (),
        metadata: Iterable[str] = (),
        query: Iterable[str] = (),
        body: Iterable[str] = (),
    ) -> NameRules:
        body = list(body)
        return cls(
            headers=frozenset(h.lower() for h in headers),
            metadata=frozenset(m.lower() for m in metadata),
            query=frozenset(q.lower() for q in query),
            body_keys=frozenset(b.lower() for b in body if "." not in b),
            body_paths=tuple(tuple(b.lower().split(".")) for b in body if "." in b),
        )

    def sensitive(self, name: str, in_query: bool = False) -> bool:
        """Whether a header, metadata key, JSON key, form field or query key by this name holds a credential."""
        return _sensitive(name, in_query)

    def header(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in self.headers or (lowered not in CHALLENGE_HEADERS and self.sensitive(name))

    def metadata_key(self, name: str) -> bool:
        return name.lower() in self.metadata or self.sensitive(name)

    def query_key(self, name: str) -> bool:
        return name.lower() in self.query or name.lower() in self.body_keys or self.sensitive(name, in_query=True)

    def json_key(self, name: str) -> bool:
        return name.lower() in self.body_keys or self.sensitive(name)

    # --- text ---------------------------------------------------------------------------------

    def query_string(self, query: str) -> str:
        """'a=1&api_key=x' -> 'a=1&api_key=[redacted]'; order, encoding and other pairs unchanged."""
        if not query:
            return query
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if sep and value and self.query_key(unquote_plus(name)):
                parts[index] = f"{name}={hide(value)}"
                changed = True
        return "&".join(parts) if changed else query

    def url(self, url: str) -> str:
        """A URL or request URI with its userinfo's password and credential query values hidden."""
        url = _without_password(url)
        path, sep, rest = url.partition("?")
        if not sep:
            return url
        query, hash_sep, fragment = rest.partition("#")
        return f"{path}?{self.query_string(query)}{hash_sep}{fragment}"

    def json_value(self, value: Any, path: tuple[str, ...] = ()) -> tuple[Any, bool]:
        """A JSON value with credential fields replaced; also says whether anything changed."""
        if isinstance(value, dict):
            changed = False
            for key in list(value):
                child_path = (*path, str(key).lower())
                child = value[key]
                if child not in (None, "") and (self.json_key(str(key)) or self._on_path(child_path)):
                    if child != REDACTED:
                        value[key] = hide(child)
                        changed = True
                    continue
                value[key], child_changed = self.json_value(child, child_path)
                changed |= child_changed
            return value, changed
        if isinstance(value, list):
            changed = False
            for index, child in enumerate(value):
                child_path = (*path, str(index))
                if child not in (None, "") and self._on_path(child_path):
                    value[index] = hide(child)
                    changed = True
                    continue
                value[index], child_changed = self.json_value(child, child_path)
                changed |= child_changed
            return value, changed
        return value, False

    def _on_path(self, path: tuple[str, ...]) -> bool:
        return any(
            len(rule) == len(path) and all(r in ("*", p) for r, p in zip(rule, path, strict=True))
            for rule in self.body_paths
        )

    def json_text(self, text: str) -> str:
        """A JSON document (as text) with credential fields hidden; anything else unchanged."""
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        except RecursionError:
            return TOO_DEEP  # cannot be looked through, so it is not shown
        try:
            doc, changed = self.json_value(doc)
        except RecursionError:
            return TOO_DEEP
        if not changed:
            return text
        return json.dumps(doc, ensure_ascii=False, indent=2 if "\n" in text.strip() else None)

    def body_text(self, text: str, content_type: str = "") -> str:
        """A body as text: JSON documents and URL-encoded forms get their credential fields hidden."""
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            return self.json_text(text)
        if "x-www-form-urlencoded" in content_type.lower() or _FORM.match(stripped):
            return self.query_string(text)
        return text

    def body_bytes(self, data: bytes, content_type: str = "") -> bytes:
        """A body as bytes (gzip-compressed or not); undecodable or oversized bodies are returned as they are."""
        if data[:2] == b"\x1f\x8b":
            inflated = gunzip(data)
            if inflated is None:
                return data
            hidden = self.body_bytes(inflated, content_type)
            return data if hidden is inflated else gzip.compress(hidden, mtime=0)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        redacted = self.body_text(text, content_type)
        return data if redacted is text else redacted.encode("utf-8")

    def http_dump(self, dump: str) -> str:
        """An HTTP/1.x request dump: query values in the request line, credential headers, body fields."""
        head, sep, body = dump.partition("\r\n\r\n")
        if not sep:
            head, sep, body = dump.partition("\n\n")
        lines = head.splitlines(keepends=True)
        content_type = ""
        for index, line in enumerate(lines):
            if index == 0:
                method, space, rest = line.partition(" ")
                target, space2, version = rest.partition(" ")
                lines[0] = f"{method}{space}{self.url(target)}{space2}{version}"
                continue
            name, colon, value = line.partition(":")
            if not colon:
                continue
            if name.strip().lower() == "content-type":
                content_type = value.strip()
            if self.header(name.strip()) and value.strip():
                ending = line[len(line.rstrip("\r\n")) :]
                lines[index] = f"{name}{colon} {hide(value.strip())}{ending}"
        return "".join(lines) + sep + (self.body_text(body, content_type) if body else "")


_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//")


def _without_password(url: str) -> str:
    """'http://user:pass@host/p' -> 'http://user:[redacted]@host/p'; a userinfo without ':' is hidden whole."""
    authority = _AUTHORITY.match(url)
    if authority is None:
        return url
    start = authority.end()
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start)
        if 0 <= found < end:
            end = found
    at = url.rfind("@", start, end)
    if at < 0:
        return url
    user, colon, password = url[start:at].partition(":")
    userinfo = f"{user}:{hide(password)}" if colon else hide(user)
    return f"{url[:start]}{userinfo}{url[at:]}"


# Names come from captured traffic: the memo is bounded (and safe to share with worker threads).
@functools.lru_cache(maxsize=4096)
def _sensitive(name: str, in_query: bool) -> bool:
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(part in compact for part in SENSITIVE_PARTS):
        return True
    words = SENSITIVE_WORDS if in_query else SENSITIVE_WORDS - QUERY_ONLY_WORDS
    return any(word in words for word in name_words(name))
