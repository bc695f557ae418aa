"""Replay: send a captured Object again (as captured, or edited) to a plugin server, capture the answer."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import json_format

from app.capture.record import Capture, Recorder, summarize_object
from app.proxy.rules import DEFAULT_DEADLINE_SECONDS, Rules
from app.proxy.upstream import UpstreamPool
from app.tyk.protocol import Object


class ReplayError(ValueError):
    """The replay cannot be made as asked; the message says why."""


class Replayer:
    def __init__(self, pool: UpstreamPool, record: Recorder, rules: Rules | None) -> None:
        self._pool = pool
        self._record = record
        self.rules = rules

    def target_for(self, original: Capture, to: str | None) -> str:
        if to:
            return to
        if original.upstream:
            return original.upstream
        rule = self.rules.route(original) if self.rules is not None else None
        if rule is not None and rule.upstream:
            return rule.upstream
        raise ReplayError("no plugin server to replay to: give one (`to`: HOST:PORT) or run with --upstream/--rules")

    async def replay(self, original: Capture, to: str | None = None, edited: dict[str, Any] | None = None) -> Capture:
        """Send the original's Object (or `edited`, protobuf JSON) and record the result, linked to the original."""
        if original.kind != "dispatch":
            raise ReplayError("only Dispatch captures can be replayed")
        target = self.target_for(original, to)
        if edited is not None:
            try:
                request = bytes(json_format.ParseDict(edited, Object()).SerializeToString())
            except json_format.ParseError as exc:
                raise ReplayError(f"the edited Object is not a valid coprocess.Object: {exc}") from None
        else:
            request = original.request
        capture = Capture(kind="dispatch", request=request, reply=None, peer="replay", replay_of=original.id)
        try:
            summarize_object(capture, Object.FromString(request))
        except Exception as exc:  # an undecodable original: replay its bytes anyway
            capture.error = f"not a coprocess.Object: {exc}"
        capture.upstream = target
        began = time.perf_counter()
        try:
            capture.reply = await self._pool.call(target, "Dispatch", request, DEFAULT_DEADLINE_SECONDS)
            capture.upstream_status = "OK"
            capture.answered_by = "upstream"
        except grpc.aio.AioRpcError as exc:
            capture.upstream_status = exc.code().name
            capture.error = f"upstream {target}: {exc.code().name}: {exc.details()}"
        capture.upstream_ms = round((time.perf_counter() - began) * 1000, 3)
        capture.duration_ns = int((time.perf_counter() - began) * 1e9)
        self._record(capture)
        return capture
