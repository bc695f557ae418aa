"""Replay: send a captured Object again (as captured, or edited) to a plugin server, capture the answer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import time
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from app.capture.inflate import Outcome, inflate, is_gzip
from app.capture.record import Capture, Recorder, summarize_event, summarize_object
from app.proxy.rules import Rules
from app.proxy.targets import ReplayTargets, TargetRefused
from app.proxy.upstream import UpstreamPool
from app.redaction.redact import REDACTED, Redactor
from app.tyk.protocol import Event, Object

REPLAY_DEADLINE_SECONDS = 10.0
"""A replay has no gateway call whose deadline it could pass on, so it keeps one of its own."""


class ReplayError(ValueError):
    """The replay cannot be made as asked; the message says why."""


class ReplayRefused(ReplayError):
    """The replay target is not allowed (HTTP 403)."""


def restore_redacted(edited: dict[str, Any], original_request: bytes, redactor: Redactor) -> dict[str, Any]:
    """The edited Object with every value the page showed redacted, and the user left alone, put back.

    The page edits the redacted view; sending "[redacted]" to a plugin server would silently
    replay something else. A field the user changed while it still holds a redacted part (a
    URL with `api_key=[redacted]` and a new path) cannot be restored: that is refused, saying where.
    """
    if not redactor.enabled:
        return edited
    try:
        message = Object.FromString(original_request)
    except DecodeError:
        return edited
    original = json_format.MessageToDict(message)
    redactor.object(message)
    shown = json_format.MessageToDict(message)
    restored = _restore(edited, shown, original)
    leftover = _redacted_at(restored, original, ())
    if leftover:
        where = ".".join(leftover)
        raise ReplayError(
            f'the edited Object still holds "{REDACTED}" at {where}: the captured value there was hidden '
            "and the field was changed around it. Type the real value, or leave the field as shown to send "
            "the captured one."
        )
    result: dict[str, Any] = restored
    return result


def _restore(edited: Any, shown: Any, original: Any) -> Any:
    if edited == shown:
        return copy.deepcopy(original)
    if isinstance(edited, dict) and isinstance(shown, dict) and isinstance(original, dict):
        return {
            key: _restore(value, shown[key], original[key]) if key in shown and key in original else value
            for key, value in edited.items()
        }
    if isinstance(edited, list) and isinstance(shown, list) and isinstance(original, list):
        return [
            _restore(value, shown[i], original[i]) if i < len(shown) and i < len(original) else value
            for i, value in enumerate(edited)
        ]
    return edited


def _redacted_at(value: Any, original: Any, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where `value` holds a "[redacted]" the original did not (an imported export may hold some)."""
    if value == original:
        return None
    if isinstance(value, dict):
        for key, child in value.items():
            found = _redacted_at(child, original.get(key) if isinstance(original, dict) else None, (*path, str(key)))
            if found:
                return found
    elif isinstance(value, list):
        for index, child in enumerate(value):
            before = original[index] if isinstance(original, list) and index < len(original) else None
            found = _redacted_at(child, before, (*path, str(index)))
            if found:
                return found
    elif isinstance(value, str):
        if REDACTED in value:
            return path
        if path and path[-1] == "rawBody" and REDACTED.encode() in _body_bytes(value):
            return path
    return None


def _body_bytes(encoded: str) -> bytes:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""
    if is_gzip(data):
        inflated = inflate(data)  # bounded: an edited body is as untrusted as a captured one
        return data if inflated.outcome is Outcome.NOT_GZIP else inflated.data
    return data


def edited_request(edited: dict[str, Any], original_request: bytes, redactor: Redactor | None) -> bytes:
    """The serialized Object to send for an edit of `original_request` shown through `redactor`."""
    if redactor is not None:
        edited = restore_redacted(edited, original_request, redactor)
    try:
        return bytes(json_format.ParseDict(edited, Object()).SerializeToString())
    except json_format.ParseError as exc:
        raise ReplayError(f"the edited Object is not a valid coprocess.Object: {exc}") from None


class Replayer:
    def __init__(
        self, pool: UpstreamPool, record: Recorder, rules: Rules | None, targets: ReplayTargets | None = None
    ) -> None:
        self._pool = pool
        self._record = record
        self.rules = rules
        self.targets = targets or ReplayTargets()

    def target_for(self, original: Capture, to: str | None) -> str:
        """Where to send: `to`, else the capture's upstream, else its rule's; always through the allow-list."""
        target = to or original.upstream
        if not target:
            rule = self.rules.route(original) if self.rules is not None else None
            target = rule.upstream if rule is not None else None
        if not target:
            raise ReplayError(
                "no plugin server to replay to: give one (`to`: HOST:PORT) or run with --upstream/--rules"
            )
        # An imported capture's `upstream` is as untrusted as `to`: both are checked.
        try:
            return self.targets.check(target, self.rules)
        except TargetRefused as exc:
            raise ReplayRefused(str(exc)) from None

    async def replay(
        self,
        original: Capture,
        to: str | None = None,
        edited: dict[str, Any] | None = None,
        redactor: Redactor | None = None,
    ) -> Capture:
        """Send the original's Object (or `edited`, protobuf JSON), or its Event as captured, and record the result,
        linked to the original.

        `edited` comes from a view redacted by `redactor`: the values it hid are restored first.
        """
        target = self.target_for(original, to)
        if original.kind == "event":
            if edited is not None:
                raise ReplayError("an event is replayed as captured: the gateway fires it and ignores the reply")
            capture = Capture(kind="event", request=original.request, reply=None, peer="replay", replay_of=original.id)
            try:
                summarize_event(capture, Event.FromString(original.request))
            except Exception as exc:  # an undecodable original: replay its bytes anyway
                capture.error = f"not a coprocess.Event: {exc}"
            return await self._send(capture, target, "DispatchEvent")
        if edited is not None:
            # Restoring walks (and may inflate) every body of the edit: not on the loop the gateway's calls share.
            request = await asyncio.to_thread(edited_request, edited, original.request, redactor)
        else:
            request = original.request
        capture = Capture(kind="dispatch", request=request, reply=None, peer="replay", replay_of=original.id)
        try:
            summarize_object(capture, Object.FromString(request))
        except Exception as exc:  # an undecodable original: replay its bytes anyway
            capture.error = f"not a coprocess.Object: {exc}"
        return await self._send(capture, target, "Dispatch")

    async def _send(self, capture: Capture, target: str, method: str) -> Capture:
        """Call `method` of the plugin server at `target` with the capture's request; record the answer."""
        capture.upstream = target
        began = time.perf_counter()
        try:
            capture.reply = await self._pool.call(target, method, capture.request, REPLAY_DEADLINE_SECONDS)
            capture.upstream_status = "OK"
            capture.answered_by = "upstream"
        except grpc.aio.AioRpcError as exc:
            capture.upstream_status = exc.code().name
            capture.error = f"upstream {target}: {exc.code().name}: {exc.details()}"
        capture.grpc_status = capture.upstream_status  # the inspector itself was the caller
        capture.upstream_ms = round((time.perf_counter() - began) * 1000, 3)
        capture.duration_ns = int((time.perf_counter() - began) * 1e9)
        self._record(capture)
        return capture
