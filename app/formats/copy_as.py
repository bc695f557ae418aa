"""Copy as: a capture turned into a command or a test to run it again.

- curl: the client's HTTP request, sent through the gateway (the journey's first hook's request),
- send: `tyk-inspector send` with the Object (or Event) as a file,
- grpcurl: the Object JSON on stdin to `coprocess.Dispatcher/Dispatch`,
- pytest: a test for a plugin server: given this Object, assert the reply captured.

Pure: from the (already redacted) protobuf JSON of the messages; every value is shell- or
Python-quoted, so a hostile header or body cannot break out of the command.
"""

from __future__ import annotations

import base64
import itertools
import json
import pprint
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from app.redaction.secrets import REDACTED
from app.tyk.protocol import SERVICE_NAME

# Headers curl sets itself (from the URL and the body) or that describe a hop, not the request.
_NOT_COPIED = frozenset({"host", "content-length", "connection", "transfer-encoding"})


def curl(request: dict[str, Any], gateway_url: str, body: bytes) -> str:
    """`curl` for the client's request (an Object's `request` in protobuf JSON) through the gateway.

    Every word is quoted for a shell, control characters as `$'\\x1b'` (so a pasted command cannot
    end the terminal's bracketed paste or drive it); the URL keeps the gateway's host whatever the
    request URI says; a body past INLINE_BODY_BYTES goes to a file by a here-document (no "Argument
    list too long"); values the inspector redacted are read from shell variables the comment names.
    """
    secrets = _Variables()
    lines = ["curl"]
    method = request.get("method") or "GET"
    if method != "GET" or body:
        lines.append(f"-X {_word(method, secrets)}")
    for name, value in (request.get("headers") or {}).items():
        if name.lower() not in _NOT_COPIED:
            lines.append(f"-H {_word(f'{name}: {value}', secrets, name)}")
    prelude = _body(body, lines, secrets)
    url = _url(gateway_url, request.get("requestUri") or request.get("url") or "/")
    if any(c in url for c in "[]{}"):
        lines.append("--globoff")  # brackets and braces in a URL are curl's own patterns otherwise
    lines.append(_word(url, secrets, None, in_query=True))
    command = " \\\n  ".join(lines)
    return secrets.comment() + prelude + command + "\n"


# Bodies up to this size are inline (`--data-raw`); larger ones are written to a file first.
INLINE_BODY_BYTES = 4096
# Larger bodies than this are not written into the command at all: the body download is the way.
EMBEDDED_BODY_BYTES = 1024 * 1024
_BODY_FILE = "request-body"
# C0 controls, DEL and C1 controls: a terminal acts on them (ESC [ 201 ~ ends a bracketed paste).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _url(gateway_url: str, uri: str) -> str:
    """The gateway's base URL with the request's path and query: a request URI cannot change the host."""
    if uri.startswith(("http://", "https://")) or "://" in uri.split("?", 1)[0]:
        parts = urlsplit(uri)
        uri = parts.path + (f"?{parts.query}" if parts.query else "")
    if not uri.startswith("/"):
        uri = "/" + uri  # "@evil.example/x" after "http://gateway:8080" would name another host
    uri = re.sub(r"[\x00-\x20\x7f]", lambda m: f"%{ord(m.group()):02X}", uri)
    base = gateway_url.rstrip("/")
    url = base + uri
    if urlsplit(url).netloc != urlsplit(base).netloc:  # pragma: no cover - the two lines above rule it out
        raise ValueError(f"the request URI {uri!r} would change the host curl connects to")
    return url


def _body(body: bytes, lines: list[str], secrets: _Variables) -> str:
    """Add the body's curl option to `lines`; the commands writing its file when it is too large to inline."""
    if not body:
        return ""
    text = _text(body)
    if text is not None and len(body) <= INLINE_BODY_BYTES:
        lines.append(f"--data-raw {_word(text, secrets, None, in_body=True)}")
        return ""
    if len(body) > EMBEDDED_BODY_BYTES:
        lines.append(f"--data-binary @{_BODY_FILE}.bin")
        return (
            f"# the body is {len(body)} bytes: save it as {_BODY_FILE}.bin first "
            "(the Download button of the capture's request body)\n"
        )
    if text is not None and not _CONTROL.search(text.replace("\n", "")):
        # Readable text: a here-document, to a file curl sends byte for byte.
        lines.append(f"--data-binary @{_BODY_FILE}.txt")
        end = "BODY"
        while end in text.split("\n"):
            end += "_END"
        content = secrets.heredoc(text)
        if text.endswith("\n"):
            return f"cat > {_BODY_FILE}.txt <<{end}\n{content}{end}\n"
        # A here-document always ends with a newline, which the body does not: $(...) drops it.
        return f"printf '%s' \"$(cat <<{end}\n{content}\n{end}\n)\" > {_BODY_FILE}.txt\n"
    # Binary, or text with control characters: base64 (nothing a terminal acts on when pasted).
    lines.append(f"--data-binary @{_BODY_FILE}.bin")
    encoded = base64.encodebytes(body).decode("ascii")
    note = "  # redacted values in it stay redacted" if REDACTED.encode() in body else ""
    return f"base64 --decode > {_BODY_FILE}.bin <<'BODY'{note}\n{encoded}BODY\n"


class _Variables:
    """Shell variables standing for the values the inspector redacted, named after what held them."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # variable -> what it stands for

    def name(self, source: str | None, what: str) -> str:
        what = _CONTROL.sub("?", what)  # it goes into a comment: a newline would end it
        base = re.sub(r"[^A-Za-z0-9]+", "_", source or "").strip("_").upper() or "REDACTED_VALUE"
        if base[0].isdigit():
            base = "_" + base
        name, number = base, 1
        while self.names.get(name, what) != what:
            number += 1
            name = f"{base}_{number}"
        self.names[name] = what
        return name

    def comment(self) -> str:
        if not self.names:
            return ""
        width = max(len(name) for name in self.names)
        lines = [f"#   {name.ljust(width)}  {what}" for name, what in self.names.items()]
        head = "# The inspector redacted these values: set each variable to the real one first.\n"
        return head + "\n".join(lines) + "\n"

    def heredoc(self, text: str, what: str = "body value") -> str:
        """Text for an unquoted here-document: $, ` and \\ taken literally, redacted values as variables
        (each described as "the KEY <what>")."""
        pieces = text.split(REDACTED)
        out = [_heredoc_escape(pieces[0])]
        for before, piece in itertools.pairwise(pieces):
            key = _key_before(before)
            out.append("${" + self.name(key, f"the {key} {what}" if key else f"a redacted {what}") + ":?}")
            out.append(_heredoc_escape(piece))
        return "".join(out)


def _heredoc_escape(text: str) -> str:
    return re.sub(r"[\\$`]", lambda m: "\\" + m.group(), text)


def _key_before(text: str) -> str | None:
    """The JSON key, form field or query key a redacted value follows, e.g. `"password": "` or `api_key=`."""
    match = re.search(r'"([^"\\]{1,64})"\s*:\s*"?$', text) or re.search(r"([^\s&?=\"]{1,64})=$", text)
    return match.group(1) if match else None


def _word(
    text: str, secrets: _Variables, header: str | None = None, *, in_query: bool = False, in_body: bool = False
) -> str:
    """One shell word: quoted pieces with the redacted values as "${VARIABLE:?}" between them."""
    pieces = text.split(REDACTED)
    out = [_quote(pieces[0])] if pieces[0] else []
    for before, piece in itertools.pairwise(pieces):
        source: str | None = header
        if header is not None:
            what = f"the {header} header"
        else:
            source = _key_before(before)
            where = "query" if in_query else "body" if in_body else "request"
            what = f"the {source} {where} value" if source else f"a redacted {where} value"
        out.append('"${' + secrets.name(source, what) + ':?}"')
        if piece:
            out.append(_quote(piece))
    return "".join(out) or "''"


def _quote(text: str) -> str:
    """Shell-quoted; with control characters as ANSI-C `$'...'` escapes, never raw."""
    if not _CONTROL.search(text):
        return shlex.quote(text)
    out = []
    for char in text:
        if char in "\\'":
            out.append("\\" + char)
        elif char == "!":
            out.append("\\x21")  # never a history expansion, in any bash
        elif _CONTROL.match(char):
            out.append("".join(f"\\x{byte:02x}" for byte in char.encode("utf-8")))
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def send(message: dict[str, Any], capture_id: int, target: str, event: bool = False) -> str:
    """`tyk-inspector send` with the message written to a file first."""
    name = f"capture-{capture_id}.json"
    flag = " --event" if event else ""
    comment, quote, text = _json_heredoc(message)
    return (
        f"{comment}cat > {name} <<{quote}\n{text}\nJSON\ntyk-inspector send {name} --to {shlex.quote(target)}{flag}\n"
    )


def grpcurl(message: dict[str, Any], target: str, event: bool = False) -> str:
    """grpcurl with the message JSON on stdin (the server needs reflection, or -import-path/-proto)."""
    method = "DispatchEvent" if event else "Dispatch"
    comment, quote, text = _json_heredoc(message)
    return (
        "# needs server reflection (the inspector has it); else add -import-path DIR -proto coprocess_object.proto\n"
        f"{comment}grpcurl -plaintext -d @ {shlex.quote(target)} {SERVICE_NAME}/{method} <<{quote}\n{text}\nJSON\n"
    )


def _json_heredoc(message: dict[str, Any]) -> tuple[str, str, str]:
    """(comment, delimiter, text) of a here-document holding the message as JSON.

    JSON escapes every control character, so the text is safe to paste. Without redacted values
    the here-document is quoted (taken literally); with them it is not, and each redacted value
    reads a shell variable (`"${AUTHORIZATION:?}"`) that the comment names, never `[redacted]`.
    """
    text = json.dumps(message, indent=2, ensure_ascii=False)
    if REDACTED not in text:
        return "", "'JSON'", text
    secrets = _Variables()
    body = secrets.heredoc(text, "value")
    return secrets.comment(), "JSON", body


def pytest_test(sent: dict[str, Any], reply: dict[str, Any], capture_id: int, target: str, about: str) -> str:
    """A pytest module for a plugin server: send the captured Object, expect the captured reply.

    Each value the inspector redacted is read from an environment variable named after what held
    it (`secret("AUTHORIZATION")`), listed in the docstring; never the literal `[redacted]`.
    """
    # ASCII only: some Unicode "word" characters (e.g. "²") cannot be in a Python name.
    hook = f"{sent.get('hookType', 'hook')}_{sent.get('hookName', '')}"
    name = re.sub(r"\W+", "_", hook, flags=re.ASCII).strip("_").lower()
    about = _docstring_safe(about)
    secrets = _Variables()
    sent_literal = _literal(_python_secrets(sent, (), secrets))
    reply_literal = _literal(_python_secrets(reply, (), secrets))
    setting, note, helpers = "", "", ""
    if secrets.names:
        width = max(len(variable) for variable in secrets.names)
        listed = "\n".join(
            f"    {variable.ljust(width)}  {_docstring_safe(what)}" for variable, what in secrets.names.items()
        )
        setting = "".join(f"{variable}=... " for variable in secrets.names)
        head = "The inspector redacted these values: set each environment variable to the real one first."
        note = f"\n{head}\n{listed}\n"
        helpers = _SECRET_HELPERS
    imports = "import base64\nimport os" if helpers else "import os"
    return f'''"""A plugin server test from Tyk Inspector capture {capture_id} ({about}).

Run it with the plugin server listening: {setting}PLUGIN_SERVER=host:port pytest {name}_test.py
{note}"""

{imports}

import grpc
from google.protobuf import json_format

try:  # the modules generated from Tyk's coprocess protos
    from coprocess_object_pb2 import Object
except ImportError:
    from protogen.coprocess_object_pb2 import Object

TARGET = os.environ.get("PLUGIN_SERVER", {target!r})
{helpers}
SENT = {sent_literal}

# The reply captured. Narrow the assertions to what your plugin must do.
EXPECTED = {reply_literal}


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


_SECRET_HELPERS = '''

def secret(name: str) -> str:
    """A value the inspector redacted, from the environment variable named after what held it."""
    if name not in os.environ:
        raise LookupError(f"set the environment variable {name} to the real value: the inspector redacted it")
    return os.environ[name]


def raw(text: str) -> str:
    """A body as protobuf JSON holds it (base64)."""
    return base64.b64encode(text.encode()).decode()

'''


class _Code:
    """Python source standing in a literal: pprint prints it as it is (its repr)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __repr__(self) -> str:
        return self.code


def _python_secrets(value: Any, path: tuple[str, ...], secrets: _Variables) -> Any:
    """The protobuf JSON with each string holding a redacted value turned into code reading it from the environment."""
    if isinstance(value, dict):
        return {key: _python_secrets(item, (*path, str(key)), secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_python_secrets(item, (*path, str(index)), secrets) for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value
    if REDACTED in value:
        return _Code(_python_text(value, path, secrets))
    if path[-1:] == ("rawBody",):
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError: left as it is
            return value
        if REDACTED in text:
            return _Code(f"raw({_python_text(text, path, secrets)})")
    return value


def _python_text(text: str, path: tuple[str, ...], secrets: _Variables) -> str:
    """A Python expression for a string with redacted values: its pieces joined by secret("VARIABLE") calls."""
    held_by = next((part for part in reversed(path) if not part.isdigit()), None)
    pieces = text.split(REDACTED)
    out = [repr(pieces[0])] if pieces[0] else []
    for before, piece in itertools.pairwise(pieces):
        # Named as the send and grpcurl copies name it: one set of variables serves them all.
        key = _key_before(before) or (held_by if not before else None)
        variable = secrets.name(key, f"the {key} value" if key else "a redacted value")
        out.append(f"secret({variable!r})")
        if piece:
            out.append(repr(piece))
    return " + ".join(out)


def _docstring_safe(text: str) -> str:
    """Text that cannot end a docstring or a line of it (it comes from the capture)."""
    return re.sub(r"[^\w .:/-]", "", text)


def _literal(value: Any) -> str:
    """JSON data as a Python literal (True/False/None), indented to read well in a test."""
    return pprint.pformat(value, indent=1, width=100, sort_dicts=False)


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None
