"""Capture records: one gRPC call the inspector answered, and the summary fields read from its message.

Filled in on the Dispatch path, so reading a message here is cheap: no JSON, no copies of bodies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.tyk.protocol import HOOK_TYPE_NAMES
from protogen import coprocess_object_pb2

Kind = Literal["dispatch", "event"]

# What a capture costs beyond its payload bytes: the record, its summary strings,
# the cached summary JSON. An estimate, so the byte bound stays meaningful for
# floods of tiny messages too.
RECORD_OVERHEAD_BYTES = 1024

INLINE_READ_BYTES = 256 * 1024
"""Messages up to this size are parsed on the event loop; a larger one is `large`: it is parsed and
summarised in a worker process (app.reading), and nothing on the loop parses it again.
Parsing costs up to ~40 ns a byte (a message of nothing but tiny headers), so a parse on the loop
stays within a few milliseconds; a 14 MB Object of a million headers took 0.7 s to parse."""


OutcomeStatus = int | str | None
"""What the client gets from this hook: an HTTP status, "continue", "dropped"; None for events (docs/outcome.md)."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """The gateway model's verdict on one capture's reply, cached on the capture."""

    version: str
    """The Tyk version the verdict is for (--tyk-version)."""
    warnings: tuple[dict[str, str], ...] = ()
    effect: bool = False
    """Whether the gateway acts on anything the reply changed."""
    outcome_status: OutcomeStatus = None


@dataclass(eq=False, slots=True)
class Capture:
    """One gRPC call the inspector answered: the wire bytes both ways plus cheap summary fields."""

    kind: Kind
    request: bytes
    """The message exactly as received (serialized Object or Event)."""
    reply: bytes | None
    """The message returned; the very same object as `request` for an echo; None when the call failed."""
    received_us: int = field(default_factory=lambda: time.time_ns() // 1000)
    """When the call arrived, in microseconds since the epoch (UTC): exact through export and import."""
    peer: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    hook_type: str = ""
    hook_name: str = ""
    api_id: str = ""
    org_id: str = ""
    method: str = ""
    path: str = ""
    status: int | None = None
    """Upstream status code seen by a Response hook."""
    duration_ns: int = 0
    error: str | None = None
    imported: bool = False
    truncated: bool = False
    answered_by: str = "echo"
    """echo, upstream, mock, or fallback (echo after an upstream failure)."""
    rule: str | None = None
    upstream: str | None = None
    upstream_ms: float | None = None
    upstream_status: str | None = None
    replay_of: int | None = None
    imported_id: int | None = None
    """An imported capture's id where it was first recorded (kept through export and import again): with
    its time and messages, what tells a file imported twice (app.formats.duplicates); None for a HAR entry."""
    grpc_status: str | None = None
    """The gRPC status the caller saw (OK, CANCELLED, DEADLINE_EXCEEDED, ...); None until answered."""
    fault: str | None = None
    """The fault a rule injected into this call ("delay 300 ms", "fail UNAVAILABLE", "drop", "oversize")."""
    shadow: str | None = None
    """--shadow: whether the shadow plugin server's outcome was the "same", "differs", "failed" or was "dropped"."""
    shadow_detail: str | None = None
    """The shadow's first difference in one line, or why it failed or was dropped."""
    intercepted: str | None = None
    """Held by the intercept: where, how long, how it went on and who let it go (app.proxy.intercept)."""
    intercept_edit: str | None = None
    """The edit made while it was held, as a diff in Tyk's terms, one change a line."""
    analysis: Analysis | None = None
    """What the gateway model says of the reply, filled on first use by app.formats.analysis."""
    id: int = 0
    """Assigned by the store: increasing, never reused, also after a clear."""
    noted_headers: tuple[tuple[str, str], ...] = ()
    """A large Dispatch call's request headers that tie it to the other calls of its API request
    (lower-cased names), read off the loop with its summary (app.reading)."""
    summary_json: bytes | None = None
    """The summary as compact JSON, encoded on first use and shared by the list API, the stream and
    every browser (app.formats.views.summary_json)."""

    @property
    def size(self) -> int:
        """Bytes this capture holds; an echoed reply shares the request's bytes."""
        reply = 0 if self.reply is None or self.reply is self.request else len(self.reply)
        return len(self.request) + reply + RECORD_OVERHEAD_BYTES + self._summary_bytes()

    @property
    def large(self) -> bool:
        """Whether a message is too large to parse on the event loop (INLINE_READ_BYTES)."""
        reply = self.reply
        return len(self.request) > INLINE_READ_BYTES or (
            reply is not None and reply is not self.request and len(reply) > INLINE_READ_BYTES
        )

    def _summary_bytes(self) -> int:
        """What the summary fields hold: each string, and its copy in the cached summary JSON.

        A field of control characters is escaped to six bytes each (`\u0001`) in that JSON, and a
        non-ASCII one takes up to four bytes a character in memory: counting only the wire bytes
        undercounted a 1 MB field of control characters twelve times. Only fields set before the
        capture is stored count, so the figure does not change while the store holds it.
        """
        fields = [self.peer, self.hook_type, self.hook_name, self.api_id, self.org_id, self.method, self.path]
        fields += [part for pair in self.metadata for part in pair if isinstance(part, str)]
        return sum(_held_bytes(text) for text in fields)

    @property
    def warnings(self) -> tuple[dict[str, str], ...] | None:
        """The reply lint, once analysed."""
        return None if self.analysis is None else self.analysis.warnings

    @property
    def modified(self) -> bool:
        """Whether the reply has an effect on the gateway (an echo never has).

        Exact once analysed (app.formats.analysis, which summary_of runs); before that, whether
        the reply's bytes differ at all.
        """
        if self.analysis is not None:
            return self.analysis.effect
        return (
            self.kind == "dispatch"
            and self.reply is not None
            and self.reply is not self.request
            and self.reply != self.request
        )

    def summary(self) -> dict[str, Any]:
        """The fields a list row shows, as plain data."""
        return {
            "id": self.id,
            "kind": self.kind,
            "received_at": self.received_us / 1e6,
            "hook_type": self.hook_type,
            "hook_name": self.hook_name,
            "api_id": self.api_id,
            "org_id": self.org_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "size": len(self.request),
            "reply_size": None if self.reply is None else len(self.reply),
            "duration_ms": round(self.duration_ns / 1e6, 3),
            "peer": self.peer,
            "error": self.error,
            "modified": self.modified,
            "imported": self.imported,
            "truncated": self.truncated,
            "answered_by": self.answered_by,
            "rule": self.rule,
            "upstream": self.upstream,
            "upstream_ms": self.upstream_ms,
            "upstream_status": self.upstream_status,
            "replay_of": self.replay_of,
            "imported_id": self.imported_id,
            "grpc_status": self.grpc_status,
            "fault": self.fault,
            "shadow": self.shadow,
            "shadow_detail": self.shadow_detail,
            "intercepted": self.intercepted,
            "warnings": None if self.analysis is None else [w["code"] for w in self.analysis.warnings],
            "outcome_status": None if self.analysis is None else self.analysis.outcome_status,
        }


Recorder = Callable[[Capture], None]
"""Where the servicer and replay hand each finished capture: the store and the live views."""


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
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
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


def _held_bytes(text: str) -> int:
    """Bytes a summary string may hold in memory and in the summary JSON together (worst case)."""
    if not text:
        return 0
    if text.isascii() and text.isprintable():
        return 2 * len(text)  # the string, and the same again in the JSON
    return 10 * len(text)  # up to 4 bytes a character in memory, 6 for an escape in the JSON


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
