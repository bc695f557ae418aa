"""What the gateway model says of a capture, computed on first use and cached on it.

Never on the Dispatch path: the list, the stream and the detail ask for it.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from app.capture.record import Capture
from app.tyk.lint import NEAR_LIMIT, _warning, lint_reply
from protogen import coprocess_object_pb2 as pb


def warnings_of(capture: Capture) -> tuple[dict[str, str], ...]:
    """The lint of a Dispatch capture's reply, computed once."""
    if capture.warnings is None:
        capture.warnings = _lint_capture(capture)
    return capture.warnings


def _lint_capture(capture: Capture) -> tuple[dict[str, Any], ...]:
    if capture.kind != "dispatch" or capture.reply is None or capture.error:
        return ()
    if (
        capture.reply is capture.request
        and capture.hook_type not in ("CustomKeyCheck", "Response")
        and len(capture.request) < NEAR_LIMIT
    ):
        # An echoed request hook is what the gateway sent: nothing in it that the gateway would
        # punish. Skipping the parse keeps the live stream cheap in the default echo mode.
        return ()
    try:
        sent = pb.Object.FromString(capture.request)
        reply = sent if capture.reply is capture.request else pb.Object.FromString(capture.reply)
    except DecodeError:
        return (_warning("reply-undecodable", "the reply is not a valid coprocess.Object"),)
    return tuple(lint_reply(sent, reply, len(capture.reply), len(capture.request)))
