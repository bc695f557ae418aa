"""How Go's net/url, net/textproto, net/http and html/template treat what the gateway hands them.

Tyk Gateway is written in Go, and what a plugin's reply does often comes down to a Go
library call (`url.ParseRequestURI`, `Header.Set`, `Values.Encode`, `WriteHeader`). These
are small, faithful re-statements of the behaviour the gateway model needs, nothing more.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_to_bytes

_TOKEN = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_HEX = frozenset(string.hexdigits)
# Characters url.Parse accepts unescaped in a host (net/url shouldEscape, encodeHost).
_HOST = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:[]<>\"%")


@functools.lru_cache(maxsize=4096)  # header names repeat from call to call; bounded
def canonical_header_key(name: str) -> str:
    """textproto.CanonicalMIMEHeaderKey: `x-api-key` -> `X-Api-Key`; names with non-token bytes stay as they are."""
    if not name or any(c not in _TOKEN for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


@dataclass(frozen=True, slots=True)
class RequestURI:
    """The parts of a url that url.ParseRequestURI accepted."""

    scheme: str
    host: str
    path: str
    """Everything before the query: the path, or the opaque part of `mailto:x`."""
    raw_query: str
    force_query: bool = False

    def without_query(self) -> str:
        if self.scheme and self.host:
            return f"{self.scheme}://{self.host}{self.path}"
        if self.scheme and self.path.startswith("/"):
            return f"{self.scheme}://{self.path}" if self.path.startswith("//") else f"{self.scheme}:{self.path}"
        if self.scheme:
            return f"{self.scheme}:{self.path}"
        return self.path


_CONTROL = re.compile("[\x00-\x1f\x7f]")
"""What Go's stringContainsCTLByte looks for (a regex: this runs for every capture listed or streamed)."""


class URIError(ValueError):
    """url.ParseRequestURI refused the url; the message is Go's reason."""


def parse_request_uri(raw: str) -> RequestURI:
    """url.ParseRequestURI: an absolute path or an absolute URI of any scheme; no fragment split."""
    if raw == "":
        raise URIError("empty url")
    if _CONTROL.search(raw):
        raise URIError("invalid control character in URL")
    if raw == "*":
        return RequestURI("", "", "*", "")
    scheme, rest = _scheme(raw)
    force_query = rest.endswith("?") and rest.count("?") == 1
    if force_query:
        rest, raw_query = rest[:-1], ""
    else:
        rest, _, raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return RequestURI(scheme, "", rest, raw_query, force_query)  # opaque, e.g. mailto:x
        raise URIError("invalid URI for request")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        host = _authority(authority)
        rest = slash + path
    _check_escapes(rest)
    return RequestURI(scheme, host, rest, raw_query, force_query)


def _scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise URIError("missing protocol scheme")
            return raw[:i].lower(), raw[i + 1 :]
        return "", raw
    return "", raw


def _authority(authority: str) -> str:
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise URIError("missing ']' in host")
        port = host[end + 1 :]
    else:
        colon = host.rfind(":")
        port = host[colon:] if colon >= 0 else ""
    if port and not ((port.startswith(":") and port[1:].isdigit()) or port == ":"):
        raise URIError(f"invalid port {port!r} after host")
    if any(c.isascii() and c not in _HOST for c in host):
        raise URIError(f"invalid character in host name {host!r}")
    _check_escapes(host)
    return host


def _check_escapes(text: str) -> None:
    i = text.find("%")
    while i >= 0:
        if len(text) < i + 3 or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            raise URIError(f"invalid URL escape {text[i : i + 3]!r}")
        i = text.find("%", i + 3)


Query = list[tuple[str, list[str]]]
"""url.Values with its keys in first-seen order (Go's map has none; Encode sorts)."""


def parse_query(raw: str) -> Query:
    """url.ParseQuery: pairs split on '&'; pairs with a ';' or a bad escape are dropped, as Go drops them."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        try:
            key, value = _unescape_query(key), _unescape_query(value)
        except ValueError:
            continue
        values.setdefault(key, []).append(value)
    return list(values.items())


def _unescape_query(text: str) -> str:
    _check_escapes(text)  # a URIError is a ValueError: the pair is dropped
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "replace")


def encode_query(values: Query) -> str:
    """url.Values.Encode: keys sorted, each value QueryEscape'd (space as '+')."""
    return "&".join(
        f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}"
        for key, items in sorted(values, key=lambda kv: kv[0])
        for value in items
    )


def html_escape(text: str) -> str:
    """What html/template does to `{{.Message}}` in text context."""
    table = {"\x00": "\ufffd", '"': "&#34;", "&": "&amp;", "'": "&#39;", "+": "&#43;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def js_escape_string(text: str) -> str:
    """template.JSEscapeString: quotes and backslash escaped, `<>&=` and control bytes as \\uXXXX, `+` kept.

    Non-ASCII characters stay unless Go's unicode.IsPrint refuses them (Python's isprintable
    draws the same line: letters, marks, numbers, punctuation, symbols and the ASCII space).
    """
    out = []
    for c in text:
        code = ord(c)
        if c in _JS_ESCAPES:
            out.append(_JS_ESCAPES[c])
        elif code < 0x20:
            out.append(f"\\u00{code:02X}")
        elif code >= 0x80 and not c.isprintable():
            out.append(f"\\u{code:04X}")
        else:
            out.append(c)
    return "".join(out)


def json_escape_string(text: str) -> str:
    """Tyk's jsonEscapeString (gateway/util.go, 5.15): `"` and `\\` escaped, control bytes as \\n \\r \\t or \\u00xx."""
    out = []
    for c in text:
        code = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif code < 0x20:
            out.append(f"\\u00{code:02x}")
        else:
            out.append(c)
    return "".join(out)


def html_escape_string(text: str) -> str:
    """template.HTMLEscapeString: `"'&<>` as entities, NUL as U+FFFD."""
    table = {"\x00": "\ufffd", '"': "&#34;", "&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


_HTML_SNIFF = (
    b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT", b"<TABLE", b"<A",
    b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--",
)  # fmt: skip
_EXACT_SNIFF = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
)


# Bytes that make http.DetectContentType call data binary.
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def sniff_content_type(body: bytes) -> str:
    """http.DetectContentType for the cases a plugin's override body usually hits."""
    data = body[:512]
    stripped = data.lstrip(b"\t\n\x0c\r ")
    for signature in _HTML_SNIFF:
        head = stripped[: len(signature)]
        after = stripped[len(signature) : len(signature) + 1]
        if head.upper() == signature and after in (b" ", b">"):
            return "text/html; charset=utf-8"
    if stripped[:5] == b"<?xml":
        return "text/xml; charset=utf-8"
    for signature, media_type in _EXACT_SNIFF:
        if data.startswith(signature):
            return media_type
    if data.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "text/plain; charset=utf-16" + ("be" if data[0] == 0xFE else "le")
    if data.startswith(b"\xef\xbb\xbf"):
        return "text/plain; charset=utf-8"
    if any(b in _BINARY for b in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def status_panics(code: int) -> bool:
    """http.ResponseWriter.WriteHeader panics on codes outside 100..999 (the connection is dropped)."""
    return code < 100 or code > 999


STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 410: "Gone", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    418: "I'm a teapot", 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


def status_line(code: int) -> str:
    text = STATUS_TEXT.get(code)
    return f"{code} {text}" if text else str(code)
