"""Fault injection: a rule's `fault:` makes the calls it matches slow, failed, unreadable or too large.

What each looks like to the gateway, and so to the client (docs/proxy.md#faults):
- `delay`: the answer comes that much later (the API request waits; Tyk sets no deadline).
- `fail`: the call fails with a gRPC status: a Pre/PostKeyAuth/Post/Response hook gives the
  client 500 "Middleware error", CustomKeyCheck 403 "Key not authorised".
- `drop`: the reply is bytes that are not an Object: the gateway cannot decode it, so the
  call failed (500 / 403).
- `oversize`: the reply is padded past grpc-go's 4 MiB default receive limit (with an unknown
  field the gateway would skip): with a default `grpc_recv_max_size` the call fails (500 / 403).
- `probability`: the share of matching calls faulted (one draw per call).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from app.tyk.outcome import GRPC_DEFAULT_RECV_LIMIT

MAX_DELAY_SECONDS = 300.0
"""A fault slows a call, it does not hold it forever (a held call also holds its bytes)."""
FAULT_KEYS = ("delay", "fail", "drop", "oversize", "probability")
FAIL_KEYS = ("code", "details")
# Field 1 (hook_type) is a varint: as length-delimited bytes that run past the end it can be
# read by no protobuf parser.
UNDECODABLE_REPLY = b"\x0a\x05ab"
# An unknown length-delimited field (number 1000): parsers skip it, so a gateway that accepts
# the size reads the Object unchanged.
_PADDING_TAG = bytes([0xC2, 0x3E])  # varint of (1000 << 3) | 2
_PADDING_SIZE = GRPC_DEFAULT_RECV_LIMIT
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")
_FAILABLE = {code.name: code for code in grpc.StatusCode if code is not grpc.StatusCode.OK}


@dataclass(frozen=True, slots=True)
class Fault:
    delay_seconds: float = 0.0
    fail: grpc.StatusCode | None = None
    details: str = ""
    drop: bool = False
    oversize: bool = False
    probability: float = 1.0

    def strikes(self, draw: Callable[[], float] = random.random) -> bool:
        """Whether this call is faulted (always at probability 1)."""
        return self.probability >= 1.0 or draw() < self.probability

    @property
    def label(self) -> str:
        """What the capture is marked with: "delay 300 ms, fail UNAVAILABLE"."""
        parts = []
        if self.delay_seconds:
            parts.append(f"delay {self.delay_seconds * 1000:g} ms")
        if self.fail is not None:
            parts.append(f"fail {self.fail.name}")
        if self.drop:
            parts.append("drop")
        if self.oversize:
            parts.append("oversize")
        return ", ".join(parts)

    @property
    def replaces_answer(self) -> bool:
        """Fail and drop answer instead of the rule's action (no upstream call is made)."""
        return self.fail is not None or self.drop


def oversize(reply: bytes) -> bytes:
    """The reply with an unknown field that takes it past the gateway's default receive limit."""
    return reply + _PADDING_TAG + _varint(_PADDING_SIZE) + bytes(_PADDING_SIZE)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse_fault(raw: Any, where: str, problems: list[str]) -> Fault | None:
    """A rule's `fault:` mapping; problems are added to `problems` (the rules file is refused whole)."""
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: 'fault' takes {', '.join(FAULT_KEYS)}")
        return None
    unknown = set(raw) - set(FAULT_KEYS)
    if unknown:
        problems.append(f"{where}: 'fault' takes {', '.join(FAULT_KEYS)}, not {', '.join(sorted(map(str, unknown)))}")
    delay = _delay(raw.get("delay", 0), where, problems)
    fail, details = _fail(raw.get("fail"), where, problems)
    drop = _bool(raw.get("drop", False), "drop", where, problems)
    too_large = _bool(raw.get("oversize", False), "oversize", where, problems)
    probability = raw.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 < probability <= 1:
        problems.append(f"{where}: fault.probability must be a number above 0 and at most 1 (e.g. 0.1)")
        probability = 1.0
    if sum((fail is not None, drop, too_large)) > 1:
        problems.append(f"{where}: give one of fault.fail, fault.drop and fault.oversize (each is an answer)")
    fault = Fault(delay, fail, details, drop, too_large, float(probability))
    if not fault.label:
        problems.append(f"{where}: 'fault' does nothing: give delay, fail, drop or oversize")
    return fault


def _delay(value: Any, where: str, problems: list[str]) -> float:
    """'300ms', '2s', '1.5s' or a number of seconds."""
    if isinstance(value, bool):
        seconds = -1.0
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.match(value)):
        number, unit = found.groups()
        seconds = float(number) / (1000 if unit == "ms" else 1)
    else:
        seconds = -1.0
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
        problems.append(f"{where}: fault.delay must be like 300ms or 2s, at most {MAX_DELAY_SECONDS:g}s")
        return 0.0
    return seconds


def _fail(value: Any, where: str, problems: list[str]) -> tuple[grpc.StatusCode | None, str]:
    if value is None:
        return None, ""
    if isinstance(value, str):
        value = {"code": value}
    if not isinstance(value, dict) or set(value) - set(FAIL_KEYS):
        problems.append(f"{where}: fault.fail takes code (e.g. UNAVAILABLE) and details")
        return None, ""
    code = _FAILABLE.get(str(value.get("code", "UNAVAILABLE")).upper())
    if code is None:
        problems.append(f"{where}: fault.fail.code must be a gRPC status other than OK: {', '.join(_FAILABLE)}")
        return None, ""
    details = value.get("details", "fault injected by the inspector")
    if not isinstance(details, str) or len(details) > 1024:
        problems.append(f"{where}: fault.fail.details must be text of at most 1024 characters")
        details = ""
    return code, details


def _bool(value: Any, name: str, where: str, problems: list[str]) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{where}: fault.{name} must be true or false")
        return False
    return value
