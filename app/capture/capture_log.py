"""The console view: one line per capture, or its full protobuf JSON, like the reference echo server.

It is just another broadcast subscriber, so writing to the console happens after
the gateway has its answer, and a slow terminal can only make it skip lines.
"""

from __future__ import annotations

import json
import logging

from app.capture.broadcast import CLOSED, Broadcaster
from app.capture.record import Capture
from app.capture.redact import Redactor
from app.capture.views import capture_detail
from app.config import CaptureLog

log = logging.getLogger("tyk_inspector.captures")


def capture_line(capture: Capture) -> str:
    """'Pre MyPreHook api=b84f... GET /orders 0.041ms' in Tyk's words."""
    if capture.kind == "event":
        parts = ["event", capture.hook_type or "(unrecognised payload)", f"handler={capture.hook_name}"]
    else:
        parts = [capture.hook_type, capture.hook_name or "(no hook name)"]
    if capture.api_id:
        parts.append(f"api={capture.api_id}")
    if capture.method:
        parts.append(capture.method)
    if capture.path:
        parts.append(capture.path)
    if capture.status is not None:
        parts.append(f"status={capture.status}")
    if capture.error:
        parts.append(f"error={capture.error!r}")
    parts.append(f"#{capture.id}")
    return " ".join(parts)


async def run_capture_log(broadcaster: Broadcaster, mode: CaptureLog, redactor: Redactor) -> None:
    """Log captures until the broadcaster closes."""
    if mode == "off":
        return
    subscription = broadcaster.subscribe()
    try:
        while True:
            message = await subscription.get()
            if message is CLOSED:
                return
            if subscription.lagging:
                log.warning("console too slow: %d captures were not logged (see the dashboard)", subscription.dropped)
                subscription.dropped = 0
                subscription.resync()
            if not isinstance(message, Capture):
                continue
            fields = {"capture_id": message.id, "kind": message.kind, "hook_type": message.hook_type}
            if mode == "json":
                detail = capture_detail(message, redactor)
                log.info("%s\n%s", capture_line(message), json.dumps(detail["request"], indent=2), extra=fields)
            else:
                log.info("%s", capture_line(message), extra=fields)
    finally:
        broadcaster.unsubscribe(subscription)
